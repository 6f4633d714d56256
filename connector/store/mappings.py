"""Mapping sets: every version of a tenant's mapping rules and maps, the newest one in force."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connector.store.models import MappingSet, Tenant


def lock_tenant_maps(session: Session, tenant_id: str) -> None:
    """Hold the tenant's row until the transaction ends, so that two imports into its map take turns: the
    second reads the set the first stored (what it builds on, and the version after it)."""
    session.execute(select(Tenant.id).where(Tenant.id == tenant_id).with_for_update())


def mapping_set_in_force(session: Session, tenant_id: str) -> MappingSet | None:
    """The tenant's newest mapping set, or None when none was ever imported."""
    return session.scalars(
        select(MappingSet).where(MappingSet.tenant_id == tenant_id).order_by(MappingSet.version.desc()).limit(1)
    ).first()


def lock_many_tenants_maps(session: Session, tenant_ids: list[str]) -> None:
    """`lock_tenant_maps` for many tenants, in one statement (in id order, so two such imports never
    deadlock)."""
    for start in range(0, len(tenant_ids), 1000):
        session.execute(select(Tenant.id).where(Tenant.id.in_(tenant_ids[start:start + 1000]))
                        .order_by(Tenant.id).with_for_update())


def add_mapping_sets(session: Session, sets: dict[str, tuple[int, dict[str, Any]]], *, created_by: str) -> None:
    """Store each tenant's set (`sets`: tenant id -> (version, data)) in one batch of inserts; the caller
    holds the tenants' rows, so each version is the next."""
    session.add_all([MappingSet(tenant_id=tenant_id, version=version, data=data, created_by=created_by)
                     for tenant_id, (version, data) in sets.items()])
    session.flush()


def add_mapping_set(session: Session, tenant_id: str, data: dict[str, Any], *, created_by: str) -> int:
    """Store `data` as the tenant's next version and return that version number."""
    version = (session.scalar(select(func.max(MappingSet.version)).where(MappingSet.tenant_id == tenant_id))
               or 0) + 1
    session.add(MappingSet(tenant_id=tenant_id, version=version, data=data, created_by=created_by))
    return version
