"""What happened to a bill, and to the file it went in: the reads behind `connector bills …`,
`connector audit export` and `connector replay --file`. Reads only."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, defer, load_only

from connector.store.models import Batch, Bill, BillTransition, DeliveryAttempt


@dataclass
class BillHistory:
    """One bill with every transition of its audit, the file that carried it and that file's attempts."""

    bill: Bill
    transitions: list[BillTransition] = field(default_factory=list)
    batch: Batch | None = None
    attempts: list[DeliveryAttempt] = field(default_factory=list)


def bill_histories(session: Session, invoice: str, tenant_id: str | None = None) -> list[BillHistory]:
    """Every bill whose Xero InvoiceID or invoice number is `invoice` (one per tenant that has it)."""
    query = select(Bill).where(or_(Bill.invoice_id == invoice, Bill.invoice_number == invoice)).order_by(Bill.id)
    if tenant_id:
        query = query.where(Bill.tenant_id == tenant_id)
    histories = []
    for bill in session.scalars(query):
        transitions = list(session.scalars(
            select(BillTransition).where(BillTransition.tenant_id == bill.tenant_id,
                                         BillTransition.invoice_id == bill.invoice_id).order_by(BillTransition.id)))
        batch = (session.get(Batch, bill.batch_id, options=[defer(Batch.content)])  # its bytes are not shown
                 if bill.batch_id is not None else None)
        attempts = list(session.scalars(select(DeliveryAttempt).where(DeliveryAttempt.batch_id == batch.id)
                                        .order_by(DeliveryAttempt.id))) if batch else []
        histories.append(BillHistory(bill, transitions, batch, attempts))
    return histories


def bills_where(session: Session, *, tenant_id: str | None = None, state: str | None = None,
                reason_code: str | None = None, limit: int | None = None) -> list[Bill]:
    """Bills by tenant and state, and (read from each bill's reasons) by reason code, oldest first."""
    query = select(Bill).order_by(Bill.tenant_id, Bill.id)
    if tenant_id:
        query = query.where(Bill.tenant_id == tenant_id)
    if state:
        query = query.where(Bill.state == state)
    found = []
    for bill in session.scalars(query.execution_options(yield_per=1000)):
        if reason_code and not any(r.get("code") == reason_code for r in bill.reasons):
            continue
        found.append(bill)
        if limit is not None and len(found) >= limit:
            break
    return found


def transitions_since(session: Session, since: datetime | None, tenant_id: str | None = None
                      ) -> Iterator[BillTransition]:
    """The audit in the order it was written, from `since` on; streamed, so a long export holds little."""
    query = select(BillTransition).order_by(BillTransition.id).execution_options(yield_per=1000)
    if since is not None:
        query = query.where(BillTransition.at >= since)
    if tenant_id:
        query = query.where(BillTransition.tenant_id == tenant_id)
    yield from session.scalars(query)


def batches_by_id(session: Session, ids: set[int]) -> dict[int, Batch]:
    """These batches by id, without their bytes (a listing needs only their names)."""
    if not ids:
        return {}
    found: dict[int, Batch] = {}
    wanted = sorted(ids)
    for start in range(0, len(wanted), 1000):
        chunk = wanted[start:start + 1000]
        query = select(Batch).options(load_only(Batch.id, Batch.name)).where(Batch.id.in_(chunk))
        found.update({batch.id: batch for batch in session.scalars(query)})
    return found


def batch_named(session: Session, name: str) -> Batch | None:
    return session.scalars(select(Batch).options(defer(Batch.content)).where(Batch.name == name)).first()


def invoice_ids_in_batch(session: Session, batch_id: int) -> list[str]:
    """The InvoiceIDs of the bills this file carries now (a bill re-sent since belongs to its new file)."""
    return sorted(session.scalars(select(Bill.invoice_id).where(Bill.batch_id == batch_id)))


def held_reasons(session: Session, tenant_id: str | None = None) -> Iterator[tuple[str, list[dict[str, object]]]]:
    """(tenant, reasons) of every HELD bill, streamed: what the status summary counts."""
    query = select(Bill.tenant_id, Bill.reasons).where(Bill.state == "HELD").execution_options(yield_per=1000)
    if tenant_id:
        query = query.where(Bill.tenant_id == tenant_id)
    for tenant, reasons in session.execute(query):
        yield tenant, list(reasons or [])


def waiting_files(session: Session, tenant_id: str | None = None) -> list[Batch]:
    """Files made and not yet delivered (STAGED): with their attempts, last error and next attempt."""
    query = select(Batch).options(defer(Batch.content)).where(Batch.state == "STAGED").order_by(  # not the bytes
        Batch.tenant_id, Batch.sequence)
    if tenant_id:
        query = query.where(Batch.tenant_id == tenant_id)
    return list(session.scalars(query))


def changed_after_delivery(session: Session, tenant_id: str | None = None) -> list[tuple[Bill, str | None]]:
    """Bills Xero changed after Stampli got them, each with the reason its last transition recorded."""
    query = select(Bill).where(Bill.state == "CHANGED_AFTER_DELIVERY").order_by(Bill.tenant_id, Bill.id)
    if tenant_id:
        query = query.where(Bill.tenant_id == tenant_id)
    found = []
    for bill in session.scalars(query):
        why = session.scalars(select(BillTransition.reason).where(
            BillTransition.tenant_id == bill.tenant_id, BillTransition.invoice_id == bill.invoice_id,
            BillTransition.to_state == "CHANGED_AFTER_DELIVERY").order_by(BillTransition.id.desc())).first()
        found.append((bill, why))
    return found
