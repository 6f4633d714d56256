"""Operator actions: replay the stored file that carried a bill, and re-encrypt secrets under a new key.

A replay sends the batch's stored bytes under the same name. If the file is still on the server whole,
the look-first step records it as delivered without uploading; if Stampli has taken it away, it is
uploaded again. Either way no new file is made and no bill lands in a second file.
"""

from __future__ import annotations

from sqlalchemy import select

from connector.domain.states import BatchState, BillState
from connector.errors import ConnectorError
from connector.services.context import Services
from connector.services.deliver import DeliveryReport, deliver_batch
from connector.store.audit import record
from connector.store.models import Batch, Bill, SftpTargetRow, XeroGrant


class NothingToReplay(ConnectorError):
    exit_code = 4


def replay_invoice(services: Services, invoice_id: str, *, actor: str) -> DeliveryReport:
    with services.ledger.transaction() as session:
        bills = list(session.scalars(select(Bill).where(Bill.invoice_id == invoice_id)))
        if not bills:
            raise NothingToReplay(f"no bill with Xero InvoiceID {invoice_id} in the ledger")
        carried = [b for b in bills if b.batch_id is not None]
        if not carried:
            states = ", ".join(sorted({b.state for b in bills}))
            raise NothingToReplay(f"bill {invoice_id} was never put in a file (state: {states})")
        batch = session.get_one(Batch, carried[0].batch_id)
        batch.state = BatchState.STAGED
        batch.next_attempt_at = None
        batch.lease_until = None
        for bill in session.scalars(select(Bill).where(Bill.batch_id == batch.id)):
            if bill.state in (BillState.FAILED, BillState.DELIVERED):
                record(
                    session, bill, BillState.BATCHED, reason=f"replay requested for {invoice_id}",
                    batch_id=batch.id, file_name=batch.name, actor=actor,
                )
        batch_id = batch.id
    return deliver_batch(services, batch_id, task_id=f"replay:{actor}")


def rotate_keys(services: Services) -> int:
    """Re-encrypt every stored secret under the newest key; returns how many values were rewritten."""
    rewritten = 0
    with services.ledger.transaction() as session:
        for grant in session.scalars(select(XeroGrant)):
            for column in ("client_secret_enc", "refresh_token_enc", "access_token_enc"):
                value = getattr(grant, column)
                if value:
                    setattr(grant, column, services.vault.rotate(value))
                    rewritten += 1
        for target in session.scalars(select(SftpTargetRow)):
            for column in ("password_enc", "private_key_enc"):
                value = getattr(target, column)
                if value:
                    setattr(target, column, services.vault.rotate(value))
                    rewritten += 1
    return rewritten
