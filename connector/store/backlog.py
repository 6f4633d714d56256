"""The map backlog: per tenant, how many bills are DISCOVERED, so "was this the last bill to map?" costs one
row, never a count over the tenant's bills.

Every state change goes through store.audit.record, which notes here what it adds to or takes from the
backlog; the notes are written as one UPSERT per tenant when the transaction commits (or earlier, when a
mapping asks what is left), so the count moves in the same transaction as the bills it counts. The row is
locked from that write to the commit: two mappings finishing together are ordered, and exactly one of them
sees zero. A count below zero (bills made outside record) is recounted on the spot; the poll recounts its
tenant at start, so a count that drifted high costs at most one cycle of the sweeper's fallback.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import event, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from connector.domain.states import BillState
from connector.store.models import Bill, MapBacklog

_PENDING = "map_backlog_pending"  # Session.info key: tenant → change not yet written


def note(session: Session, tenant_id: str, source: str | None, target: str) -> None:
    """Remember what a bill's move from `source` to `target` does to its tenant's backlog."""
    change = (target == BillState.DISCOVERED) - (source == BillState.DISCOVERED)
    if change:
        pending: Counter[str] = session.info.setdefault(_PENDING, Counter())
        pending[tenant_id] += change


def pending(session: Session) -> bool:
    """Whether the session holds moves of bills not yet written to their tenants' backlogs."""
    return any((session.info.get(_PENDING) or Counter()).values())


def still_to_map(session: Session, tenant_id: str) -> int:
    """The tenant's bills still DISCOVERED once this transaction commits (its noted moves written now, the
    row locked until the commit). Recounted when the kept count cannot be right."""
    pending: Counter[str] = session.info.get(_PENDING) or Counter()
    left = _write(session, tenant_id, pending.pop(tenant_id, 0))
    return left if left >= 0 else recount(session, tenant_id)


def recount(session: Session, tenant_id: str) -> int:
    """Set the tenant's backlog to the true count. The row is locked first, so a mapping that has not yet
    written its own change waits for this commit and then applies it to the true count."""
    _write(session, tenant_id, 0)
    exact = select(func.count()).where(Bill.tenant_id == tenant_id, Bill.state == BillState.DISCOVERED)
    return int(session.execute(update(MapBacklog).where(MapBacklog.tenant_id == tenant_id)
                               .values(to_map=exact.scalar_subquery()).returning(MapBacklog.to_map)).scalar_one())


def _write(session: Session, tenant_id: str, change: int) -> int:
    """Add `change` to the tenant's row (made if missing) and return the new value: one statement."""
    statement = _UPSERTS[session.get_bind().dialect.name == "postgresql"]
    return int(session.connection().execute(statement, {"tenant_id": tenant_id, "to_map": change}).scalar_one())


def _upsert(insert: Any) -> Any:
    statement = insert(MapBacklog)  # its values come with each execution
    statement = statement.on_conflict_do_update(
        index_elements=[MapBacklog.tenant_id], set_={"to_map": MapBacklog.to_map + statement.excluded.to_map})
    return statement.returning(MapBacklog.to_map)


_UPSERTS = {True: _upsert(pg_insert), False: _upsert(sqlite_insert)}  # built once: every mapping writes it


@event.listens_for(Session, "before_commit")
def _write_pending(session: Session) -> None:
    pending: Counter[str] | None = session.info.pop(_PENDING, None)
    for tenant_id, change in sorted((pending or {}).items()):  # a fixed order: two writers never deadlock
        if change:
            _write(session, tenant_id, change)


@event.listens_for(Session, "after_rollback")
def _forget_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)
