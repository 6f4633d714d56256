"""Poll liveness in the ledger: which tenants are due, the poll lease, its heartbeat, parking and unparking.

A running poll holds `tenants.poll_lease_until` and renews it as it works; the value it last wrote is its
proof of ownership, so a poll that lost its lease (it stalled past it and another took over) cannot renew
it or commit another page. `poll_runs` counts the runs that took the lease and have not ended.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.orm import Session

from connector.domain.cadence import next_poll_slot
from connector.domain.tenants import POLL_RUN_LIMIT, PollEvent, TenantStatus
from connector.errors import PermanentError
from connector.store.grants import GrantStatus
from connector.store.models import OperationalEvent, Tenant, XeroGrant


class PollLeaseLost(PermanentError):
    """Another poll took over this tenant (ours stalled past its lease): this one stops, that one goes on."""


@dataclass
class PollLease:
    """The lease one poll holds; `until` is the value it last wrote, and changes only after a commit."""

    tenant_id: str
    until: datetime


@dataclass(frozen=True)
class DuePoll:
    tenant_id: str
    interval_seconds: int
    lapsed_lease_until: datetime | None  # set when the last poll's worker died without ending it
    runs: int


@dataclass(frozen=True)
class PollStanding:
    """Why a poll could not take the lease."""

    lease_until: datetime | None
    runs: int
    parked_reason: str | None


def _free_or_lapsed(now: datetime) -> ColumnElement[bool]:
    return or_(Tenant.poll_lease_until.is_(None), Tenant.poll_lease_until <= now)


def due_polls(session: Session, now: datetime, tenant_id: str | None = None) -> list[DuePoll]:
    """Active tenants of active grants whose cadence is due and who hold no poll lease, or whose poll's
    lease lapsed (its worker died); never a parked one. With `tenant_id`, that tenant if it is due."""
    only = [Tenant.id == tenant_id] if tenant_id is not None else []
    rows = session.execute(
        select(Tenant.id, Tenant.poll_interval_seconds, Tenant.poll_lease_until, Tenant.poll_runs)
        .join(XeroGrant, XeroGrant.id == Tenant.grant_id)
        .where(Tenant.status == TenantStatus.ACTIVE, XeroGrant.status == GrantStatus.ACTIVE)
        .where(Tenant.poll_parked_reason.is_(None), *only)
        .where(or_(Tenant.parked_until.is_(None), Tenant.parked_until <= now))
        .where(or_(
            and_(Tenant.poll_lease_until.is_(None), or_(Tenant.next_poll_at.is_(None), Tenant.next_poll_at <= now)),
            Tenant.poll_lease_until <= now,
        ))
        .order_by(Tenant.id)
    )
    return [DuePoll(tenant_id, interval, lease, runs) for tenant_id, interval, lease, runs in rows]


def claim_poll(session: Session, due: DuePoll, now: datetime, next_poll_at: datetime) -> bool:
    """Claim a due tenant for one poll message: `next_poll_at` moves to the end of a dispatch lease (the
    poll moves it by the whole cadence once it starts) and a lapsed lease is cleared, so a second tick (or
    a second beat) finds nothing to claim, and a message lost before its poll started is sent again."""
    lease = (Tenant.poll_lease_until.is_(None) if due.lapsed_lease_until is None
             else Tenant.poll_lease_until == due.lapsed_lease_until)
    claimed = session.execute(
        update(Tenant)
        .where(Tenant.id == due.tenant_id, Tenant.poll_parked_reason.is_(None), lease)
        .where(Tenant.poll_runs < POLL_RUN_LIMIT)
        .where(or_(Tenant.next_poll_at.is_(None), Tenant.next_poll_at <= now, Tenant.poll_lease_until <= now))
        .values(next_poll_at=next_poll_at, poll_lease_until=None)
        .execution_options(synchronize_session=False)
    )
    return getattr(claimed, "rowcount", 0) == 1


CLAIMED_AT_ONCE = 1000  # tenants per claiming UPDATE (SQLite caps bound parameters)


def claim_polls(session: Session, tenant_ids: list[str], now: datetime, next_poll_at: datetime) -> list[str]:
    """`claim_poll` for many due tenants whose polls hold no lease, in one statement (a thousand at a time):
    returns those claimed; one claimed meanwhile by another tick, or taken by a poll, is not among them."""
    claimed: list[str] = []
    for start in range(0, len(tenant_ids), CLAIMED_AT_ONCE):
        claimed += session.scalars(
            update(Tenant)
            .where(Tenant.id.in_(tenant_ids[start:start + CLAIMED_AT_ONCE]), Tenant.poll_parked_reason.is_(None),
                   Tenant.poll_lease_until.is_(None), Tenant.poll_runs < POLL_RUN_LIMIT)
            .where(or_(Tenant.next_poll_at.is_(None), Tenant.next_poll_at <= now))
            .values(next_poll_at=next_poll_at)
            .returning(Tenant.id)
            .execution_options(synchronize_session=False)
        )
    return claimed


def take_poll_lease(session: Session, tenant_id: str, now: datetime, until: datetime) -> PollLease | None:
    """Start a poll: take the lease if it is free or lapsed and the tenant's polls are neither parked nor
    out of runs, count the run, and move the cadence on from now (the dispatcher only moved it by a lease,
    so a message lost before any poll started is dispatched again) to the tenant's own slot of its cadence
    (domain.cadence: tenants onboarded together spread over the cycle instead of polling at one tick).
    None when it was not taken (see `poll_standing` for why)."""
    interval = session.get_one(Tenant, tenant_id).poll_interval_seconds or 0  # read by `pollable` already
    taken = session.execute(
        update(Tenant)
        .where(Tenant.id == tenant_id, Tenant.poll_parked_reason.is_(None), _free_or_lapsed(now))
        .where(Tenant.poll_runs < POLL_RUN_LIMIT)
        .values(poll_lease_until=until, poll_runs=Tenant.poll_runs + 1,
                next_poll_at=next_poll_slot(tenant_id, interval, now))
        .execution_options(synchronize_session=False)
    )
    return PollLease(tenant_id, until) if getattr(taken, "rowcount", 0) == 1 else None


def poll_standing(session: Session, tenant_id: str) -> PollStanding:
    row = session.execute(
        select(Tenant.poll_lease_until, Tenant.poll_runs, Tenant.poll_parked_reason).where(Tenant.id == tenant_id)
    ).one()
    return PollStanding(row.poll_lease_until, row.poll_runs, row.poll_parked_reason)


def renew_poll_lease(session: Session, lease: PollLease, until: datetime) -> None:
    """The heartbeat; raises PollLeaseLost (rolling back the caller's transaction) if the lease is not ours.
    The caller sets `lease.until` once its transaction has committed."""
    renewed = session.execute(
        update(Tenant)
        .where(Tenant.id == lease.tenant_id, Tenant.poll_lease_until == lease.until)
        .values(poll_lease_until=until)
        .execution_options(synchronize_session=False)
    )
    if getattr(renewed, "rowcount", 0) != 1:
        raise PollLeaseLost(f"tenant {lease.tenant_id}: the poll lease was taken over; this poll stops")


def end_poll(session: Session, lease: PollLease, *, polled_at: datetime | None = None,
             resume_by: datetime | None = None) -> bool:
    """The poll ended (finished, failed in a way it recorded, or handed over): free the lease and reset the
    run count. A poll handing the rest to a fresh one leaves the tenant due by `resume_by`, so that if the
    fresh poll's message is lost the dispatcher sends another. False if the lease was no longer ours (the
    count then belongs to the poll that holds it)."""
    values: dict[str, object] = {"poll_lease_until": None, "poll_runs": 0}
    if polled_at is not None:
        values["last_polled_at"] = polled_at
    if resume_by is not None:
        values["next_poll_at"] = resume_by
    ended = session.execute(
        update(Tenant)
        .where(Tenant.id == lease.tenant_id, Tenant.poll_lease_until == lease.until)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return getattr(ended, "rowcount", 0) == 1


def give_back_run(session: Session, tenant_id: str) -> None:
    """A poll that lost its lease to another (it outlived it: a slow machine, a long wait) found out and
    stopped: it ended alive, so its run is not one of those that died; the count keeps the others'."""
    session.execute(
        update(Tenant)
        .where(Tenant.id == tenant_id, Tenant.poll_runs > 0)
        .values(poll_runs=Tenant.poll_runs - 1)
        .execution_options(synchronize_session=False)
    )


def park_polls(session: Session, tenant_id: str, reason: str, now: datetime) -> bool:
    """Stop the tenant's polls until a person clears them (`unpark_polls`); recorded once, as an event."""
    parked = session.execute(
        update(Tenant)
        .where(Tenant.id == tenant_id, Tenant.poll_parked_reason.is_(None))
        .values(poll_parked_reason=reason, poll_lease_until=None)
        .execution_options(synchronize_session=False)
    )
    if getattr(parked, "rowcount", 0) != 1:
        return False
    session.add(OperationalEvent(kind=PollEvent.PARKED, tenant_id=tenant_id, message=reason, at=now))
    return True


def unpark_polls(session: Session, tenant_id: str) -> bool:
    """A person looked at a parked tenant: its polls start again at the next tick, with a fresh count."""
    cleared = session.execute(
        update(Tenant)
        .where(Tenant.id == tenant_id, Tenant.poll_parked_reason.is_not(None))
        .values(poll_parked_reason=None, poll_runs=0, poll_lease_until=None, next_poll_at=None)
        .execution_options(synchronize_session=False)
    )
    return getattr(cleared, "rowcount", 0) == 1


def record_poll_resumed(session: Session, tenant_id: str, runs: int, lapsed_at: datetime, now: datetime) -> None:
    session.add(OperationalEvent(
        kind=PollEvent.RESUMED, tenant_id=tenant_id, at=now,
        message=f"the poll of tenant {tenant_id} stopped renewing its lease (it ran out at {lapsed_at.isoformat()};"
                f" its worker died); dispatched again after {runs} unfinished run(s), at most {POLL_RUN_LIMIT}",
    ))


def parked_polls(session: Session, tenant_id: str | None = None) -> list[tuple[str, str]]:
    """Tenants whose polls are parked, with the reason."""
    query = (select(Tenant.id, Tenant.poll_parked_reason).where(Tenant.poll_parked_reason.is_not(None))
             .order_by(Tenant.id))
    if tenant_id is not None:
        query = query.where(Tenant.id == tenant_id)
    return [(tid, reason or "") for tid, reason in session.execute(query)]


def mark_disconnected(session: Session, tenant_id: str, message: str) -> None:
    session.get_one(Tenant, tenant_id).status = TenantStatus.DISCONNECTED
    session.add(OperationalEvent(kind="tenant_disconnected", tenant_id=tenant_id, message=message))


def hold_polls_until(session: Session, tenant_id: str, until: datetime, message: str) -> None:
    session.get_one(Tenant, tenant_id).parked_until = until
    session.add(OperationalEvent(kind="tenant_parked", tenant_id=tenant_id, message=message))


def pollable(session: Session, tenant_id: str, now: datetime) -> tuple[bool, int]:
    """Whether the tenant may be polled now (active, not held back by Xero's day limit), and its grant."""
    tenant = session.get_one(Tenant, tenant_id)
    held = tenant.parked_until is not None and tenant.parked_until > now
    return tenant.status == TenantStatus.ACTIVE and not held, tenant.grant_id
