"""The webhook inbox in the ledger: accepted payloads (once each), what each tenant last heard, and wakes.

A wake makes a known tenant due (`tenants.next_poll_at`) at the planned time; the dispatcher then claims
it exactly as on beat's tick, so the poll and its lease stay the one path that reads Xero.
"""

from __future__ import annotations

import queue
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import (
    Boolean,
    Connection,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    bindparam,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Mapped, Session, mapped_column

from connector.domain.webhooks import InboxNote, WebhookPayload, announces_credit_notes, next_wake, wakes_a_poll
from connector.store.credit_notes import ask_for_credit_notes
from connector.store.db import Ledger
from connector.store.models import Base, Bill, Tenant, UtcDateTime, XeroGrant


class WebhookInboxRow(Base):
    """Every payload accepted with a good signature, once: Xero's retries of the same body are dropped."""

    __tablename__ = "webhook_inbox"
    id: Mapped[int] = mapped_column(primary_key=True)
    body_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    received_at: Mapped[datetime]
    first_event_sequence: Mapped[int | None] = mapped_column(Integer)
    last_event_sequence: Mapped[int | None] = mapped_column(Integer)
    event_count: Mapped[int] = mapped_column(Integer)
    note: Mapped[str | None] = mapped_column(String(32))  # an InboxNote when the payload woke nobody
    body: Mapped[str] = mapped_column(Text)


class WebhookHeardRow(Base):
    """Per payload and tenant named (ours or not): insert-only, so a burst for one tenant contends on nothing."""

    __tablename__ = "webhook_heard"
    __table_args__ = (Index("ix_webhook_heard_tenant", "tenant_id", "received_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    inbox_id: Mapped[int] = mapped_column(ForeignKey("webhook_inbox.id"))
    tenant_id: Mapped[str] = mapped_column(String(64))
    known: Mapped[bool] = mapped_column(Boolean)  # False: not a tenant we sync; recorded and ignored
    events: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[datetime]


class WebhookTenantRow(Base):
    """Per tenant we sync that a webhook woke: the last wake planned (events before it are covered by it)."""

    __tablename__ = "webhook_tenants"
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    wake_at: Mapped[datetime]


@dataclass(frozen=True)
class Accepted:
    duplicate: bool
    wakes: list[tuple[str, datetime]]  # (tenant, when) for each wake planned by this payload
    unknown_tenants: list[str]


def _insert(session: Session, table: type[Base]):  # type: ignore[no-untyped-def]
    """INSERT with ON CONFLICT for the ledger's dialect (SQLite embedded, PostgreSQL in production)."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def accept_payload(session: Session, *, body: str, body_sha256: str, payload: WebhookPayload | None,
                   note: InboxNote | None, now: datetime, window: timedelta) -> Accepted:
    """Store a signed payload once and plan the wakes it asks for, in the caller's transaction.

    On PostgreSQL the commit does not wait for the WAL flush: a crash may lose the last few milliseconds
    of payloads, which costs at most a cadence's delay (the poll is the safety net), and the receiver
    keeps up with bursts instead of queueing on disk flushes."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL synchronous_commit = off"))
    inserted = session.execute(
        _insert(session, WebhookInboxRow).values(
            body_sha256=body_sha256, received_at=now, body=body, note=note,
            first_event_sequence=payload.first_sequence if payload else None,
            last_event_sequence=payload.last_sequence if payload else None,
            event_count=len(payload.events) if payload else 0,
        ).on_conflict_do_nothing(index_elements=["body_sha256"]).returning(WebhookInboxRow.id)
    ).scalar()
    if inserted is None:
        return Accepted(duplicate=True, wakes=[], unknown_tenants=[])
    if payload is None or not payload.events:
        return Accepted(duplicate=False, wakes=[], unknown_tenants=[])
    named = payload.tenant_ids
    known = set(session.scalars(select(Tenant.id).where(Tenant.id.in_(named))))
    session.execute(insert(WebhookHeardRow), [
        {"inbox_id": inserted, "tenant_id": t, "known": t in known, "events": len(payload.events_of(t)),
         "received_at": now} for t in named])
    wakes: list[tuple[str, datetime]] = []
    for tenant_id in named:
        if tenant_id not in known or not any(wakes_a_poll(e) for e in payload.events_of(tenant_id)):
            continue
        wake_at = _plan_wake(session, tenant_id, now, window)
        if wake_at is None:
            continue
        session.execute(update(Tenant).where(Tenant.id == tenant_id)
                        .where(or_(Tenant.next_poll_at.is_(None), Tenant.next_poll_at > wake_at))
                        .values(next_poll_at=wake_at).execution_options(synchronize_session=False))
        wakes.append((tenant_id, wake_at))
    ask_for_credit_notes(session, _credit_notes_announced(payload) & known, now)
    return Accepted(duplicate=False, wakes=wakes, unknown_tenants=[t for t in named if t not in known])


def _credit_notes_announced(payload: WebhookPayload) -> set[str]:
    return {e.tenant_id for e in payload.events if announces_credit_notes(e)}


def _plan_wake(session: Session, tenant_id: str, now: datetime, window: timedelta) -> datetime | None:
    """Plan the tenant's next wake unless one already planned covers now. Inside a burst this only reads
    (the conditional update matches nothing), so concurrent receivers do not queue on the tenant's row."""
    planned = session.scalar(select(WebhookTenantRow.wake_at).where(WebhookTenantRow.tenant_id == tenant_id))
    wake_at = next_wake(planned, now, window)
    if wake_at is None:
        return None
    if planned is None:
        created = session.execute(_insert(session, WebhookTenantRow).values(tenant_id=tenant_id, wake_at=wake_at)
                                  .on_conflict_do_nothing(index_elements=["tenant_id"])
                                  .returning(WebhookTenantRow.tenant_id)).scalar()
        return wake_at if created is not None else None
    moved = session.execute(update(WebhookTenantRow)
                            .where(WebhookTenantRow.tenant_id == tenant_id, WebhookTenantRow.wake_at == planned)
                            .values(wake_at=wake_at).execution_options(synchronize_session=False))
    return wake_at if getattr(moved, "rowcount", 0) == 1 else None


#: accept_payload in one PostgreSQL statement, so one round trip per delivery. Its sub-statements share
#: one snapshot: `created` inserts the wake row of a tenant woken for the first time, `moved` re-plans
#: one whose planned wake has passed (next_wake's rule: a wake still ahead covers the event). Inside a
#: burst `moved` matches nothing and locks nothing; two deliveries racing past a wake both try to move
#: it, and the second, re-checking the row after the first commits, finds the new wake ahead and does
#: nothing. Whether a tenant is ours is read here too (a primary-key probe), so a tenant added a
#: second ago is known at once.
_ACCEPT_IN_ONE_STATEMENT = text("""
WITH inbox AS (
    INSERT INTO webhook_inbox (body_sha256, received_at, first_event_sequence, last_event_sequence,
                               event_count, note, body)
    VALUES (:body_sha256, :now, :first_sequence, :last_sequence, :event_count, :note, :body)
    ON CONFLICT (body_sha256) DO NOTHING
    RETURNING id
), named AS (
    SELECT n.tenant_id, n.events, n.waking, EXISTS (SELECT 1 FROM tenants WHERE tenants.id = n.tenant_id) AS known
    FROM unnest(:tenant_ids, :event_counts, :waking) AS n(tenant_id, events, waking)
    WHERE EXISTS (SELECT 1 FROM inbox)
), heard AS (
    INSERT INTO webhook_heard (inbox_id, tenant_id, known, events, received_at)
    SELECT inbox.id, named.tenant_id, named.known, named.events, :now FROM inbox CROSS JOIN named
), created AS (
    INSERT INTO webhook_tenants (tenant_id, wake_at)
    SELECT tenant_id, :wake_at FROM named WHERE known AND waking
    ON CONFLICT (tenant_id) DO NOTHING
    RETURNING tenant_id
), moved AS (
    UPDATE webhook_tenants SET wake_at = :wake_at FROM named
    WHERE named.known AND named.waking AND webhook_tenants.tenant_id = named.tenant_id
      AND webhook_tenants.wake_at <= :now
    RETURNING webhook_tenants.tenant_id
), woken AS (
    SELECT tenant_id FROM created UNION ALL SELECT tenant_id FROM moved
), due AS (
    UPDATE tenants SET next_poll_at = :wake_at FROM woken
    WHERE tenants.id = woken.tenant_id AND (tenants.next_poll_at IS NULL OR tenants.next_poll_at > :wake_at)
)
SELECT (SELECT id FROM inbox) AS inbox_id,
       ARRAY(SELECT tenant_id FROM woken) AS woken,
       ARRAY(SELECT tenant_id FROM named WHERE NOT known ORDER BY tenant_id) AS unknown
""").bindparams(
    bindparam("now", type_=UtcDateTime()),
    bindparam("wake_at", type_=UtcDateTime()),
    bindparam("tenant_ids", type_=postgresql.ARRAY(String(64))),
    bindparam("event_counts", type_=postgresql.ARRAY(Integer)),
    bindparam("waking", type_=postgresql.ARRAY(Boolean)),
)


class Inbox:
    """The receiver's write path: each payload in one statement on a connection kept for the inbox alone.

    Per delivery the general path (`accept_payload` in a Session) cost five statements plus the pool's
    ping, BEGIN, SET LOCAL and COMMIT, most of the time spent in the ORM. Here each kept connection is in
    autocommit with synchronous_commit off (see accept_payload for why that is safe) and a generic plan,
    so a delivery is one round trip, no planning and no Session. SQLite, the embedded default, keeps the
    general path."""

    #: How long a delivery waits for one of the inbox's connections before it is answered 503.
    WAIT_SECONDS = 3.0

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._one_statement = ledger.engine.dialect.name == "postgresql"
        self._idle: queue.SimpleQueue[Connection] = queue.SimpleQueue()
        # At most the pool's steady size, so the pool's overflow stays for readiness and everything else.
        self._limit = max(1, int(getattr(ledger.engine.pool, "size", lambda: 5)()))
        self._opened = 0
        self._lock = threading.Lock()

    def accept(self, *, body: str, body_sha256: str, payload: WebhookPayload | None, note: InboxNote | None,
               now: datetime, window: timedelta) -> Accepted:
        """Store a signed payload once and plan its wakes; raises LedgerError when the ledger fails."""
        if not self._one_statement:
            return self._ledger.retrying(lambda session: accept_payload(
                session, body=body, body_sha256=body_sha256, payload=payload, note=note, now=now, window=window))
        events = payload.events if payload else ()
        counts = Counter(e.tenant_id for e in events)
        waking = {e.tenant_id for e in events if wakes_a_poll(e)}
        wake_at = next_wake(None, now, window)
        named = list(counts)
        params = {
            "body_sha256": body_sha256, "now": now, "body": body, "note": note, "event_count": len(events),
            "first_sequence": payload.first_sequence if payload else None,
            "last_sequence": payload.last_sequence if payload else None,
            "tenant_ids": named, "event_counts": [counts[t] for t in named],
            "waking": [t in waking for t in named], "wake_at": wake_at,
        }
        announced = _credit_notes_announced(payload) if payload else set()

        def accept(connection: Connection) -> tuple[int | None, list[str], list[str]]:
            found = connection.execute(_ACCEPT_IN_ONE_STATEMENT, params).one()
            asking = announced - set(found[2])
            if found[0] is not None and asking:
                # A second statement for the rare payload that announces credit notes; a crash between
                # the two costs at most the credit notes' own cadence (the poll still reads the bills).
                connection.execute(update(Tenant).where(Tenant.id.in_(sorted(asking)))
                                   .values(credit_notes_asked_at=now))
            return found[0], list(found[1]), list(found[2])

        inbox_id, woken, unknown = self._on_a_connection(accept)
        if inbox_id is None:
            return Accepted(duplicate=True, wakes=[], unknown_tenants=[])
        assert wake_at is not None  # next_wake plans a wake when none is planned
        strangers = set(unknown)
        return Accepted(duplicate=False, wakes=[(t, wake_at) for t in woken],
                        unknown_tenants=[t for t in named if t in strangers])

    def _on_a_connection(self, work: Callable[[Connection], tuple[int | None, list[str], list[str]]]
                         ) -> tuple[int | None, list[str], list[str]]:
        for attempt in (1, 2):
            connection = self._take()
            try:
                found = work(connection)
            except DBAPIError as exc:
                self._drop(connection)  # broken, or in a state we do not know: never reused
                # A kept connection the database dropped (a restart, a failover) fails on its next use: one
                # more try on a new one. Had the statement committed before the drop, the retry finds the
                # payload kept and wakes nobody; the tenant is already due, so beat's tick polls it.
                if attempt == 2 or not exc.connection_invalidated:
                    raise
                continue
            self._idle.put(connection)
            return (found[0], list(found[1]), list(found[2]))
        raise AssertionError("unreachable")

    def _take(self) -> Connection:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            opening = self._opened < self._limit
            if opening:
                self._opened += 1
        if not opening:
            try:
                return self._idle.get(timeout=self.WAIT_SECONDS)
            except queue.Empty:
                raise PoolTimeout(f"no inbox connection free within {self.WAIT_SECONDS} s") from None
        try:
            connection = self._ledger.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            connection.exec_driver_sql("SET synchronous_commit = off")
            # The statement is prepared (psycopg, from its fifth use); left to choose, PostgreSQL kept
            # planning it afresh for each delivery, which took as long as running it (0.24 ms against 0.22).
            connection.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
        except BaseException:
            with self._lock:
                self._opened -= 1
            raise
        return connection

    def _drop(self, connection: Connection) -> None:
        connection.invalidate()
        connection.close()
        with self._lock:
            self._opened -= 1

    def close(self) -> None:
        """Drop the kept connections (they carry synchronous_commit off, so they never go back to the pool)."""
        while True:
            try:
                connection = self._idle.get_nowait()
            except queue.Empty:
                return
            self._drop(connection)


@dataclass(frozen=True)
class WebhookStanding:
    """What `connector status` says about one tenant's webhooks."""

    tenant_id: str
    client_id: str | None  # the Xero app (its client id) whose grant reaches the tenant; None if not ours
    known: bool
    last_webhook_at: datetime | None
    events: int
    last_change_at: datetime | None  # the newest UpdatedDateUTC of the tenant's bills, as polled


def webhook_standings(session: Session, tenant_id: str | None = None) -> list[WebhookStanding]:
    """Every tenant we sync (heard from or not) and every unknown tenant a webhook named."""
    newest = (select(Bill.tenant_id, func.max(Bill.version).label("newest")).group_by(Bill.tenant_id).subquery())
    heard = (select(WebhookHeardRow.tenant_id, func.max(WebhookHeardRow.received_at).label("last"),
                    func.sum(WebhookHeardRow.events).label("events"))
             .group_by(WebhookHeardRow.tenant_id).subquery())
    ours = (select(Tenant.id, XeroGrant.client_id, heard.c.last, heard.c.events, newest.c.newest)
            .join(XeroGrant, XeroGrant.id == Tenant.grant_id)
            .outerjoin(heard, heard.c.tenant_id == Tenant.id)
            .outerjoin(newest, newest.c.tenant_id == Tenant.id)
            .order_by(Tenant.id))
    strangers = (select(heard.c.tenant_id, heard.c.last, heard.c.events)
                 .where(heard.c.tenant_id.not_in(select(Tenant.id))).order_by(heard.c.tenant_id))
    if tenant_id is not None:
        ours = ours.where(Tenant.id == tenant_id)
        strangers = strangers.where(heard.c.tenant_id == tenant_id)
    found = [
        WebhookStanding(tid, client_id, True, last, int(events or 0), _from_ms(newest_ms))
        for tid, client_id, last, events, newest_ms in session.execute(ours)
    ]
    found.extend(WebhookStanding(tid, None, False, last, int(events or 0), None)
                 for tid, last, events in session.execute(strangers))
    return found


def _from_ms(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value / 1000, UTC)


def inbox_size(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(WebhookInboxRow)) or 0


def ledger_answers(session: Session) -> bool:
    """The receiver's readiness: the ledger answers a trivial query."""
    return session.scalar(select(1)) == 1
