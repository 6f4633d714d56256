"""Bills waiting on a person or on the world: held ones (and excluded ones) come back to be mapped when
what stopped them may have changed, and a person finds one by its InvoiceID to release it."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import ColumnElement, Text, and_, cast, or_, select
from sqlalchemy.orm import Session, defer

from connector.domain.states import BillState
from connector.store.audit import record
from connector.store.models import Bill


def held_bills(session: Session, tenant_id: str | Iterable[str] | None = None) -> list[Bill]:
    """HELD bills, of one tenant, of several or of all, in a stable order (tenant, then when they were
    first seen)."""
    query = select(Bill).where(Bill.state == BillState.HELD).order_by(Bill.tenant_id, Bill.id)
    if isinstance(tenant_id, str):
        query = query.where(Bill.tenant_id == tenant_id)
    elif tenant_id is not None:
        query = query.where(Bill.tenant_id.in_(list(tenant_id)))
    return list(session.scalars(query))


class Reopened(NamedTuple):
    """A bill sent back to DISCOVERED: what its map message needs."""

    invoice_id: str
    version: int


def reopen_held_for(session: Session, tenant_id: str, codes: Iterable[str], *, reason: str,
                    actor: str, due_by: datetime | None = None) -> list[Reopened]:
    """The tenant's HELD bills held for any of these reason codes go back to DISCOVERED (audited with
    `reason`) to be mapped again; returns them. With `due_by`, only those whose document retry
    (`documents_retry_at`) is due by then: one range of ix_bills_documents_retry."""
    return _reopen(session, tenant_id, BillState.HELD, codes, reason=reason, actor=actor, due_by=due_by)


def reopen_excluded_for(session: Session, tenant_id: str, codes: Iterable[str], *, reason: str,
                        actor: str) -> list[Reopened]:
    """The tenant's EXCLUDED bills excluded for any of these reason codes go back to DISCOVERED; returns them."""
    return _reopen(session, tenant_id, BillState.EXCLUDED, codes, reason=reason, actor=actor)


FULL_ROWS_AT_ONCE = 1_000  # bills read in full by one statement, once their reasons chose them


def bills_in_state_for(session: Session, tenant_id: str, state: BillState, codes: Iterable[str]) -> list[Bill]:
    """The tenant's bills in `state` for any of these reason codes (what a re-open would take), unchanged,
    read in full (see _chosen)."""
    chosen = _chosen(session, tenant_id, state, codes)
    found: list[Bill] = []
    for start in range(0, len(chosen), FULL_ROWS_AT_ONCE):
        found += session.scalars(select(Bill).where(Bill.id.in_(chosen[start:start + FULL_ROWS_AT_ONCE]))
                                 .order_by(Bill.id))
    return found


def _chosen(session: Session, tenant_id: str, state: BillState, codes: Iterable[str],
            due_by: datetime | None = None) -> list[int]:
    """The ids of the tenant's bills in `state` held (or excluded) for any of these reason codes. The ledger
    returns only the rows whose reasons name one of the codes (their JSON text holds it as a string), each
    then checked exactly here: each poll and each page of POs or new vendors asks this, and a tenant's
    other held bills (tens of thousands in a large one) never come into memory for it."""
    wanted = sorted(set(codes))
    if not wanted:
        return []
    query = select(Bill.id, Bill.reasons).where(Bill.tenant_id == tenant_id, Bill.state == state, _naming(wanted))
    if due_by is not None:
        query = query.where(Bill.documents_retry_at <= due_by)
    rows = session.execute(query.order_by(Bill.id))
    return [bill_id for bill_id, reasons in rows if any(r.get("code") in wanted for r in reasons)]


def _naming(codes: Iterable[str]) -> ColumnElement[bool]:
    """Rows whose reasons' JSON text holds one of these codes as a string (each then checked exactly)."""
    text = cast(Bill.reasons, Text)
    return or_(*[text.contains(f'"{code}"', autoescape=True) for code in sorted(set(codes))])


def _reopen(session: Session, tenant_id: str, state: BillState, codes: Iterable[str], *, reason: str,
            actor: str, due_by: datetime | None = None) -> list[Reopened]:
    """Chosen bills re-opened a thousand at a time, each thousand written before the next is read, so a
    re-open of many (a PO every held bill waited for) never holds more than that many rows; their Xero
    records and mappings are not read at all."""
    chosen = _chosen(session, tenant_id, state, codes, due_by)
    reopened: list[Reopened] = []
    for start in range(0, len(chosen), FULL_ROWS_AT_ONCE):
        for bill in session.scalars(select(Bill).where(Bill.id.in_(chosen[start:start + FULL_ROWS_AT_ONCE]))
                                    .options(defer(Bill.payload), defer(Bill.mapping)).order_by(Bill.id)):
            record(session, bill, BillState.DISCOVERED, reason=reason, actor=actor)
            reopened.append(Reopened(bill.invoice_id, bill.version))
        session.flush()
    return reopened


def reopen_many(session: Session, tenant_ids: list[str], *, held_for: Iterable[str],
                excluded_for: Mapping[str, Collection[str]], reason: str, actor: str) -> dict[str, int]:
    """For many tenants at once (a profile's map changed): their HELD bills held for any of `held_for` and
    their EXCLUDED bills excluded for any of that tenant's `excluded_for` codes go back to DISCOVERED,
    audited; one query chooses them for a thousand tenants (by their reasons alone, as `_chosen` does),
    then the chosen are re-opened a thousand at a time without their Xero records or mappings: a large
    tenant's history of excluded bills never comes into memory whole. Returns how many each tenant
    re-opened."""
    held_codes = set(held_for)
    counted: dict[str, int] = {}
    for start in range(0, len(tenant_ids), 1000):  # a bounded IN list
        chunk = tenant_ids[start:start + 1000]
        by_codes: dict[frozenset[str], list[str]] = {}  # tenants by their excluded codes: a few kinds
        for tenant_id in chunk:
            by_codes.setdefault(frozenset(excluded_for.get(tenant_id, ())), []).append(tenant_id)
        kinds = [and_(Bill.tenant_id.in_(chunk), Bill.state == BillState.HELD, _naming(held_codes))] \
            if held_codes else []
        kinds += [and_(Bill.tenant_id.in_(tenants), Bill.state == BillState.EXCLUDED, _naming(codes))
                  for codes, tenants in by_codes.items() if codes]
        if not kinds:
            continue
        rows = session.execute(select(Bill.id, Bill.tenant_id, Bill.state, Bill.reasons).where(or_(*kinds))
                               .order_by(Bill.tenant_id, Bill.id))
        chosen = [bill_id for bill_id, tenant_id, state, reasons in rows
                  if any(r.get("code") in (held_codes if state == BillState.HELD else excluded_for.get(tenant_id, ()))
                         for r in reasons)]
        for at in range(0, len(chosen), FULL_ROWS_AT_ONCE):
            for bill in session.scalars(select(Bill).where(Bill.id.in_(chosen[at:at + FULL_ROWS_AT_ONCE]))
                                        .options(defer(Bill.payload), defer(Bill.mapping)).order_by(Bill.id)):
                record(session, bill, BillState.DISCOVERED, reason=reason, actor=actor)
                counted[bill.tenant_id] = counted.get(bill.tenant_id, 0) + 1
            session.flush()
    return counted


def bills_with_invoice_id(session: Session, invoice_id: str,
                          tenant_id: str | Iterable[str] | None = None) -> list[Bill]:
    """Every bill with this Xero InvoiceID (one per tenant that has it), or those of `tenant_id` (one
    tenant or several)."""
    query = select(Bill).where(Bill.invoice_id == invoice_id)
    if isinstance(tenant_id, str):
        query = query.where(Bill.tenant_id == tenant_id)
    elif tenant_id is not None:
        query = query.where(Bill.tenant_id.in_(list(tenant_id)))
    return list(session.scalars(query))
