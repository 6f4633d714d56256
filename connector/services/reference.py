"""Reference data mapping needs: vendors (contacts), the chart of accounts and tracking categories.

Cheap on Xero's limits, on the tenant's slower reference cadence: accounts with their own
If-Modified-Since, tracking categories (no delta in Xero) whole, and suppliers as a Contacts delta
(`where=IsSupplier==true`, archived included, read by connector.xero.delta at the settings' page size:
the first read takes every supplier in one call or a few). A bill naming a contact we still do not
hold fetches it by `IDs=` (50 per call, `page=1` for the paged-only fields), following merges. A page of
contacts is stored in one statement (store.xero_records).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from connector.domain.intake import RecordKind, check_page, is_xero_id
from connector.domain.watermark import read_from
from connector.errors import XeroRequestRejected
from connector.services.context import Services
from connector.services.holds import ACCOUNT_REASONS, VENDOR_REASONS, reopen_held
from connector.store.db import Session
from connector.store.intake import (
    add_unusable_tracking_categories,
    column_lengths,
    mark_unusable_accounts,
    mark_unusable_contacts,
)
from connector.store.reference import (
    Account,
    Contact,
    TrackingCategory,
    advance_reference_watermarks,
    contact_ids_held,
    replace_tracking_categories,
    upsert_accounts,
)
from connector.store.tenants import get_tenant
from connector.store.xero_records import save_delta_watermark, upsert_contacts
from connector.xero.dates import ms_or_zero, ms_to_datetime
from connector.xero.delta import read_delta

log = logging.getLogger(__name__)

IDS_PER_CALL = 50  # Xero answers 404 to 53 or more GUIDs (URL length)
MERGE_DEPTH = 3

Get = Callable[[str, dict[str, str | int], Any], dict[str, Any]]


def resolve_contacts(services: Services, get: Get, tenant_id: str, contact_ids: Iterable[str]) -> int:
    """Fetch the contacts we do not hold (and the ones they were merged into); returns calls made."""
    calls = 0
    wanted = {i for i in contact_ids if is_xero_id(i)}  # Xero refuses a page that names a non-GUID: never ask
    for _ in range(MERGE_DEPTH):
        with services.ledger.transaction() as session:
            held = contact_ids_held(session, tenant_id, wanted)
        missing = sorted(wanted - held)
        if not missing:
            break
        merged_into: set[str] = set()
        for start in range(0, len(missing), IDS_PER_CALL):
            chunk = missing[start:start + IDS_PER_CALL]
            records, made = _contacts_by_ids(get, tenant_id, chunk)
            calls += made
            page = check_page(RecordKind.CONTACT, records, column_lengths())
            merged_into |= {str(data["MergedToContactID"]) for data in page.usable if data.get("MergedToContactID")}
            with services.ledger.transaction() as session:
                upsert_contacts(session, tenant_id, _contacts(page.usable), read_at=services.clock())
                mark_unusable_contacts(session, tenant_id, page.rejected, read_at=services.clock())
                reopen_held(session, tenant_id, VENDOR_REASONS, why="vendors arrived from Xero")
        wanted = merged_into
    return calls


def _contacts_by_ids(get: Get, tenant_id: str, ids: list[str]) -> tuple[list[Any], int]:
    """Contacts by `IDs=`, one call; if Xero refuses the call (400/404), each id alone, so one id it cannot
    take costs only its own bill a vendor (held vendor_unknown), never the poll. Returns records and calls."""
    try:
        body = get("Contacts", {"IDs": ",".join(ids), "page": 1, "includeArchived": "true"}, None)
        found = body.get("Contacts")
        return (found if isinstance(found, list) else []), 1
    except XeroRequestRejected as refused:
        if len(ids) == 1:
            log.warning("tenant %s: Xero refused contact %s (%s); its bills wait as vendor_unknown",
                        tenant_id, ids[0], refused)
            return [], 1
    records: list[Any] = []
    calls = 1
    for one in ids:
        found, made = _contacts_by_ids(get, tenant_id, [one])
        records += found
        calls += made
    return records, calls


@dataclass(frozen=True)
class ReferenceDue:
    """A reference read the tenant's cadence asks for, and where its reads start."""

    accounts_since: datetime | None
    contacts_mark: datetime | None  # the Contacts watermark (the delta reader subtracts the overlap)


def reference_due(session: Session, services: Services, tenant_id: str,
                  watermarks: Mapping[str, datetime]) -> ReferenceDue | None:
    """Whether the tenant's reference cadence is due, decided in the caller's transaction from its
    `watermarks` (store.xero_records.delta_watermarks): a poll reads it with its lease."""
    now = services.clock()
    tenant = get_tenant(session, tenant_id)
    if tenant.reference_read_at is not None and tenant.reference_read_at + timedelta(
            seconds=tenant.reference_interval_seconds) > now:
        return None
    overlap = timedelta(seconds=services.settings.watermark_overlap_seconds)
    return ReferenceDue(read_from(watermarks.get("Accounts"), overlap), watermarks.get("Contacts"))


def read_reference_if_due(services: Services, get: Get, tenant_id: str, due: ReferenceDue | None) -> int:
    """Accounts, tracking categories and a Contacts delta, when the tenant's reference cadence is `due`."""
    if due is None:
        return 0
    now = services.clock()
    accounts_since, contacts_since = due.accounts_since, due.contacts_mark
    calls = 2
    accounts = get("Accounts", {}, accounts_since)
    tracking = get("TrackingCategories", {"includeArchived": "true"}, None)
    server_ms = ms_or_zero(accounts.get("DateTimeUTC")) or int(now.timestamp() * 1000)  # Xero's clock, else ours
    account_page = check_page(RecordKind.ACCOUNT, accounts.get("Accounts"), column_lengths())
    category_page = check_page(RecordKind.TRACKING_CATEGORY, tracking.get("TrackingCategories"), column_lengths())
    with services.ledger.transaction() as session:
        upsert_accounts(session, tenant_id, _accounts(account_page.usable, now_ms=server_ms))
        mark_unusable_accounts(session, tenant_id, account_page.rejected)
        if category_page.envelope_problem is None:  # an answer without the list is not "no categories"
            replace_tracking_categories(session, tenant_id, _tracking_categories(category_page.usable))
            add_unusable_tracking_categories(session, tenant_id, category_page.rejected)
    contacts_mark = contacts_since
    for page in read_delta(get, services.settings, "Contacts", where="IsSupplier==true", watermark=contacts_mark,
                           params={"includeArchived": "true"}, lengths=column_lengths()):
        calls += 1
        mark = page.watermark(contacts_mark)
        with services.ledger.transaction() as session:
            upsert_contacts(session, tenant_id, _contacts(page.usable), read_at=services.clock())
            mark_unusable_contacts(session, tenant_id, page.rejected, read_at=services.clock())
            save_delta_watermark(session, tenant_id, "Contacts", mark, now)
        contacts_mark = mark
    with services.ledger.transaction() as session:
        advance_reference_watermarks(session, tenant_id, ("Accounts",), ms_to_datetime(server_ms))
        get_tenant(session, tenant_id).reference_read_at = now
        reopen_held(session, tenant_id, VENDOR_REASONS | ACCOUNT_REASONS, why="vendors and accounts re-read from Xero")
    return calls


def _contacts(records: list[dict[str, Any]]) -> list[Contact]:
    """The page's contacts as the ledger keeps them (one without ContactID is skipped, said so)."""
    found: list[Contact] = []
    for data in records:
        contact_id = data.get("ContactID")
        if not isinstance(contact_id, str):
            log.warning("a contact without ContactID was skipped")
            continue
        found.append(Contact(
            contact_id=contact_id,
            name=str(data.get("Name") or "")[:255],
            status=str(data.get("ContactStatus") or "ACTIVE"),
            is_supplier=bool(data.get("IsSupplier")),
            merged_to=data.get("MergedToContactID") or None,
            version=ms_or_zero(data.get("UpdatedDateUTC")),
            payload=data,
        ))
    return found


def _accounts(records: list[dict[str, Any]], now_ms: int) -> list[Account]:
    return [
        Account(account_id=data["AccountID"], code=data.get("Code") or None, name=str(data.get("Name") or "")[:255],
                status=str(data.get("Status") or "ACTIVE"), version=ms_or_zero(data.get("UpdatedDateUTC")) or now_ms,
                payload=data)
        for data in records if isinstance(data.get("AccountID"), str)
    ]


def _tracking_categories(records: list[dict[str, Any]]) -> list[TrackingCategory]:
    return [
        TrackingCategory(
            category_id=data["TrackingCategoryID"], name=str(data.get("Name") or ""),
            status=str(data.get("Status") or "ACTIVE"),
            options=[{"id": o.get("TrackingOptionID"), "name": o.get("Name"), "status": o.get("Status")}
                     for o in data.get("Options") or []],
        )
        for data in records if isinstance(data.get("TrackingCategoryID"), str)
    ]
