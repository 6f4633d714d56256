"""What each reconcile found, kept as operational events so `connector status` can show the last one
per tenant (a scheduled reconcile runs in a worker, where nobody reads its output); and the reconcile
under way of each tenant (reconcile_runs), so one that stopped resumes where it stopped."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from connector.domain.states import BillState
from connector.limits import TIME_LIMITS
from connector.store.models import Bill, OperationalEvent, ReconcileRun, ReconcileSeen

RECONCILED = "reconciled"
#: How long a reconcile holds its tenant's run: a worker's leg is killed at the poll queue's hard time limit,
#: so a hold that lapsed means its worker is gone and the next reconcile of the tenant goes on with the run.
RUN_LEASE_SECONDS: Final = float(TIME_LIMITS["poll"])
RECONCILE_FAILED = "reconcile_failed"


@dataclass(frozen=True)
class LastReconcile:
    tenant_id: str
    at: datetime
    ok: bool
    found: dict[str, Any]  # counts when ok, {"error": ...} when not


@dataclass(frozen=True)
class RunState:
    """Where a tenant's reconcile stands: `phase` (services.reconcile's phases); in "bills" and "leftover",
    the last delivered InvoiceID compared (`after`); in a paged read ("eligible", "pages", "credit_notes"),
    the next request (`since`, `page`); `found`, the counts so far."""

    started_at: datetime
    phase: str
    after: str
    since: datetime | None
    page: int
    found: dict[str, Any]


def run_under_way(session: Session, tenant_id: str) -> RunState | None:
    run = session.get(ReconcileRun, tenant_id)
    return None if run is None else _state(run)


def start_or_resume(session: Session, tenant_id: str, *, first_phase: str, at: datetime) -> RunState:
    """The tenant's reconcile under way, or a new one begun at `at`."""
    run = session.get(ReconcileRun, tenant_id)
    if run is None:
        run = ReconcileRun(tenant_id=tenant_id, started_at=at, phase=first_phase, after="", since=None, page=1,
                           found={}, updated_at=at)
        session.add(run)
        session.flush()
    return _state(run)


def take_run(session: Session, tenant_id: str, *, owner: str, now: datetime, at: datetime,
             first_phase: Callable[[], str]) -> RunState | None:
    """The tenant's reconcile under way (or a new one begun `at`), held by `owner` for `RUN_LEASE_SECONDS`
    from `now` (the services' clock);
    None while another reconcile holds it (it is working on it: what it asks Xero is not asked twice).
    A hold of `owner`'s own is taken back whatever its time: a worker's leg holds the run under its
    message's id, and a message is delivered again only once the worker that had it is gone (its pool
    process lost, put back at once by task_reject_on_worker_lost; or the broker's visibility timeout, far
    above the hard time limit), so waiting out the dead leg's hold would leave the run to the next daily
    reconcile."""
    until = now + timedelta(seconds=RUN_LEASE_SECONDS)
    run = session.get(ReconcileRun, tenant_id)
    if run is None:  # two beginning at once: the second insert fails, and Ledger.retrying finds it held
        run = ReconcileRun(tenant_id=tenant_id, started_at=at, phase=first_phase(), after="", since=None, page=1,
                           found={}, updated_at=at, lease_owner=owner, lease_until=until)
        session.add(run)
        session.flush()
        return _state(run)
    taken = session.execute(
        update(ReconcileRun)
        .where(ReconcileRun.tenant_id == tenant_id,
               or_(ReconcileRun.lease_until.is_(None), ReconcileRun.lease_until <= now,
                   ReconcileRun.lease_owner == owner))
        .values(lease_owner=owner, lease_until=until)
        .execution_options(synchronize_session=False))
    if getattr(taken, "rowcount", 0) != 1:
        return None
    # Read again now that it is held: a reconcile that held it between the read above and this hold has saved
    # its progress and let go, and going on from what was read before would ask Xero what it just asked.
    session.refresh(run)
    return _state(run)


def run_held(session: Session, tenant_id: str) -> tuple[datetime, datetime | None] | None:
    """(started_at, lease_until) of the tenant's run under way, None when there is none."""
    row = session.execute(select(ReconcileRun.started_at, ReconcileRun.lease_until)
                          .where(ReconcileRun.tenant_id == tenant_id)).first()
    return None if row is None else (row[0], row[1])


def release_run(session: Session, tenant_id: str, owner: str) -> None:
    """The reconcile stopped (a hand-over, a spent budget, a failure): the next one may go on with the run."""
    session.execute(update(ReconcileRun).where(ReconcileRun.tenant_id == tenant_id, ReconcileRun.lease_owner == owner)
                    .values(lease_owner=None, lease_until=None).execution_options(synchronize_session=False))


def save_progress(session: Session, tenant_id: str, *, phase: str, found: dict[str, Any], at: datetime,
                  after: str = "", since: datetime | None = None, page: int = 1) -> None:
    """Commit with the work it describes: what is saved here is done and not asked of Xero again."""
    run = session.get(ReconcileRun, tenant_id)
    if run is None:
        return  # finished (or cleared) by another reconcile meanwhile
    run.phase, run.after, run.since, run.page, run.found, run.updated_at = phase, after, since, page, dict(found), at


def finish_run(session: Session, tenant_id: str) -> None:
    session.execute(delete(ReconcileRun).where(ReconcileRun.tenant_id == tenant_id))
    session.execute(delete(ReconcileSeen).where(ReconcileSeen.tenant_id == tenant_id))


def bill_counts(session: Session, tenant_id: str) -> tuple[int, int]:
    """(delivered bills, bills the ledger knows in any state) of the tenant: what reading the delivered
    ones back by IDs= costs against what paging every bill costs."""
    delivered = session.scalar(select(func.count()).select_from(Bill).where(
        Bill.tenant_id == tenant_id, Bill.state == BillState.DELIVERED, Bill.document_type == "BILL")) or 0
    known = session.scalar(select(func.count()).select_from(Bill).where(
        Bill.tenant_id == tenant_id, Bill.document_type == "BILL")) or 0
    return int(delivered), int(known)


def mark_seen(session: Session, tenant_id: str, invoice_ids: list[str]) -> int:
    """These delivered bills were compared on a page of this run; how many no earlier page had (a bill on
    two pages, the paging's overlap of one second, is counted once)."""
    fresh = sorted(set(invoice_ids) - set(session.scalars(select(ReconcileSeen.invoice_id).where(
        ReconcileSeen.tenant_id == tenant_id, ReconcileSeen.invoice_id.in_(invoice_ids)))))
    session.add_all(ReconcileSeen(tenant_id=tenant_id, invoice_id=i) for i in fresh)
    return len(fresh)


def delivered_unseen(session: Session, tenant_id: str, *, after: str, limit: int,
                     document_type: str = "BILL") -> list[str]:
    """At most `limit` of the tenant's delivered bills (or credit notes) no page of this run returned, in
    InvoiceID order after `after` (keyset, as store.bills.delivered_ids)."""
    seen = select(ReconcileSeen.invoice_id).where(ReconcileSeen.tenant_id == tenant_id,
                                                  ReconcileSeen.invoice_id == Bill.invoice_id)
    return list(session.scalars(
        select(Bill.invoice_id).where(Bill.tenant_id == tenant_id, Bill.state == BillState.DELIVERED,
                                      Bill.document_type == document_type, Bill.invoice_id > after,
                                      ~seen.exists())
        .order_by(Bill.invoice_id).limit(limit)))


def _state(run: ReconcileRun) -> RunState:
    return RunState(run.started_at, run.phase, run.after, run.since, run.page, dict(run.found or {}))


def record_reconcile(session: Session, tenant_id: str, *, ok: bool, found: dict[str, Any], at: datetime) -> None:
    session.add(OperationalEvent(kind=RECONCILED if ok else RECONCILE_FAILED, tenant_id=tenant_id, at=at,
                                 message=json.dumps(found, sort_keys=True)[:8000]))


def last_reconciles(session: Session, tenant_id: str | None = None) -> list[LastReconcile]:
    """The newest reconcile event of each tenant (or of one)."""
    kinds = (RECONCILED, RECONCILE_FAILED)
    newest = select(OperationalEvent.tenant_id, func.max(OperationalEvent.id).label("id")) \
        .where(OperationalEvent.kind.in_(kinds)).group_by(OperationalEvent.tenant_id)
    if tenant_id is not None:
        newest = newest.where(OperationalEvent.tenant_id == tenant_id)
    ids = [row.id for row in session.execute(newest)]
    if not ids:
        return []
    events = session.scalars(select(OperationalEvent).where(OperationalEvent.id.in_(ids))
                             .order_by(OperationalEvent.tenant_id))
    return [LastReconcile(str(e.tenant_id), e.at, e.kind == RECONCILED, _parsed(e.message)) for e in events]


def _parsed(message: str) -> dict[str, Any]:
    try:
        found = json.loads(message)
    except ValueError:
        return {"error": message}
    return found if isinstance(found, dict) else {"error": message}
