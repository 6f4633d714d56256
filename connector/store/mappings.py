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


def add_mapping_set(session: Session, tenant_id: str, data: dict[str, Any], *, created_by: str) -> int:
    """Store `data` as the tenant's next version and return that version number."""
    version = (session.scalar(select(func.max(MappingSet.version)).where(MappingSet.tenant_id == tenant_id))
               or 0) + 1
    session.add(MappingSet(tenant_id=tenant_id, version=version, data=data, created_by=created_by))
    return version
