"""Storing a page of a Xero delta read (bills, purchase orders, contacts) and the read's watermark.

Purchase orders and contacts go in as one INSERT .. ON CONFLICT DO UPDATE per page (one round trip):
on PostgreSQL the page's columns as arrays, unnested by the server (store.bulk); on SQLite as many
parameter sets, compiled once and cached, which SQLAlchemy sends as one multi-row statement per page
("insertmanyvalues"); bills likewise, a few statements per page whatever its size (store.audit.BillPage:
the new rows, the changed ones, and an audit row per state change, by the rules of store.audit.record).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, select
from sqlalchemy.orm import Session

from connector.domain.changes import only_credit_applied
from connector.domain.credit_note_cadence import credit_allocation_moved
from connector.domain.po_numbers import po_key
from connector.domain.states import IN_A_FILE, REMAPPABLE, BillState
from connector.errors import RecordProblem
from connector.store.audit import BillPage, PageBill
from connector.store.bulk import among, page_insert
from connector.store.models import Bill, ContactRow, PurchaseOrderRow, Watermark
from connector.store.reference import Contact, bump_reference_version
from connector.xero.dates import ms_or_zero

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ToMap:
    """A bill version the page made DISCOVERED: it needs a map message."""

    invoice_id: str
    version: int


def upsert_bills(session: Session, tenant_id: str, records: Sequence[dict[str, Any]], *,
                 credit_moves: list[str] | None = None) -> list[ToMap]:
    """New or changed bills go (back) to DISCOVERED; a re-seen unchanged version does nothing. A bill in a
    file changed in Xero becomes CHANGED_AFTER_DELIVERY once delivered, and is left to delivery before
    (BATCHED, or FAILED until a replay); one put in a file (domain.states.IN_A_FILE) whose only change is a
    credit applied to it (domain.changes.only_credit_applied) keeps its state, with Xero's newer record as
    the one it was sent as. The page is written in a few statements
    (store.audit.BillPage), whatever its size.

    Given `credit_moves`, the page's bills whose AmountCredited is not what we hold (a new one: from zero)
    are added to it: a credit note was applied to them. The stored records both need are read once."""
    page = BillPage(session, tenant_id)
    existing = page.read(r["InvoiceID"] for r in records if isinstance(r.get("InvoiceID"), str))
    credited = {} if credit_moves is None else {
        r["InvoiceID"]: r for r in records if isinstance(r.get("InvoiceID"), str) and credit_allocation_moved(r, None)}
    sent_as, held = _stored_payloads(session, tenant_id, existing, records, credited)
    if credit_moves is not None:
        credit_moves.extend(i for i, record in credited.items()
                            if credit_allocation_moved(record, held.get(i, {}) if i in existing else None))
    to_map: list[ToMap] = []
    for data in records:
        invoice_id = data.get("InvoiceID")
        if not isinstance(invoice_id, str) or not invoice_id:
            log.error("%s", RecordProblem(f"tenant {tenant_id} invoice <unknown>", "InvoiceID", "is missing"))
            continue
        version = ms_or_zero(data.get("UpdatedDateUTC"))
        bill = existing.get(invoice_id)
        if bill is not None and bill.version >= version:
            continue
        if bill is None:
            bill = existing[invoice_id] = page.new(invoice_id)
        if invoice_id in sent_as and only_credit_applied(sent_as[invoice_id], data):
            # Xero's status too: a credit covering the whole bill makes it PAID (domain.changes).
            bill.set(version=version, mapped_version=version, payload=data, xero_status=str(data.get("Status") or ""))
            log.info("bill %s: a credit was applied to it in Xero (AmountCredited %s); what Stampli was sent "
                     "stands, and the credit goes as its own credit note", invoice_id, data.get("AmountCredited"))
            continue
        bill.set(version=version, payload=data, invoice_number=str(data.get("InvoiceNumber") or "")[:255],
                 xero_status=str(data.get("Status") or ""))
        if bill.state is None or BillState(bill.state) in REMAPPABLE:
            bill.set(reasons=[])
            page.record(bill, BillState.DISCOVERED, reason="new" if bill.id is None else "changed in Xero")
            to_map.append(ToMap(invoice_id, version))
        elif bill.state == BillState.DELIVERED:
            page.record(bill, BillState.CHANGED_AFTER_DELIVERY, reason="changed in Xero after delivery")
        else:
            # In a batch or failed: the file's bytes are fixed; delivery compares versions afterwards.
            log.info("bill %s changed in Xero while %s", invoice_id, bill.state)
    page.write()
    return to_map


def _stored_payloads(session: Session, tenant_id: str, existing: dict[str, PageBill],
                     records: Sequence[dict[str, Any]], credited: dict[str, dict[str, Any]],
                     ) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """The stored Xero records the page's rules compare with, in one query (made only when one is needed):
    of each bill of the page that was put in a file (domain.states.IN_A_FILE: BATCHED, DELIVERED, FAILED,
    CHANGED_AFTER_DELIVERY) and comes in newer, the record it was sent as
    (what a credit applied since is compared with); and of each credited bill we hold, its record."""
    sent = {r["InvoiceID"] for r in records if isinstance(r.get("InvoiceID"), str)
            and (bill := existing.get(r["InvoiceID"])) is not None and bill.state in IN_A_FILE
            and bill.version < ms_or_zero(r.get("UpdatedDateUTC"))}
    ids = sent | (credited.keys() & existing.keys())
    if not ids:
        return {}, {}
    rows = session.execute(select(Bill.invoice_id, Bill.payload, Bill.mapped_version == Bill.version).where(
        Bill.tenant_id == tenant_id, among(session, Bill.invoice_id, sorted(ids))))
    sent_as: dict[str, dict[str, Any]] = {}
    held: dict[str, dict[str, Any]] = {}
    for invoice_id, payload, as_mapped in rows:
        if invoice_id in sent and as_mapped and isinstance(payload, dict):
            sent_as[invoice_id] = payload
        held[invoice_id] = payload or {}
    return sent_as, held



def upsert_purchase_orders(session: Session, tenant_id: str, records: Sequence[dict[str, Any]]) -> int:
    """Store the page's purchase orders in one statement: a PO is written when it is new or Xero's version
    is newer than ours (an unusable one is replaced by a good newer version). Returns how many were."""
    rows: dict[str, dict[str, Any]] = {}
    for data in records:
        po_id = data.get("PurchaseOrderID")
        if not isinstance(po_id, str) or not po_id:
            log.warning("tenant %s: purchase order without PurchaseOrderID skipped", tenant_id)
            continue
        number = str(data.get("PurchaseOrderNumber") or "")
        contact = data.get("Contact")
        version = ms_or_zero(data.get("UpdatedDateUTC"))
        if po_id in rows and rows[po_id]["version"] > version:
            continue
        rows[po_id] = {
            "tenant_id": tenant_id, "purchase_order_id": po_id, "number": number, "key": po_key(number),
            "contact_id": contact.get("ContactID") if isinstance(contact, dict) else None,
            "status": str(data.get("Status") or ""), "version": version, "payload": data, "unusable_reason": None,
        }
    if not rows:
        return 0
    table = PurchaseOrderRow.__table__
    statement, parameters = page_insert(session, cast(Table, PurchaseOrderRow.__table__), list(rows.values()))
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.tenant_id, table.c.purchase_order_id],
        set_={name: statement.excluded[name] for name in
              ("number", "key", "contact_id", "status", "version", "payload", "unusable_reason")},
        where=_newer(table.c.version, statement.excluded.version),
    )
    written = session.execute(statement.returning(table.c.purchase_order_id), parameters).all()
    _forget(session, PurchaseOrderRow, [(tenant_id, po_id) for (po_id,) in written])
    return len(written)


def upsert_contacts(session: Session, tenant_id: str, contacts: Sequence[Contact], *, read_at: datetime) -> None:
    """Store the contacts in one statement; what Xero sent replaces what we held (an unusable one too)."""
    rows = {c.contact_id: {
        "tenant_id": tenant_id, "contact_id": c.contact_id, "name": c.name, "status": c.status,
        "is_supplier": c.is_supplier, "merged_to": c.merged_to, "version": c.version, "payload": c.payload,
        "read_at": read_at, "unusable_reason": None,
    } for c in contacts}
    if not rows:
        return
    table = ContactRow.__table__
    statement, parameters = page_insert(session, cast(Table, ContactRow.__table__), list(rows.values()))
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.tenant_id, table.c.contact_id],
        set_={name: statement.excluded[name] for name in
              ("name", "status", "is_supplier", "merged_to", "version", "payload", "read_at", "unusable_reason")},
    )
    session.execute(statement, parameters)
    bump_reference_version(session, [tenant_id])
    _forget(session, ContactRow, [(tenant_id, contact_id) for contact_id in rows])


def held_versions(session: Session, tenant_id: str, endpoint: str, ids: Collection[str]) -> dict[str, int]:
    """The versions the ledger holds of these records of a delta endpoint (Invoices and CreditNotes are
    rows of bills, PurchaseOrders of purchase_orders), in one statement."""
    if not ids:
        return {}
    if endpoint == "PurchaseOrders":
        query = select(PurchaseOrderRow.purchase_order_id, PurchaseOrderRow.version).where(
            PurchaseOrderRow.tenant_id == tenant_id, PurchaseOrderRow.purchase_order_id.in_(list(ids)))
    else:
        query = select(Bill.invoice_id, Bill.version).where(Bill.tenant_id == tenant_id,
                                                             Bill.invoice_id.in_(list(ids)))
    return {record_id: int(version) for record_id, version in session.execute(query)}


def delta_watermarks(session: Session, tenant_id: str) -> dict[str, datetime]:
    """Every endpoint's watermark of the tenant in one statement (a poll reads them with its lease)."""
    return {endpoint: value for endpoint, value in session.execute(
        select(Watermark.endpoint, Watermark.value).where(Watermark.tenant_id == tenant_id))}


def save_delta_watermark(session: Session, tenant_id: str, endpoint: str, value: datetime | None,
                         now: datetime) -> None:
    """Move the endpoint's watermark to `value` (None: leave it)."""
    if value is None:
        return
    mark = session.get(Watermark, (tenant_id, endpoint))
    if mark is None:
        session.add(Watermark(tenant_id=tenant_id, endpoint=endpoint, value=value, updated_at=now))
    elif mark.value != value:
        mark.value = value
        mark.updated_at = now


def _newer(stored: Any, arriving: Any) -> ColumnElement[bool]:
    result: ColumnElement[bool] = stored < arriving
    return result


def _forget(session: Session, model: type[Any], keys: list[tuple[str, str]]) -> None:
    """Rows the statement wrote behind the session's back: a copy it already loaded is read again."""
    for key in keys:
        loaded = session.identity_map.get(session.identity_key(model, key))
        if loaded is not None:
            session.expire(loaded)

