"""What the sweeper asks the ledger: which work's message can truly be lost, and the broker's epochs.

A DISCOVERED bill carries three marks (see models.Bill): `map_sent_at` (a map message was handed to the
broker), `map_started_at` and `map_runs` (a worker began mapping it, and how many times without
finishing). The sweeper reads them to tell a bill whose message is merely queued from one whose message
was never sent or died with its worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, ColumnElement, String, and_, bindparam, false, func, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningUpdate

from connector.domain.states import BatchState, BillState
from connector.store.models import Batch, Bill, BrokerEpoch, OperationalEvent

MapWork = tuple[str, str, int]  # tenant, InvoiceID, version

BROKER_LOST_MESSAGES = "broker_lost_messages"  # OperationalEvent kind


def count_map_run(session: Session, tenant_id: str, invoice_id: str, version: int, now: datetime) -> int | None:
    """Record that a worker starts mapping this version of the bill; returns the runs not yet finished,
    this one included, or None when the bill is no longer DISCOVERED at this version (nothing to do).
    Committed on its own before the mapping, so a worker that dies mid-mapping leaves its run counted.
    The row version is not bumped: this mark races with nothing that must lose."""
    # Found by its id through (tenant, InvoiceID) alone: with state in the condition, a planner without
    # fresh statistics walks the tenant's (tenant, state) index instead, a cost that grows with the tenant.
    bill_id = select(Bill.id).where(Bill.tenant_id == tenant_id, Bill.invoice_id == invoice_id).scalar_subquery()
    runs: int | None = session.scalar(
        update(Bill).where(Bill.id == bill_id, Bill.version == version, Bill.state == BillState.DISCOVERED)
        .values(map_runs=Bill.map_runs + 1, map_started_at=now).returning(Bill.map_runs)
        .execution_options(synchronize_session=False)
    )
    return runs


def count_map_run_and_read(session: Session, tenant_id: str, invoice_id: str, version: int,
                           now: datetime) -> Bill | None:
    """count_map_run in the same statement that reads the bill back (its runs in `map_runs`), for a worker
    that then decides in a transaction of its own: the row version it read makes that write lose to any
    write in between."""
    found: Bill | None = session.scalars(
        _COUNT_MAP_RUN_AND_READ, {"b_tenant_id": tenant_id, "b_invoice_id": invoice_id, "b_version": version,
                                  "b_now": now},
        execution_options={"synchronize_session": False},
    ).one_or_none()
    return found


def _count_map_run_and_read_statement() -> ReturningUpdate[Bill]:
    bill_id = select(Bill.id).where(Bill.tenant_id == bindparam("b_tenant_id", type_=String(64)),
                                    Bill.invoice_id == bindparam("b_invoice_id", type_=String(64))).scalar_subquery()
    return (update(Bill).where(Bill.id == bill_id, Bill.version == bindparam("b_version", type_=BigInteger),
                               Bill.state == BillState.DISCOVERED)
            .values(map_runs=Bill.map_runs + 1, map_started_at=bindparam("b_now", type_=Bill.map_started_at.type))
            .returning(Bill))


_COUNT_MAP_RUN_AND_READ = _count_map_run_and_read_statement()  # built once: it runs for every bill


@dataclass(frozen=True)
class MapLook:
    """Which DISCOVERED bills a sweep asks for again: every one (after a broker loss), or those whose
    message can truly be lost, each kind from its own cut-off (None: that kind is not looked for)."""

    everything: bool = False
    # never handed to the broker (the sender died first, or the change that re-opened it sends none) and
    # nobody started mapping it, changed before this
    never_sent_before: datetime | None = None
    # its mapping began before this (past the map time limit: its worker died) with no message sent since;
    # Redis would hold that message until its visibility timeout
    abandoned_before: datetime | None = None
    # its message went to the broker before this and no worker began mapping it since: asked for only
    # while the map queue is empty, when the message can no longer be waiting there
    sent_unstarted_before: datetime | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        """Those bills among the DISCOVERED (the kinds never overlap: a bill is asked for once)."""
        kinds: list[ColumnElement[bool]] = []
        if self.never_sent_before is not None:
            kinds.append(and_(Bill.map_sent_at.is_(None), Bill.map_started_at.is_(None),
                              Bill.state_changed_at <= self.never_sent_before))
        if self.abandoned_before is not None:
            kinds.append(and_(Bill.map_started_at <= self.abandoned_before,
                              or_(Bill.map_sent_at.is_(None), Bill.map_sent_at <= Bill.map_started_at)))
        if self.sent_unstarted_before is not None:
            kinds.append(and_(Bill.map_sent_at <= self.sent_unstarted_before,
                              or_(Bill.map_started_at.is_(None), Bill.map_started_at < Bill.map_sent_at)))
        return [] if self.everything else [or_(false(), *kinds)]


def map_work(session: Session, look: MapLook, *, after: int, span: int) -> tuple[list[tuple[int, MapWork]], int | None]:
    """The bills `look` asks for among the next `span` ledger ids from the first DISCOVERED bill after
    `after` (0: from the first), each with its id, and the id to continue after (None: no DISCOVERED bill
    is left after `after`). A sweep reads them so, a chunk at a time, so what it holds never grows with the
    ledger; each chunk is a bounded range of the (state, id) index and the probe one step into it, whatever
    the planner's statistics say (with a LIMIT instead, a planner that thinks the DISCOVERED bills few
    reads and sorts every one after the key for each chunk: a sweep quadratic in the ledger)."""
    first = session.scalar(select(func.min(Bill.id)).where(Bill.state == BillState.DISCOVERED, Bill.id > after))
    if first is None:
        return [], None
    rows = session.execute(
        select(Bill.id, Bill.tenant_id, Bill.invoice_id, Bill.version)
        .where(Bill.state == BillState.DISCOVERED, Bill.id >= first, Bill.id < first + span, *look.conditions())
        .order_by(Bill.id)
    )
    return ([(bill_id, (tenant_id, invoice_id, version)) for bill_id, tenant_id, invoice_id, version in rows],
            first + span - 1)


def tenants_with_map_work(session: Session) -> set[str]:
    """Tenants with DISCOVERED bills (after a broker loss each gets its batch from the last one mapped)."""
    return set(session.scalars(select(Bill.tenant_id).where(Bill.state == BillState.DISCOVERED).distinct()))


def tenants_with_unbatched_ready(session: Session, changed_before: datetime | None) -> list[str]:
    """Tenants with READY bills in no batch (changed before `changed_before`; None: whatever their age)."""
    query = select(Bill.tenant_id).where(Bill.state == BillState.READY, Bill.batch_id.is_(None))
    if changed_before is not None:
        query = query.where(Bill.state_changed_at <= changed_before)
    return sorted(set(session.scalars(query.distinct())))


def deliverable_batches(session: Session, now: datetime, created_before: datetime | None) -> list[int]:
    """STAGED batches under no live lease whose next attempt is due; one never tried is taken once it was
    created before `created_before` (None: whatever its age)."""
    never_tried: ColumnElement[bool] = Batch.next_attempt_at.is_(None)
    if created_before is not None:
        never_tried = and_(never_tried, Batch.created_at <= created_before)
    return list(session.scalars(
        select(Batch.id).where(
            Batch.state == BatchState.STAGED,
            or_(Batch.lease_until.is_(None), Batch.lease_until <= now),
            or_(Batch.next_attempt_at <= now, never_tried),
        ).order_by(Batch.id)
    ))


def newest_broker_epoch(session: Session) -> str | None:
    return session.scalar(select(BrokerEpoch.epoch).order_by(BrokerEpoch.seen_at.desc(), BrokerEpoch.id.desc())
                          .limit(1))


def broker_epoch_known(session: Session, epoch: str) -> bool:
    return session.scalar(select(BrokerEpoch.id).where(BrokerEpoch.epoch == epoch)) is not None


def record_broker_epoch(session: Session, epoch: str, now: datetime, *, lost_messages: bool) -> bool:
    """Remember a broker generation, announcing a loss; False when another sweeper recorded it first (the
    row is unique: run it under `Ledger.retrying`, and a racing insert ends here on the second try)."""
    if broker_epoch_known(session, epoch):
        return False
    session.add(BrokerEpoch(epoch=epoch, seen_at=now))
    if lost_messages:
        session.add(OperationalEvent(
            kind=BROKER_LOST_MESSAGES, at=now,
            message="the broker lost its messages (restart without persistence, failover or flush): every "
                    "unfinished bill and batch was asked for again"))
    session.flush()
    return True
