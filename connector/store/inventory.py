"""Grants and SFTP targets as an operator manages them: listed with the tenants that use them, changed,
removed when no tenant uses them; and the schema revision, for `connector check`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from connector.errors import ActionRefused, NotFound
from connector.store.db import MIGRATIONS
from connector.store.models import Bill, SftpTargetRow, Tenant, XeroGrant


class NoSuchGrant(NotFound):
    def __init__(self, grant_id: int) -> None:
        super().__init__(f"no such grant: {grant_id}")


class NoSuchTarget(NotFound):
    def __init__(self, target_id: int) -> None:
        super().__init__(f"no such SFTP target: {target_id}")


class StillInUse(ActionRefused):
    """A grant or target that tenants still use is not removed: their polls or files would stop."""


@dataclass(frozen=True)
class GrantListing:
    id: int
    kind: str
    client_id: str
    status: str
    refreshed_at: object
    created_at: object
    tenant_ids: list[str]


@dataclass(frozen=True)
class TargetListing:
    id: int
    host: str
    port: int
    username: str
    import_dir: str
    host_key: str
    auth: str
    tenant_ids: list[str]


def _tenants_by(session: Session, column: object) -> dict[int, list[str]]:
    users: dict[int, list[str]] = {}
    for owner, tenant_id in session.execute(select(column, Tenant.id).order_by(Tenant.id)):  # type: ignore[call-overload]
        if owner is not None:
            users.setdefault(int(owner), []).append(tenant_id)
    return users


def grant_listings(session: Session) -> list[GrantListing]:
    users = _tenants_by(session, Tenant.grant_id)
    return [GrantListing(g.id, g.kind, g.client_id, g.status, g.refreshed_at, g.created_at, users.get(g.id, []))
            for g in session.scalars(select(XeroGrant).order_by(XeroGrant.id))]


def remove_grant(session: Session, grant_id: int) -> None:
    """Remove a grant no tenant uses (a failed import, a replaced consent); its secrets go with it."""
    if session.get(XeroGrant, grant_id) is None:
        raise NoSuchGrant(grant_id)
    users = _tenants_by(session, Tenant.grant_id).get(grant_id, [])
    if users:
        raise StillInUse(f"grant {grant_id} is used by tenant(s) {', '.join(users)}: give them another grant "
                         "(`connector auth connect --tenant ID`) first")
    session.execute(delete(XeroGrant).where(XeroGrant.id == grant_id))


def target_listings(session: Session) -> list[TargetListing]:
    users = _tenants_by(session, Tenant.sftp_target_id)
    return [TargetListing(t.id, t.host, t.port, t.username, t.import_dir, t.host_key,
                          "private key" if t.private_key_enc else "password" if t.password_enc else "none",
                          users.get(t.id, []))
            for t in session.scalars(select(SftpTargetRow).order_by(SftpTargetRow.id))]


def sftp_target_row(session: Session, target_id: int) -> SftpTargetRow:
    row = session.get(SftpTargetRow, target_id)
    if row is None:
        raise NoSuchTarget(target_id)
    return row


def change_sftp_target(session: Session, target_id: int, *, host: str | None = None, port: int | None = None,
                       username: str | None = None, import_dir: str | None = None, host_key: str | None = None,
                       password_enc: bytes | None = None, private_key_enc: bytes | None = None) -> SftpTargetRow:
    """Change what is given and keep the rest; a new credential replaces the other kind."""
    row = sftp_target_row(session, target_id)
    for name, value in (("host", host), ("port", port), ("username", username), ("import_dir", import_dir),
                        ("host_key", host_key)):
        if value is not None:
            setattr(row, name, value)
    if password_enc is not None:
        row.password_enc, row.private_key_enc = password_enc, None
    if private_key_enc is not None:
        row.private_key_enc, row.password_enc = private_key_enc, None
    return row


def remove_sftp_target(session: Session, target_id: int) -> None:
    sftp_target_row(session, target_id)
    users = _tenants_by(session, Tenant.sftp_target_id).get(target_id, [])
    if users:
        raise StillInUse(f"SFTP target {target_id} receives the files of tenant(s) {', '.join(users)}: point them "
                         "at another target (`connector sftp set … --tenant ID`) first")
    session.execute(delete(SftpTargetRow).where(SftpTargetRow.id == target_id))


def schema_revisions(engine: Engine) -> tuple[str | None, str | None]:
    """(the ledger's schema revision, the newest this code knows)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision(), head


def make_due_now(session: Session, tenant_id: str, now: datetime) -> str:
    """Bring the tenant's next poll to now (the dispatcher still claims it, so a poll that runs keeps its
    lease); returns the tenant's status, which the caller checks."""
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound(f"no such tenant: {tenant_id}")
    tenant.next_poll_at = now
    return tenant.status


def reschedule_after_interval_change(session: Session, tenant_id: str) -> datetime | None:
    """A shorter interval takes effect now: the next poll moves to the last poll plus the new interval
    when that is earlier than the one planned. Returns the next poll."""
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound(f"no such tenant: {tenant_id}")
    if tenant.last_polled_at is not None:
        sooner = tenant.last_polled_at + timedelta(seconds=tenant.poll_interval_seconds)
        if tenant.next_poll_at is None or sooner < tenant.next_poll_at:
            tenant.next_poll_at = sooner
    return tenant.next_poll_at


def unsent_map_work(session: Session, tenant_id: str) -> list[tuple[str, int]]:
    """(InvoiceID, version) of the tenant's bills waiting to be mapped whose map message was never sent:
    what an operator's change (a mapping import, a release) just re-opened."""
    rows = session.execute(select(Bill.invoice_id, Bill.version).where(
        Bill.tenant_id == tenant_id, Bill.state == "DISCOVERED", Bill.map_sent_at.is_(None)).order_by(Bill.id))
    return [(invoice_id, version) for invoice_id, version in rows]
