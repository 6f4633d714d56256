"""Reference data that mapping reads: contacts (vendors), the chart of accounts, tracking categories, and
the If-Modified-Since marks of their own slower reads. Every write to a tenant's contacts or accounts moves
its `reference_version` in the same transaction (an ORM write by the flush hook below, a bulk statement by
calling bump_reference_version), so a worker's cached copy is checked with one number."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, event, select, update
from sqlalchemy.orm import Session

from connector.store.models import AccountRow, ContactRow, Tenant, TrackingCategoryRow, Watermark


@dataclass(frozen=True)
class Contact:
    contact_id: str
    name: str
    status: str
    is_supplier: bool
    merged_to: str | None
    version: int  # UpdatedDateUTC in ms
    payload: dict[str, Any]  # the contact as Xero sent it


@dataclass(frozen=True)
class Account:
    account_id: str
    code: str | None
    name: str
    status: str
    version: int
    payload: dict[str, Any] | None = None  # the account as Xero sent it (the GL-account file reads it)


@dataclass(frozen=True)
class TrackingCategory:
    category_id: str
    name: str
    status: str
    options: list[dict[str, Any]]  # {"id", "name", "status"}, archived ones too: old bills use them


def contact_ids_held(session: Session, tenant_id: str, contact_ids: Iterable[str]) -> set[str]:
    """Which of these contacts the ledger already holds for the tenant."""
    return set(session.scalars(select(ContactRow.contact_id).where(
        ContactRow.tenant_id == tenant_id, ContactRow.contact_id.in_(list(contact_ids)))))


def upsert_contact(session: Session, tenant_id: str, contact: Contact, *, read_at: datetime) -> None:
    row = session.get(ContactRow, (tenant_id, contact.contact_id))
    if row is None:
        row = ContactRow(tenant_id=tenant_id, contact_id=contact.contact_id)
        session.add(row)
    row.name = contact.name
    row.status = contact.status
    row.is_supplier = contact.is_supplier
    row.merged_to = contact.merged_to
    row.version = contact.version
    row.payload = contact.payload
    row.read_at = read_at
    row.unusable_reason = None  # a good version replaces an unusable one


def upsert_accounts(session: Session, tenant_id: str, accounts: Iterable[Account]) -> None:
    for account in accounts:
        row = session.get(AccountRow, (tenant_id, account.account_id))
        if row is None:
            row = AccountRow(tenant_id=tenant_id, account_id=account.account_id)
            session.add(row)
        row.code = account.code
        row.name = account.name
        row.status = account.status
        row.version = account.version
        if account.payload is not None:
            row.payload = account.payload
        row.unusable_reason = None


def replace_tracking_categories(session: Session, tenant_id: str, categories: Iterable[TrackingCategory]) -> None:
    """Xero has no delta for tracking categories: what it answered is the whole truth, so it replaces ours."""
    session.execute(delete(TrackingCategoryRow).where(TrackingCategoryRow.tenant_id == tenant_id))
    for category in categories:
        session.add(TrackingCategoryRow(tenant_id=tenant_id, category_id=category.category_id, name=category.name,
                                        status=category.status, options=category.options))


def chart_of_accounts(session: Session, tenant_id: str) -> list[Account]:
    """The tenant's accounts with a code, as Xero last listed them (usable ones), by code."""
    rows = session.scalars(select(AccountRow).where(
        AccountRow.tenant_id == tenant_id, AccountRow.code.is_not(None), AccountRow.unusable_reason.is_(None))
        .order_by(AccountRow.code))
    return [Account(r.account_id, r.code, r.name, r.status, r.version) for r in rows]


def tracking_lists(session: Session, tenant_id: str) -> list[TrackingCategory]:
    """The tenant's tracking categories with their options, as Xero last listed them (usable ones)."""
    rows = session.scalars(select(TrackingCategoryRow).where(
        TrackingCategoryRow.tenant_id == tenant_id, TrackingCategoryRow.unusable_reason.is_(None))
        .order_by(TrackingCategoryRow.name))
    return [TrackingCategory(r.category_id, r.name, r.status, list(r.options or [])) for r in rows]


def shared_chart(session: Session, tenant_ids: list[str]) -> tuple[list[Account], list[TrackingCategory]]:
    """The accounts and tracking categories of these tenants together (two queries for any number): each
    account code once (named as the first tenant listing it names it), each category once by name with
    every option any of them lists (once by name). What a profile's draft lists."""
    if not tenant_ids:
        return [], []
    order = {tenant_id: n for n, tenant_id in enumerate(tenant_ids)}
    accounts: dict[str, Account] = {}
    rows = sorted(session.scalars(select(AccountRow).where(
        AccountRow.tenant_id.in_(tenant_ids), AccountRow.code.is_not(None), AccountRow.unusable_reason.is_(None))),
        key=lambda r: order[r.tenant_id])
    for r in rows:
        accounts.setdefault(r.code or "", Account(r.account_id, r.code, r.name, r.status, r.version))
    categories: dict[str, TrackingCategory] = {}
    for c in sorted(session.scalars(select(TrackingCategoryRow).where(
            TrackingCategoryRow.tenant_id.in_(tenant_ids), TrackingCategoryRow.unusable_reason.is_(None))),
            key=lambda r: order[r.tenant_id]):
        merged = categories.setdefault(c.name, TrackingCategory(c.category_id, c.name, c.status, []))
        known = {str(option.get("name")) for option in merged.options}
        merged.options.extend(o for o in c.options or [] if str(o.get("name")) not in known)
    return ([accounts[code] for code in sorted(accounts)],
            [categories[name] for name in sorted(categories)])


def tracking_category_names(session: Session, tenant_id: str) -> list[str]:
    """The names of the tenant's tracking categories as Xero last listed them (usable ones)."""
    return list(session.scalars(select(TrackingCategoryRow.name).where(
        TrackingCategoryRow.tenant_id == tenant_id, TrackingCategoryRow.unusable_reason.is_(None))
        .order_by(TrackingCategoryRow.name)))


def advance_reference_watermarks(session: Session, tenant_id: str, endpoints: Iterable[str], value: datetime) -> None:
    """The tenant's reference reads of these endpoints are complete up to `value` (Xero's clock)."""
    for endpoint in endpoints:
        mark = session.get(Watermark, (tenant_id, endpoint))
        if mark is None:
            session.add(Watermark(tenant_id=tenant_id, endpoint=endpoint, value=value))
        else:
            mark.value = value


def bump_reference_version(session: Session, tenant_ids: Iterable[str]) -> None:
    """The tenants' contacts or accounts changed in this transaction: cached copies are stale once it commits."""
    ids = sorted(set(tenant_ids))  # a fixed order: two writers never deadlock
    if ids:
        session.connection().execute(  # on the connection: never flushes (this runs inside a flush too)
            update(Tenant).where(Tenant.id.in_(ids)).values(reference_version=Tenant.reference_version + 1))


@event.listens_for(Session, "before_flush")
def _reference_rows_changed(session: Session, _context: Any, _instances: Any) -> None:
    """Any contact or account the ORM writes moves its tenant's reference_version, in the same flush."""
    tenants = {row.tenant_id for row in (*session.new, *session.dirty, *session.deleted)
               if isinstance(row, ContactRow | AccountRow) and (row not in session.dirty or session.is_modified(row))}
    bump_reference_version(session, tenants)
