"""poll_tenant: read ACCPAY bills and purchase orders changed since the watermark; upsert them.

Each page is committed before its follow-up messages are sent, and the watermark moves only after
every page of an endpoint is committed, so a crash anywhere re-reads rather than skips.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.domain.paging import Cursor, next_cursor
from connector.domain.po_numbers import po_key
from connector.domain.states import REMAPPABLE, BillState
from connector.domain.watermark import next_watermark, read_from
from connector.errors import RecordProblem, XeroGrantRevoked, XeroRateLimited, XeroTenantDisconnected, XeroTokenExpired
from connector.services.context import Services
from connector.services.holds import PO_REASONS, reopen_held
from connector.services.messages import MapInvoice, Message
from connector.services.reference import read_reference_if_due, resolve_contacts
from connector.store.audit import record
from connector.store.models import Bill, OperationalEvent, PurchaseOrderRow, Tenant, Watermark
from connector.xero.client import is_last_page
from connector.xero.dates import ms_or_zero, ms_to_datetime

log = logging.getLogger(__name__)

# unitdp=4: unit prices as entered (Xero rounds them to cents otherwise, and quantity x unit stops adding up)
BILLS_QUERY = {"where": 'Type=="ACCPAY"', "order": "UpdatedDateUTC ASC", "unitdp": "4"}
PO_QUERY = {"order": "UpdatedDateUTC ASC", "unitdp": "4"}


@dataclass
class PollReport:
    tenant_id: str
    bills_seen: int = 0
    bills_changed: int = 0
    purchase_orders_seen: int = 0
    skipped: bool = False


def poll_tenant(services: Services, tenant_id: str, emit: Callable[[Message], None]) -> PollReport:
    """One delta poll; a disconnected tenant or a day-limit 429 is recorded on the tenant and re-raised."""
    try:
        return _poll(services, tenant_id, emit)
    except XeroTenantDisconnected:
        with services.ledger.transaction() as session:
            session.get_one(Tenant, tenant_id).status = "DISCONNECTED"
            session.add(OperationalEvent(kind="tenant_disconnected", tenant_id=tenant_id,
                                         message="Xero answered 403 AuthenticationUnsuccessful for this tenant"))
        log.error("tenant %s: Xero says 403 AuthenticationUnsuccessful; marked DISCONNECTED", tenant_id)
        raise
    except XeroRateLimited as exc:
        if exc.problem == "day" and exc.retry_after:
            with services.ledger.transaction() as session:
                until = services.clock() + timedelta(seconds=exc.retry_after)
                session.get_one(Tenant, tenant_id).parked_until = until
                session.add(OperationalEvent(kind="tenant_parked", tenant_id=tenant_id,
                                             message=f"Xero day limit reached; polls resume at {until.isoformat()}"))
            log.warning("tenant %s: Xero day limit reached; parked until %s", tenant_id, until.isoformat())
        raise


def _poll(services: Services, tenant_id: str, emit: Callable[[Message], None]) -> PollReport:
    report = PollReport(tenant_id)
    with services.ledger.transaction() as session:
        tenant = session.get_one(Tenant, tenant_id)
        now = services.clock()
        if tenant.status != "ACTIVE" or (tenant.parked_until and tenant.parked_until > now):
            report.skipped = True
            return report
        grant_id = tenant.grant_id
    reader = TenantReader(services, tenant_id, grant_id)
    read_reference_if_due(services, reader.get, tenant_id)
    report.purchase_orders_seen, _ = _read(
        services, reader, tenant_id, "PurchaseOrders", PO_QUERY, upsert_purchase_orders, emit
    )

    def resolve_vendors(records: list[dict[str, Any]]) -> None:
        ids = {str(r["Contact"]["ContactID"]) for r in records if isinstance(r.get("Contact"), dict)
               and r["Contact"].get("ContactID")}
        resolve_contacts(services, reader.get, tenant_id, ids)

    report.bills_seen, report.bills_changed = _read(
        services, reader, tenant_id, "Invoices", BILLS_QUERY, upsert_bills, emit, before_emit=resolve_vendors
    )
    with services.ledger.transaction() as session:
        session.get_one(Tenant, tenant_id).last_polled_at = services.clock()
    log.info("tenant %s polled: %s bills seen, %s new or changed", tenant_id, report.bills_seen,
             report.bills_changed)
    return report


class TenantReader:
    """GETs for one tenant in one poll; on 401 the token is replaced once through the shared path (by the
    token another worker already refreshed, if any), and a replacement refused too marks the grant only if
    nobody has replaced it since; otherwise the poll is simply tried again."""

    def __init__(self, services: Services, tenant_id: str, grant_id: int) -> None:
        self._services = services
        self._tenant_id = tenant_id
        self._grant_id = grant_id
        self._token = services.tokens.issue(grant_id)

    def get(self, endpoint: str, params: dict[str, str | int], since: datetime | None) -> dict[str, Any]:
        xero, tokens = self._services.xero, self._services.tokens
        try:
            return xero.get(self._token.value, self._tenant_id, endpoint, params, modified_since=since)
        except XeroTokenExpired:
            self._token = tokens.reissue(self._grant_id, self._token)
        try:
            return xero.get(self._token.value, self._tenant_id, endpoint, params, modified_since=since)
        except XeroTokenExpired as again:
            if tokens.mark_unauthorised(self._grant_id, self._token, str(again)):
                raise XeroGrantRevoked(f"Xero grant {self._grant_id}: a fresh token was refused too") from None
            raise XeroTokenExpired(f"Xero grant {self._grant_id}: a token was refused after another worker "
                                   "replaced it; the next try uses the new one") from None


Upsert = Callable[[Session, str, list[dict[str, Any]]], list[Message]]


def _read(
    services: Services, reader: TenantReader, tenant_id: str, endpoint: str, query: dict[str, str],
    upsert: Upsert, emit: Callable[[Message], None],
    before_emit: Callable[[list[dict[str, Any]]], None] | None = None,
) -> tuple[int, int]:
    """Read an endpoint since its watermark, page by page (see domain.paging). Each page's records and
    the watermark move in one transaction, so a retry after any failure resumes where it stopped."""
    previous = _watermark(services, tenant_id, endpoint)
    overlap = timedelta(seconds=services.settings.watermark_overlap_seconds)
    cursor: Cursor | None = Cursor(read_from(previous, overlap), 1)
    size = services.settings.xero_page_size
    started: datetime | None = None
    seen = sent = 0
    while cursor is not None:
        params: dict[str, str | int] = {**query, "page": cursor.page, "pageSize": size}
        body = reader.get(endpoint, params, cursor.since)
        records = list(body.get(endpoint, []))
        started = started or _server_time(body.get("DateTimeUTC"))
        stamps = [_updated_ms(r) for r in records]
        newest = ms_to_datetime(max(stamps)) if stamps and max(stamps) > 0 else None
        mark = next_watermark(previous, newest, started)

        messages = services.ledger.retrying(
            partial(_commit_page, upsert=upsert, tenant_id=tenant_id, endpoint=endpoint, records=records, mark=mark,
                    now=services.clock())
        )
        previous = mark
        if before_emit is not None and messages:
            before_emit(records)
        for message in messages:
            emit(message)
        seen, sent = seen + len(records), sent + len(messages)
        cursor = next_cursor(cursor, size, stamps, final=is_last_page(body, cursor.page, len(records), size))
    return seen, sent


def _commit_page(session: Session, *, upsert: Upsert, tenant_id: str, endpoint: str,
                 records: list[dict[str, Any]], mark: datetime | None, now: datetime) -> list[Message]:
    """One page's records and the watermark after them, in one transaction."""
    found = upsert(session, tenant_id, records)
    _save_watermark(session, tenant_id, endpoint, mark, now)
    return found


def _save_watermark(session: Session, tenant_id: str, endpoint: str, value: datetime | None,
                    now: datetime) -> datetime | None:
    if value is None:
        return None
    mark = session.get(Watermark, (tenant_id, endpoint))
    if mark is None:
        session.add(Watermark(tenant_id=tenant_id, endpoint=endpoint, value=value, updated_at=now))
    elif mark.value != value:
        mark.value = value
        mark.updated_at = now
    return value


def _watermark(services: Services, tenant_id: str, endpoint: str) -> datetime | None:
    with services.ledger.transaction() as session:
        mark = session.get(Watermark, (tenant_id, endpoint))
        return None if mark is None else mark.value


def _server_time(value: object) -> datetime | None:
    ms = ms_or_zero(value)
    return ms_to_datetime(ms) if ms else None


def _updated_ms(data: dict[str, Any]) -> int:
    return ms_or_zero(data.get("UpdatedDateUTC"))


def upsert_purchase_orders(session: Session, tenant_id: str, records: list[dict[str, Any]]) -> list[Message]:
    """Store the page's purchase orders; new or changed ones re-open bills held for an unknown PO."""
    changed = 0
    for data in records:
        po_id = data.get("PurchaseOrderID")
        if not isinstance(po_id, str):
            log.warning("tenant %s: purchase order without PurchaseOrderID skipped", tenant_id)
            continue
        version = _updated_ms(data)
        row = session.get(PurchaseOrderRow, (tenant_id, po_id))
        if row is not None and row.version >= version:
            continue
        if row is None:
            row = PurchaseOrderRow(tenant_id=tenant_id, purchase_order_id=po_id)
            session.add(row)
        number = str(data.get("PurchaseOrderNumber") or "")
        contact = data.get("Contact") or {}
        row.number = number
        row.key = po_key(number)
        row.contact_id = contact.get("ContactID") if isinstance(contact, dict) else None
        row.status = str(data.get("Status") or "")
        row.version = version
        row.payload = data
        changed += 1
    if not changed:
        return []
    session.flush()
    return reopen_held(session, tenant_id, PO_REASONS, why=f"{changed} purchase orders new or changed in Xero")


def upsert_bills(session: Session, tenant_id: str, records: list[dict[str, Any]]) -> list[Message]:
    """New or changed bills go (back) to DISCOVERED; a re-seen unchanged version does nothing."""
    ids = [r["InvoiceID"] for r in records if isinstance(r.get("InvoiceID"), str)]
    existing = {
        b.invoice_id: b
        for b in session.scalars(select(Bill).where(Bill.tenant_id == tenant_id, Bill.invoice_id.in_(ids)))
    }
    messages: list[Message] = []
    for data in records:
        invoice_id = data.get("InvoiceID")
        if not isinstance(invoice_id, str) or not invoice_id:
            log.error("%s", RecordProblem(f"tenant {tenant_id} invoice <unknown>", "InvoiceID", "is missing"))
            continue
        version = _updated_ms(data)
        bill = existing.get(invoice_id)
        if bill is not None and bill.version >= version:
            continue
        if bill is None:
            bill = Bill(tenant_id=tenant_id, invoice_id=invoice_id, state=None, reasons=[])
            session.add(bill)
        bill.version = version
        bill.payload = data
        bill.invoice_number = str(data.get("InvoiceNumber") or "")[:255]
        bill.xero_status = str(data.get("Status") or "")
        if bill.state is None or BillState(bill.state) in REMAPPABLE:
            bill.reasons = []
            record(session, bill, BillState.DISCOVERED, reason="new" if bill.id is None else "changed in Xero")
            messages.append(MapInvoice(tenant_id, invoice_id, version))
        elif bill.state == BillState.DELIVERED:
            record(session, bill, BillState.CHANGED_AFTER_DELIVERY, reason="changed in Xero after delivery")
        else:
            # In a batch or failed: the file's bytes are fixed; delivery compares versions afterwards.
            log.info("bill %s changed in Xero while %s", invoice_id, bill.state)
    session.flush()
    return messages
