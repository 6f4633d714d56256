"""Tenants: the Xero organisations we sync, with their cadence, policy knobs, grant and delivery target."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from connector.domain.tenants import TenantStatus
from connector.errors import NotFound, PermanentError
from connector.store.models import Tenant, XeroGrant


class NoSuchTenant(PermanentError):
    """The ledger holds no tenant with this id (a typo, or never onboarded): retrying cannot help."""

    exit_code = 2

    def __init__(self, tenant_ids: Iterable[str]) -> None:
        self.tenant_ids = list(tenant_ids)
        super().__init__(f"no such tenant: {', '.join(self.tenant_ids)}")


def get_tenant(session: Session, tenant_id: str) -> Tenant:
    """The tenant, or NoSuchTenant."""
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise NoSuchTenant([tenant_id])
    return tenant


def require_tenants(session: Session, tenant_ids: Iterable[str]) -> None:
    """Refuse, naming every unknown one, unless the ledger holds each of these tenants."""
    wanted = list(dict.fromkeys(tenant_ids))
    known = set(session.scalars(select(Tenant.id).where(Tenant.id.in_(wanted)))) if wanted else set()
    if unknown := [t for t in wanted if t not in known]:
        raise NoSuchTenant(unknown)


def select_tenant_ids(session: Session, tenant_ids: Iterable[str], *, all_tenants: bool = False,
                      grant_ids: Iterable[int] = ()) -> list[str]:
    """The tenants a command acts on: those named, every tenant syncing with one of the grants, or every
    tenant; each once, in the order named (then by id). Named tenants and grants are checked in one query
    each: any unknown one refuses the whole selection, naming every unknown one, before anything is done."""
    named = list(dict.fromkeys(tenant_ids))
    known = set(session.scalars(select(Tenant.id).where(Tenant.id.in_(named)))) if named else set()
    unknown = [t for t in named if t not in known]
    if unknown:
        raise NoSuchTenant(unknown)
    chosen = dict.fromkeys(named)
    grants = list(dict.fromkeys(grant_ids))
    if grants:
        found = set(session.scalars(select(XeroGrant.id).where(XeroGrant.id.in_(grants))))
        if missing := [g for g in grants if g not in found]:
            raise NotFound(f"no such grant: {', '.join(map(str, missing))}")
        chosen.update(dict.fromkeys(session.scalars(
            select(Tenant.id).where(Tenant.grant_id.in_(grants)).order_by(Tenant.id))))
    if all_tenants:
        chosen.update(dict.fromkeys(session.scalars(select(Tenant.id).order_by(Tenant.id))))
    return list(chosen)


def load_tenants(session: Session, tenant_ids: list[str]) -> dict[str, Tenant]:
    """These tenants in one query (a command changing a thousand tenants reads them once)."""
    return {tenant.id: tenant for tenant in session.scalars(select(Tenant).where(Tenant.id.in_(tenant_ids)))}


def tenant_statuses(session: Session, tenant_ids: list[str]) -> dict[str, TenantStatus]:
    rows = session.execute(select(Tenant.id, Tenant.status).where(Tenant.id.in_(tenant_ids)))
    return {tenant_id: TenantStatus(status) for tenant_id, status in rows}


def add_tenant(
    session: Session, *, tenant_id: str, name: str, short_name: str, grant_id: int, sftp_target_id: int | None,
    poll_interval_seconds: int, max_bills_per_file: int,
) -> Tenant:
    tenant = Tenant(
        id=tenant_id, name=name, short_name=short_name, grant_id=grant_id, sftp_target_id=sftp_target_id,
        poll_interval_seconds=poll_interval_seconds, max_bills_per_file=max_bills_per_file,
    )
    session.add(tenant)
    return tenant


def deliver_to(session: Session, tenant_ids: Iterable[str], sftp_target_id: int) -> None:
    """Send these tenants' files to this SFTP target from now on (one statement for any number of them)."""
    wanted = list(tenant_ids)
    if wanted:
        require_tenants(session, wanted)
        session.execute(update(Tenant).where(Tenant.id.in_(wanted)).values(sftp_target_id=sftp_target_id)
                        .execution_options(synchronize_session=False))


def adopt_grant(session: Session, tenant_ids: Iterable[str], grant_id: int) -> dict[str, TenantStatus]:
    """The tenants among these that the ledger already holds now sync with this grant; returns each with
    its status afterwards (the others are new to the ledger).

    Only a tenant the grant had stopped (DISCONNECTED: Xero refused it) becomes ACTIVE again: a PAUSED
    tenant was stopped by a person, and a re-consent is no decision to start it again."""
    wanted = list(tenant_ids)
    existing = set(session.scalars(select(Tenant.id).where(Tenant.id.in_(wanted))))
    if existing:
        session.execute(update(Tenant).where(Tenant.id.in_(existing)).values(grant_id=grant_id))
        session.execute(update(Tenant).where(Tenant.id.in_(existing), Tenant.status == TenantStatus.DISCONNECTED)
                        .values(status=TenantStatus.ACTIVE))
    return tenant_statuses(session, list(existing))


def tenants_with_grant_status(session: Session) -> list[tuple[Tenant, str]]:
    """Every tenant with the status of the grant it syncs with."""
    rows = session.execute(select(Tenant, XeroGrant.status).join(XeroGrant, XeroGrant.id == Tenant.grant_id))
    return list(rows)


def active_tenant_ids(session: Session) -> list[str]:
    return list(session.scalars(select(Tenant.id).where(Tenant.status == TenantStatus.ACTIVE)))


def change_settings(
    session: Session, tenant_id: str, *, poll_interval_seconds: int | None = None,
    max_bills_per_file: int | None = None, status: str | None = None, template: str | None = None,
    default_template: bool = False,
) -> Tenant:
    """Change what is given and keep the rest; `template` is the customer's (already validated) YAML,
    `default_template` goes back to our default CSV."""
    tenant = get_tenant(session, tenant_id)
    if poll_interval_seconds is not None:
        tenant.poll_interval_seconds = poll_interval_seconds
        tenant.own_poll_interval = True  # the tenant's own: a profile's cadence no longer moves it
    if max_bills_per_file is not None:
        tenant.max_bills_per_file = max_bills_per_file
    if status is not None:
        tenant.status = status
    if template is not None:
        tenant.template = template
    if default_template:
        tenant.template = None
    return tenant
