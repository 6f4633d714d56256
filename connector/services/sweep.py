"""The sweeper: the database decides what work exists, Redis only carries nudges.

If every broker message vanished, `sweep` rebuilds the work from the ledger: bills DISCOVERED but not
mapped, READY but not batched, and batches not yet delivered whose time has come.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import and_, or_, select

from connector.domain.states import BatchState, BillState
from connector.services.context import Services
from connector.services.messages import AssembleBatch, DeliverBatch, MapInvoice, Message
from connector.store.models import Batch, Bill


def sweep(services: Services) -> list[Message]:
    now = services.clock()
    stale = now - timedelta(seconds=services.settings.sweep_stale_seconds)
    messages: list[Message] = []
    with services.ledger.transaction() as session:
        for tenant_id, invoice_id, version in session.execute(
            select(Bill.tenant_id, Bill.invoice_id, Bill.version).where(
                Bill.state == BillState.DISCOVERED, Bill.state_changed_at <= stale
            )
        ):
            messages.append(MapInvoice(tenant_id, invoice_id, version))
        for (tenant_id,) in session.execute(
            select(Bill.tenant_id)
            .where(Bill.state == BillState.READY, Bill.batch_id.is_(None), Bill.state_changed_at <= stale)
            .distinct()
        ):
            messages.append(AssembleBatch(tenant_id))
        for (batch_id,) in session.execute(
            select(Batch.id).where(
                Batch.state == BatchState.STAGED,
                or_(Batch.lease_until.is_(None), Batch.lease_until <= now),
                or_(
                    Batch.next_attempt_at <= now,
                    and_(Batch.next_attempt_at.is_(None), Batch.created_at <= stale),
                ),
            )
        ):
            messages.append(DeliverBatch(batch_id))
    return messages
