"""Batches as files are made: claiming READY bills, numbering files, and finding a bill's file."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Final

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, defer

from connector.domain.states import BillState
from connector.store.models import Batch, Bill, Tenant


def ready_bill_ids(session: Session, tenant_id: str, limit: int, ready_before: datetime | None = None) -> list[int]:
    """The oldest READY bills not yet in a file, at most `limit` (a file's cap); with `ready_before`, only
    bills READY since before then."""
    query = select(Bill.id).where(Bill.tenant_id == tenant_id, Bill.state == BillState.READY,
                                  Bill.batch_id.is_(None))
    if ready_before is not None:
        query = query.where(Bill.state_changed_at <= ready_before)
    return list(session.scalars(query.order_by(Bill.id).limit(limit)))


def claim_bills(session: Session, bill_ids: Sequence[int], batch_id: int) -> int:
    """Put these bills in the batch if they are still READY and in no file; returns how many were taken.
    The conditional UPDATE is what makes two workers unable to put one bill into two files."""
    claimed = session.execute(
        update(Bill)
        .where(Bill.id.in_(bill_ids), Bill.state == BillState.READY, Bill.batch_id.is_(None))
        .values(batch_id=batch_id, row_version=Bill.row_version + 1)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(claimed, "rowcount", 0))


def bills_in(session: Session, batch_id: int) -> list[Bill]:
    """The bills in a file, without their Xero payloads (a file is made from their mappings)."""
    return list(session.scalars(select(Bill).options(defer(Bill.payload)).where(Bill.batch_id == batch_id)
                                .order_by(Bill.id)))


def next_sequence(session: Session, tenant_id: str) -> int:
    """The tenant's next file number; a racing twin taking the same one fails on the unique constraint."""
    return (session.scalar(select(func.max(Batch.sequence)).where(Batch.tenant_id == tenant_id)) or 0) + 1


def bills_by_invoice_id(session: Session, invoice_id: str, tenant_id: str | None = None) -> list[Bill]:
    """Every bill with this Xero InvoiceID (one per tenant that has it), or only the named tenant's."""
    query = select(Bill).where(Bill.invoice_id == invoice_id)
    if tenant_id:
        query = query.where(Bill.tenant_id == tenant_id)
    return list(session.scalars(query))


def tenant(session: Session, tenant_id: str) -> Tenant:
    return session.get_one(Tenant, tenant_id)


#: A batch's bytes are read from the ledger in pieces this big: a bytea read whole costs the driver about
#: six times its size (hex text, then its decoding): 192 MiB for an archive of 32 MiB.
CONTENT_PIECE: Final = 1024 * 1024


def batch(session: Session, batch_id: int) -> Batch:
    """The batch row without its bytes (`content_of` reads them)."""
    return session.get_one(Batch, batch_id, options=[defer(Batch.content)])


def content_of(session: Session, batch_id: int) -> bytes:
    """The batch's stored bytes, read in pieces of CONTENT_PIECE: a worker holds them about twice, not six times."""
    return b"".join(content_pieces(session, batch_id))


def content_size(session: Session, batch_id: int) -> int:
    return session.scalar(select(func.length(Batch.content)).where(Batch.id == batch_id)) or 0


def content_pieces(session: Session, batch_id: int) -> Iterator[bytes]:
    """The batch's stored bytes, one piece of CONTENT_PIECE at a time (each read as it is asked for, in the
    session's transaction), for a caller that writes them on and never holds them whole."""
    where = Batch.id == batch_id
    for start in range(1, content_size(session, batch_id) + 1, CONTENT_PIECE):
        yield session.scalar(select(func.substr(Batch.content, start, CONTENT_PIECE)).where(where)) or b""


def remove_batch(session: Session, batch: Batch) -> None:
    """An empty batch (every bill it claimed was held) leaves no row behind."""
    session.flush()
    session.delete(batch)


def add_batch(session: Session, batch: Batch) -> Batch:
    session.add(batch)
    session.flush()
    return batch
