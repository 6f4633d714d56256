"""Reference data mapping needs: vendors (contacts), the chart of accounts and tracking categories.

Cheap on Xero's limits, on the tenant's slower reference cadence: accounts with their own
If-Modified-Since, tracking categories (no delta in Xero) whole, and suppliers as a Contacts delta
(`where=IsSupplier==true`, archived included, 1,000 a page: the first read takes every supplier in one
call or a few). A bill naming a contact we still do not hold fetches it by `IDs=` (50 per call,
`page=1` for the paged-only fields), following merges.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from connector.services.context import Services
from connector.services.holds import ACCOUNT_REASONS, VENDOR_REASONS, reopen_held
from connector.store.models import AccountRow, ContactRow, Tenant, TrackingCategoryRow, Watermark
from connector.xero.client import is_last_page
from connector.xero.dates import ms_or_zero, ms_to_datetime

log = logging.getLogger(__name__)

PAGE_SIZE = 1000
IDS_PER_CALL = 50  # Xero answers 404 to 53 or more GUIDs (URL length)
MERGE_DEPTH = 3

Get = Callable[[str, dict[str, str | int], Any], dict[str, Any]]


def resolve_contacts(services: Services, get: Get, tenant_id: str, contact_ids: Iterable[str]) -> int:
    """Fetch the contacts we do not hold (and the ones they were merged into); returns calls made."""
    calls = 0
    wanted = set(contact_ids)
    for _ in range(MERGE_DEPTH):
        with services.ledger.transaction() as session:
            held = set(session.scalars(select(ContactRow.contact_id).where(
                ContactRow.tenant_id == tenant_id, ContactRow.contact_id.in_(wanted))))
        missing = sorted(wanted - held)
        if not missing:
            break
        merged_into: set[str] = set()
        for start in range(0, len(missing), IDS_PER_CALL):
            chunk = missing[start:start + IDS_PER_CALL]
            body = get("Contacts", {"IDs": ",".join(chunk), "page": 1, "includeArchived": "true"}, None)
            calls += 1
            with services.ledger.transaction() as session:
                for data in body.get("Contacts", []):
                    _upsert_contact(session, tenant_id, data, services)
                    if data.get("MergedToContactID"):
                        merged_into.add(str(data["MergedToContactID"]))
                session.flush()
                reopen_held(session, tenant_id, VENDOR_REASONS, why="vendors arrived from Xero")
        wanted = merged_into
    return calls


def read_reference_if_due(services: Services, get: Get, tenant_id: str) -> int:
    """Accounts, tracking categories and a Contacts delta, when the tenant's reference cadence is due."""
    now = services.clock()
    with services.ledger.transaction() as session:
        tenant = session.get_one(Tenant, tenant_id)
        due = tenant.reference_read_at is None or tenant.reference_read_at + timedelta(
            seconds=tenant.reference_interval_seconds) <= now
        accounts_since = _mark(session, tenant_id, "Accounts")
        contacts_since = _mark(session, tenant_id, "Contacts")
    if not due:
        return 0
    calls = 2
    accounts = get("Accounts", {}, accounts_since)
    tracking = get("TrackingCategories", {"includeArchived": "true"}, None)
    server_ms = ms_or_zero(accounts.get("DateTimeUTC")) or int(now.timestamp() * 1000)  # Xero's clock, else ours
    with services.ledger.transaction() as session:
        _store_accounts(session, tenant_id, accounts.get("Accounts", []), now_ms=server_ms)
        _store_tracking(session, tenant_id, tracking.get("TrackingCategories", []))
    page = 1
    while True:
        body = get("Contacts", {"where": "IsSupplier==true", "includeArchived": "true", "page": page,
                                "pageSize": PAGE_SIZE}, contacts_since)
        calls += 1
        records = body.get("Contacts", [])
        with services.ledger.transaction() as session:
            for data in records:
                _upsert_contact(session, tenant_id, data, services)
        if is_last_page(body, page, len(records), PAGE_SIZE):
            break
        page += 1
    with services.ledger.transaction() as session:
        server_now = ms_to_datetime(server_ms)
        for endpoint in ("Accounts", "Contacts"):
            mark = session.get(Watermark, (tenant_id, endpoint))
            if mark is None:
                session.add(Watermark(tenant_id=tenant_id, endpoint=endpoint, value=server_now))
            else:
                mark.value = server_now
        session.get_one(Tenant, tenant_id).reference_read_at = now
        session.flush()
        reopen_held(session, tenant_id, VENDOR_REASONS | ACCOUNT_REASONS, why="vendors and accounts re-read from Xero")
    return calls


def _mark(session: Session, tenant_id: str, endpoint: str) -> Any:
    mark = session.get(Watermark, (tenant_id, endpoint))
    return None if mark is None else mark.value - timedelta(minutes=5)


def _upsert_contact(session: Session, tenant_id: str, data: dict[str, Any], services: Services) -> None:
    contact_id = data.get("ContactID")
    if not isinstance(contact_id, str):
        log.warning("tenant %s: a contact without ContactID was skipped", tenant_id)
        return
    row = session.get(ContactRow, (tenant_id, contact_id))
    if row is None:
        row = ContactRow(tenant_id=tenant_id, contact_id=contact_id)
        session.add(row)
    row.name = str(data.get("Name") or "")[:255]
    row.status = str(data.get("ContactStatus") or "ACTIVE")
    row.is_supplier = bool(data.get("IsSupplier"))
    row.merged_to = data.get("MergedToContactID") or None
    row.version = ms_or_zero(data.get("UpdatedDateUTC"))
    row.payload = data
    row.read_at = services.clock()


def _store_accounts(session: Session, tenant_id: str, records: list[dict[str, Any]], now_ms: int) -> None:
    for data in records:
        account_id = data.get("AccountID")
        if not isinstance(account_id, str):
            continue
        row = session.get(AccountRow, (tenant_id, account_id))
        if row is None:
            row = AccountRow(tenant_id=tenant_id, account_id=account_id)
            session.add(row)
        row.code = data.get("Code") or None
        row.name = str(data.get("Name") or "")[:255]
        row.status = str(data.get("Status") or "ACTIVE")
        row.version = ms_or_zero(data.get("UpdatedDateUTC")) or now_ms


def _store_tracking(session: Session, tenant_id: str, records: list[dict[str, Any]]) -> None:
    """No delta exists for tracking categories: the answer is the whole truth, so replace ours."""
    session.execute(delete(TrackingCategoryRow).where(TrackingCategoryRow.tenant_id == tenant_id))
    for data in records:
        if isinstance(data.get("TrackingCategoryID"), str):
            session.add(TrackingCategoryRow(
                tenant_id=tenant_id, category_id=data["TrackingCategoryID"], name=str(data.get("Name") or ""),
                status=str(data.get("Status") or "ACTIVE"),
                options=[{"id": o.get("TrackingOptionID"), "name": o.get("Name"), "status": o.get("Status")}
                         for o in data.get("Options") or []],
            ))


