"""The webhook inbox in the ledger: accepted payloads (once each), what each tenant last heard, and wakes.

A wake makes a known tenant due (`tenants.next_poll_at`) at the planned time; the dispatcher then claims
it exactly as on beat's tick, so the poll and its lease stay the one path that reads Xero.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, func, insert, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from connector.domain.webhooks import InboxNote, WebhookPayload, next_wake, wakes_a_poll
from connector.store.models import Base, Bill, Tenant, XeroGrant


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
    return Accepted(duplicate=False, wakes=wakes, unknown_tenants=[t for t in named if t not in known])


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
        for tid, client_id, last, events, newest_ms in session.execute(ours).tuples()
    ]
    found.extend(WebhookStanding(tid, None, False, last, int(events or 0), None)
                 for tid, last, events in session.execute(strangers).tuples())
    return found


def _from_ms(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value / 1000, UTC)


def inbox_size(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(WebhookInboxRow)) or 0


def ledger_answers(session: Session) -> bool:
    """The receiver's readiness: the ledger answers a trivial query."""
    return session.scalar(select(1)) == 1
