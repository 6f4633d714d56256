"""What `connector status` and the demo ask the ledger: counts, bills waiting, files, and what a person
must look at. Reads only."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connector.domain.states import BatchState, BillState
from connector.store.grants import GrantStatus
from connector.store.models import Batch, Bill, Tenant, XeroGrant


def bill_counts_by_state(session: Session, tenant_id: str | None = None) -> dict[str, int]:
    query = select(Bill.state, func.count()).group_by(Bill.state)
    if tenant_id:
        query = query.where(Bill.tenant_id == tenant_id)
    return {state: count for state, count in session.execute(query)}


def credit_note_count(session: Session, tenant_id: str | None = None) -> int:
    """How many of the ledger's documents are supplier credit notes (the rest are bills)."""
    query = select(func.count()).select_from(Bill).where(Bill.document_type == "CREDIT_NOTE")
    if tenant_id:
        query = query.where(Bill.tenant_id == tenant_id)
    return int(session.scalar(query) or 0)


def held_and_excluded_bills(session: Session, tenant_id: str | None = None) -> list[Bill]:
    """Bills that wait on a person (HELD) or were left out on purpose (EXCLUDED), oldest first."""
    query = select(Bill).where(Bill.state.in_([BillState.HELD, BillState.EXCLUDED])).order_by(Bill.id)
    if tenant_id:
        query = query.where(Bill.tenant_id == tenant_id)
    return list(session.scalars(query))


def files(session: Session, tenant_id: str | None = None) -> list[tuple[str, int, str]]:
    """Every file as (name, bills in it, state), per tenant in delivery order."""
    query = select(Batch.name, Batch.bill_count, Batch.state).order_by(Batch.tenant_id, Batch.sequence)
    if tenant_id:
        query = query.where(Batch.tenant_id == tenant_id)
    return [(name, count, state) for name, count, state in session.execute(query)]


def failed_files(session: Session, tenant_id: str | None = None) -> list[tuple[str, str | None]]:
    """FAILED files as (name, last error): delivery gave up and a person must act."""
    query = select(Batch.name, Batch.last_error).where(Batch.state == BatchState.FAILED)
    if tenant_id:
        query = query.where(Batch.tenant_id == tenant_id)
    return [(name, error) for name, error in session.execute(query)]


def grants_not_active(session: Session) -> list[tuple[int, str]]:
    """Grants as (id, status) that are not ACTIVE: their tenants are not polled until a person acts."""
    rows = session.execute(select(XeroGrant.id, XeroGrant.status).where(XeroGrant.status != GrantStatus.ACTIVE))
    return [(grant_id, status) for grant_id, status in rows]


def tenant_statuses(session: Session) -> list[tuple[str, str, datetime | None]]:
    """Every tenant as (id, status, parked until)."""
    rows = session.execute(select(Tenant.id, Tenant.status, Tenant.parked_until))
    return [(tenant_id, status, parked) for tenant_id, status, parked in rows]
