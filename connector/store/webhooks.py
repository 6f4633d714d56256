"""The webhook inbox in the ledger: accepted payloads (once each), what each tenant last heard, and wakes.

A wake makes a known tenant due (`tenants.next_poll_at`) at the planned time; the dispatcher then claims
it exactly as on beat's tick, so the poll and its lease stay the one path that reads Xero.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Boolean, Integer, String, Text, func, or_, select, update
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


class WebhookTenantRow(Base):
    """Per Xero tenant named by a webhook (ours or not): when it last heard, and its planned wake."""

    __tablename__ = "webhook_tenants"
    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    known: Mapped[bool] = mapped_column(Boolean)  # False: not a tenant we sync; recorded and ignored
    first_webhook_at: Mapped[datetime]
    last_webhook_at: Mapped[datetime]
    events: Mapped[int] = mapped_column(Integer)
    wake_at: Mapped[datetime | None]  # the last wake planned; events before it are covered by it


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
    """Store a signed payload once and plan the wakes it asks for, in the caller's transaction."""
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
    wakes: list[tuple[str, datetime]] = []
    for tenant_id in named:
        events = payload.events_of(tenant_id)
        statement = _insert(session, WebhookTenantRow).values(
            tenant_id=tenant_id, known=tenant_id in known, first_webhook_at=now, last_webhook_at=now,
            events=len(events), wake_at=None)
        # The upsert takes the row's lock, so concurrent receivers plan this tenant's wake one at a time.
        session.execute(statement.on_conflict_do_update(
            index_elements=["tenant_id"],
            set_={"known": tenant_id in known, "last_webhook_at": now,
                  "events": WebhookTenantRow.events + len(events)},
        ))
        if tenant_id not in known or not any(wakes_a_poll(e) for e in events):
            continue
        planned = session.scalar(select(WebhookTenantRow.wake_at).where(WebhookTenantRow.tenant_id == tenant_id))
        wake_at = next_wake(planned, now, window)
        if wake_at is None:
            continue
        session.execute(update(WebhookTenantRow).where(WebhookTenantRow.tenant_id == tenant_id)
                        .values(wake_at=wake_at).execution_options(synchronize_session=False))
        session.execute(update(Tenant).where(Tenant.id == tenant_id)
                        .where(or_(Tenant.next_poll_at.is_(None), Tenant.next_poll_at > wake_at))
                        .values(next_poll_at=wake_at).execution_options(synchronize_session=False))
        wakes.append((tenant_id, wake_at))
    return Accepted(duplicate=False, wakes=wakes, unknown_tenants=[t for t in named if t not in known])


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
    ours = (select(Tenant.id, XeroGrant.client_id, WebhookTenantRow.last_webhook_at, WebhookTenantRow.events,
                   newest.c.newest)
            .join(XeroGrant, XeroGrant.id == Tenant.grant_id)
            .outerjoin(WebhookTenantRow, WebhookTenantRow.tenant_id == Tenant.id)
            .outerjoin(newest, newest.c.tenant_id == Tenant.id)
            .order_by(Tenant.id))
    strangers = (select(WebhookTenantRow.tenant_id, WebhookTenantRow.last_webhook_at, WebhookTenantRow.events)
                 .where(WebhookTenantRow.known.is_(False)).order_by(WebhookTenantRow.tenant_id))
    if tenant_id is not None:
        ours = ours.where(Tenant.id == tenant_id)
        strangers = strangers.where(WebhookTenantRow.tenant_id == tenant_id)
    found = [
        WebhookStanding(tid, client_id, True, heard, events or 0, _from_ms(newest_ms))
        for tid, client_id, heard, events, newest_ms in session.execute(ours).tuples()
    ]
    found.extend(WebhookStanding(tid, None, False, heard, events, None)
                 for tid, heard, events in session.execute(strangers).tuples())
    return found


def _from_ms(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value / 1000, UTC)


def inbox_size(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(WebhookInboxRow)) or 0


def ledger_answers(session: Session) -> bool:
    """The receiver's readiness: the ledger answers a trivial query."""
    return session.scalar(select(1)) == 1
