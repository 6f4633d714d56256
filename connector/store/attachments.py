"""The suppliers' documents in the ledger: what Xero listed for a bill (once per bill version) and each
attachment fetched, kept by its AttachmentID with its sha256 and bytes, so none is ever downloaded twice
and every batch, retry and replay sends the same bytes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, defer

from connector.domain.states import BillState
from connector.store.models import AttachmentListing, AttachmentRow, BatchDocument, Bill


def listing(session: Session, tenant_id: str, invoice_id: str, version: int) -> list[dict[str, Any]] | None:
    """What Xero listed for this version of the bill, or None when it was not asked yet."""
    row = session.get(AttachmentListing, (tenant_id, invoice_id))
    return None if row is None or row.version != version else list(row.listed)


def save_listing(session: Session, tenant_id: str, invoice_id: str, version: int, listed: list[dict[str, Any]],
                 now: datetime) -> None:
    row = session.get(AttachmentListing, (tenant_id, invoice_id))
    if row is None:
        session.add(AttachmentListing(tenant_id=tenant_id, invoice_id=invoice_id, version=version, listed=listed,
                                      listed_at=now))
    elif row.version <= version:
        row.version, row.listed, row.listed_at = version, listed, now


def forget_listing(session: Session, tenant_id: str, invoice_id: str) -> None:
    """What Xero listed for the bill no longer holds (a file gone or changed): its next mapping lists again."""
    row = session.get(AttachmentListing, (tenant_id, invoice_id))
    if row is not None:
        session.delete(row)


def fetched_ids(session: Session, tenant_id: str, attachment_ids: Iterable[str]) -> set[str]:
    ids = list(attachment_ids)
    if not ids:
        return set()
    return set(session.scalars(select(AttachmentRow.attachment_id).where(
        AttachmentRow.tenant_id == tenant_id, AttachmentRow.attachment_id.in_(ids))))


def keep(session: Session, *, tenant_id: str, invoice_id: str, attachment_id: str, file_name: str, mime_type: str,
         content: bytes, sha256: str, now: datetime) -> bool:
    """Store a fetched attachment; False when it was stored already (another worker fetched it first)."""
    if session.get(AttachmentRow, (tenant_id, attachment_id)) is not None:
        return False
    session.add(AttachmentRow(tenant_id=tenant_id, attachment_id=attachment_id, invoice_id=invoice_id,
                              file_name=file_name[:1000], mime_type=mime_type[:255], size=len(content),
                              sha256=sha256, content=content, fetched_at=now))
    return True


def documents_of(session: Session, tenant_id: str, invoice_ids: Iterable[str]) -> dict[str, list[AttachmentRow]]:
    """The documents to send with each of these bills: those its latest listing names and that were fetched,
    in the listing's order."""
    ids = list(invoice_ids)
    if not ids:
        return {}
    listings = {row.invoice_id: row for row in session.scalars(select(AttachmentListing).where(
        AttachmentListing.tenant_id == tenant_id, AttachmentListing.invoice_id.in_(ids)))}
    wanted = {str(item["id"]): invoice_id for invoice_id, row in listings.items() for item in row.listed
              if item.get("send")}
    # The bytes stay in the ledger (`document_content`, one at a time): a file's documents together may be far
    # larger than a worker's memory.
    rows = {row.attachment_id: row for row in session.scalars(select(AttachmentRow).options(
        defer(AttachmentRow.content)).where(AttachmentRow.tenant_id == tenant_id,
                                            AttachmentRow.attachment_id.in_(list(wanted))))} if wanted else {}
    found: dict[str, list[AttachmentRow]] = {}
    for invoice_id, row in listings.items():
        for item in row.listed:
            fetched = rows.get(str(item["id"]))
            if item.get("send") and fetched is not None:
                found.setdefault(invoice_id, []).append(fetched)
    return found


def document_bytes(session: Session, tenant_id: str, bill_ids: Sequence[int]) -> dict[int, int]:
    """The bytes of the documents each of these bills would send (as `documents_of` chooses them), from the
    sizes kept in the ledger: a file's budget is decided without reading a document."""
    ids = list(bill_ids)
    if not ids:
        return {}
    invoices: dict[str, int] = {invoice_id: bill_id for invoice_id, bill_id in session.execute(
        select(Bill.invoice_id, Bill.id).where(Bill.tenant_id == tenant_id, Bill.id.in_(ids)))}
    wanted = {str(item["id"]): invoice_id for invoice_id, listed in session.execute(
        select(AttachmentListing.invoice_id, AttachmentListing.listed).where(
            AttachmentListing.tenant_id == tenant_id, AttachmentListing.invoice_id.in_(list(invoices))))
              for item in listed if item.get("send")}
    found: dict[int, int] = {}
    if not wanted:
        return found
    for attachment_id, size in session.execute(select(AttachmentRow.attachment_id, AttachmentRow.size).where(
            AttachmentRow.tenant_id == tenant_id, AttachmentRow.attachment_id.in_(list(wanted)))):
        bill_id = invoices[wanted[attachment_id]]
        found[bill_id] = found.get(bill_id, 0) + size
    return found


def place_in_batch(session: Session, batch_id: int, placed: Iterable[tuple[str, str, AttachmentRow]]) -> None:
    """Fix which document goes where in a batch's folder, as (path, bill id, attachment), in upload order."""
    for position, (path, invoice_id, row) in enumerate(placed):
        session.add(BatchDocument(batch_id=batch_id, path=path, position=position, invoice_id=invoice_id,
                                  attachment_id=row.attachment_id, size=row.size, sha256=row.sha256))


def placed_in_batches(session: Session, batch_ids: Iterable[int]) -> dict[tuple[int, str], str]:
    """Where the folders of these batches hold each document: (batch, AttachmentID) -> its path."""
    ids = sorted(set(batch_ids))
    found: dict[tuple[int, str], str] = {}
    for start in range(0, len(ids), 1000):
        for batch_id, attachment_id, path in session.execute(select(
                BatchDocument.batch_id, BatchDocument.attachment_id, BatchDocument.path).where(
                BatchDocument.batch_id.in_(ids[start:start + 1000]))):
            found[(batch_id, attachment_id)] = path
    return found


def folder_of_batch(session: Session, tenant_id: str, batch_id: int) -> list[tuple[BatchDocument, bool]]:
    """The documents a batch delivers in its folder, each with whether its bytes are still in the ledger, in
    upload order. The bytes themselves are read one document at a time (`document_content`): a batch's
    documents together may be far larger than a worker's memory."""
    query = select(BatchDocument, AttachmentRow.attachment_id.is_not(None)).outerjoin(AttachmentRow, (
        AttachmentRow.tenant_id == tenant_id) & (AttachmentRow.attachment_id == BatchDocument.attachment_id)
    ).where(BatchDocument.batch_id == batch_id).order_by(BatchDocument.position)
    return [(row, bool(kept)) for row, kept in session.execute(query)]


def document_content(session: Session, tenant_id: str, attachment_id: str) -> bytes | None:
    """One fetched document's bytes (None: no longer in the ledger)."""
    return session.scalar(select(AttachmentRow.content).where(AttachmentRow.tenant_id == tenant_id,
                                                             AttachmentRow.attachment_id == attachment_id))


def uncount_map_run(session: Session, tenant_id: str, invoice_id: str, version: int) -> None:
    """Take back the run a mapping counted when it stops for the rate budget (not the bill's doing)."""
    session.execute(update(Bill).where(Bill.tenant_id == tenant_id, Bill.invoice_id == invoice_id,
                                       Bill.version == version, Bill.state == BillState.DISCOVERED,
                                       Bill.map_runs > 0)
                    .values(map_runs=Bill.map_runs - 1).execution_options(synchronize_session=False))


def left_out_for_size(session: Session, tenant_id: str | None = None) -> list[tuple[Bill, dict[str, Any]]]:
    """(bill, its reason) for each document a bill goes without because of the tenant's size cap: found
    through the listings that mark one (bills with documents only), read from the bills' own reasons."""
    query = select(AttachmentListing.tenant_id, AttachmentListing.invoice_id, AttachmentListing.listed)
    if tenant_id:
        query = query.where(AttachmentListing.tenant_id == tenant_id)
    wanted: dict[str, list[str]] = {}
    for tenant, invoice_id, listed in session.execute(query):
        if any(item.get("over_cap") is not None for item in listed):
            wanted.setdefault(tenant, []).append(invoice_id)
    found = []
    for tenant, ids in sorted(wanted.items()):
        for start in range(0, len(ids), 1000):
            for bill in session.scalars(select(Bill).where(Bill.tenant_id == tenant,
                                                           Bill.invoice_id.in_(ids[start:start + 1000]))
                                        .order_by(Bill.id)):
                found += [(bill, r) for r in bill.reasons if r.get("code") == "attachment_over_cap"]
    return found


def documents_retrying(session: Session, tenant_id: str | None = None) -> list[Bill]:
    """HELD bills waiting to ask Xero again for a document it failed to serve, with when (one range of
    ix_bills_documents_retry per tenant): what the status shows beside the held bills."""
    query = select(Bill).options(defer(Bill.payload), defer(Bill.mapping)).where(
        Bill.documents_retry_at.is_not(None), Bill.state == BillState.HELD)
    if tenant_id:
        query = query.where(Bill.tenant_id == tenant_id)
    return list(session.scalars(query.order_by(Bill.tenant_id, Bill.documents_retry_at, Bill.id)))
