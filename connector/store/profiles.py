"""Mapping profiles: a map (versioned), a template and a cadence that many tenants share, and which
tenants are on each. Every statement here takes any number of tenants at once."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CompoundSelect,
    Integer,
    String,
    bindparam,
    cast,
    delete,
    func,
    literal_column,
    null,
    select,
    union_all,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import Label

from connector.errors import NotFound, PermanentError
from connector.store.models import MappingProfile, MappingSet, ProfileMappingSet, Tenant

DEFAULT_INTERVAL = 900  # a tenant leaving a profile's cadence with none of its own goes back to this


class NoSuchProfile(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"no such profile: {name}")


class ProfileExists(PermanentError):
    exit_code = 2

    def __init__(self, name: str) -> None:
        super().__init__(f"profile {name} exists already (change it with `connector profiles set {name}`)")


def add_profile(session: Session, name: str, *, poll_interval_seconds: int | None, template: str | None,
                created_by: str) -> MappingProfile:
    if session.scalar(select(MappingProfile.id).where(MappingProfile.name == name)) is not None:
        raise ProfileExists(name)
    profile = MappingProfile(name=name, poll_interval_seconds=poll_interval_seconds, template=template,
                             created_by=created_by)
    session.add(profile)
    session.flush()
    return profile


def get_profile(session: Session, name: str, *, for_update: bool = False) -> MappingProfile:
    """The profile named `name`; with `for_update`, its row held until the transaction ends, so that two
    changes to it (two imports into its map) take turns."""
    query = select(MappingProfile).where(MappingProfile.name == name)
    profile = session.scalars(query.with_for_update() if for_update else query).one_or_none()
    if profile is None:
        raise NoSuchProfile(name)
    return profile


def rename_profile(session: Session, profile: MappingProfile, new_name: str) -> None:
    """The profile is called `new_name` from now on (its tenants stay on it; audit rows written before keep
    the name they were written with)."""
    if session.scalar(select(MappingProfile.id).where(MappingProfile.name == new_name)) is not None:
        raise ProfileExists(new_name)
    profile.name = new_name
    session.flush()


def remove_profile(session: Session, profile: MappingProfile) -> None:
    """The profile and every version of its map are gone; no tenant may be on it (the caller detaches them).
    Bills keep the profile's id and version they were mapped with, and their audit rows its name."""
    session.execute(delete(ProfileMappingSet).where(ProfileMappingSet.profile_id == profile.id))
    session.delete(profile)
    session.flush()


def profiles_by_id(session: Session, ids: Iterable[int]) -> dict[int, MappingProfile]:
    wanted = list(set(ids))
    if not wanted:
        return {}
    return {p.id: p for p in session.scalars(select(MappingProfile).where(MappingProfile.id.in_(wanted)))}


@dataclass(frozen=True)
class ProfileListing:
    profile: MappingProfile
    tenants: int
    version: int  # of its mapping set in force (0: none imported)


def profile_listings(session: Session) -> list[ProfileListing]:
    counts = dict(session.execute(select(Tenant.profile_id, func.count()).where(Tenant.profile_id.is_not(None))
                                  .group_by(Tenant.profile_id)).all())
    versions = dict(session.execute(select(ProfileMappingSet.profile_id, func.max(ProfileMappingSet.version))
                                    .group_by(ProfileMappingSet.profile_id)).all())
    return [ProfileListing(p, counts.get(p.id, 0), versions.get(p.id) or 0)
            for p in session.scalars(select(MappingProfile).order_by(MappingProfile.name))]


def profile_names_of(session: Session, tenant_ids: Iterable[str]) -> dict[str, str]:
    """The profile each of these tenants is on, by name (tenants on none are left out), in one query."""
    wanted = list(set(tenant_ids))
    if not wanted:
        return {}
    return dict(session.execute(select(Tenant.id, MappingProfile.name).join(
        MappingProfile, MappingProfile.id == Tenant.profile_id).where(Tenant.id.in_(wanted))).all())


def tenants_on(session: Session, profile_id: int) -> list[str]:
    return list(session.scalars(select(Tenant.id).where(Tenant.profile_id == profile_id).order_by(Tenant.id)))


def put_on_profile(session: Session, tenant_ids: list[str], profile: MappingProfile | None) -> None:
    """These tenants share `profile` from now on (None: no profile). A tenant without a cadence of its own
    takes the profile's, if it has one; leaving a profile, the cadence in force stays (not marked its own:
    on another profile with a cadence, it takes that one)."""
    if not tenant_ids:
        return
    values: dict[str, Any] = {"profile_id": profile.id if profile else None}
    session.execute(update(Tenant).where(Tenant.id.in_(tenant_ids)).values(**values)
                    .execution_options(synchronize_session="fetch"))
    if profile is not None and profile.poll_interval_seconds is not None:
        session.execute(update(Tenant).where(Tenant.id.in_(tenant_ids), Tenant.own_poll_interval.is_(False))
                        .values(poll_interval_seconds=profile.poll_interval_seconds)
                        .execution_options(synchronize_session="fetch"))


def inherit_interval(session: Session, tenant_ids: list[str]) -> None:
    """These tenants drop a cadence of their own: their profile's rules (or the onboarding default)."""
    if not tenant_ids:
        return
    profile_cadence = (select(MappingProfile.poll_interval_seconds)
                       .where(MappingProfile.id == Tenant.profile_id).scalar_subquery())
    session.execute(update(Tenant).where(Tenant.id.in_(tenant_ids))
                    .values(own_poll_interval=False,
                            poll_interval_seconds=func.coalesce(profile_cadence, DEFAULT_INTERVAL))
                    .execution_options(synchronize_session="fetch"))


def change_profile_cadence(session: Session, profile: MappingProfile, interval: int | None) -> list[str]:
    """The profile's cadence, and that of every tenant on it without one of its own; returns those tenants."""
    profile.poll_interval_seconds = interval
    following = list(session.scalars(select(Tenant.id).where(Tenant.profile_id == profile.id,
                                                             Tenant.own_poll_interval.is_(False))))
    if interval is not None and following:
        session.execute(update(Tenant).where(Tenant.id.in_(following)).values(poll_interval_seconds=interval)
                        .execution_options(synchronize_session="fetch"))
    return following


def profile_mapping_set_in_force(session: Session, profile_id: int) -> ProfileMappingSet | None:
    return session.scalars(select(ProfileMappingSet).where(ProfileMappingSet.profile_id == profile_id)
                           .order_by(ProfileMappingSet.version.desc()).limit(1)).first()


def add_profile_mapping_set(session: Session, profile_id: int, data: dict[str, Any], *, created_by: str) -> int:
    version = (session.scalar(select(func.max(ProfileMappingSet.version))
                              .where(ProfileMappingSet.profile_id == profile_id)) or 0) + 1
    session.add(ProfileMappingSet(profile_id=profile_id, version=version, data=data, created_by=created_by))
    session.flush()
    return version


def own_sets_in_force(session: Session, tenant_ids: list[str]) -> dict[str, MappingSet]:
    """Each tenant's own newest mapping set (those that have one), in one query."""
    if not tenant_ids:
        return {}
    newest = (select(MappingSet.tenant_id, func.max(MappingSet.version).label("version"))
              .where(MappingSet.tenant_id.in_(tenant_ids)).group_by(MappingSet.tenant_id).subquery())
    rows = session.scalars(select(MappingSet).join(newest, (MappingSet.tenant_id == newest.c.tenant_id)
                                                   & (MappingSet.version == newest.c.version)))
    return {row.tenant_id: row for row in rows}


def profile_sets_in_force(session: Session, profile_ids: Iterable[int]) -> dict[int, ProfileMappingSet]:
    wanted = list(set(profile_ids))
    if not wanted:
        return {}
    newest = (select(ProfileMappingSet.profile_id, func.max(ProfileMappingSet.version).label("version"))
              .where(ProfileMappingSet.profile_id.in_(wanted)).group_by(ProfileMappingSet.profile_id).subquery())
    rows = session.scalars(select(ProfileMappingSet).join(
        newest, (ProfileMappingSet.profile_id == newest.c.profile_id)
        & (ProfileMappingSet.version == newest.c.version)))
    return {row.profile_id: row for row in rows}


@dataclass(frozen=True)
class SetHead:
    """The identity of a stored mapping set: enough to know whether a parsed copy is still the one in force."""

    id: int
    version: int
    created_at: datetime


@dataclass(frozen=True)
class MappingHeads:
    own: SetHead | None
    profile_id: int | None
    profile_name: str | None
    profile: SetHead | None
    # The tenant's reference_version (store.reference), read in the same round trip for the worker's copy
    # of its vendors and accounts; not part of the heads' identity (a parsed set does not depend on it).
    reference_version: int = field(default=0, compare=False)


def _kind(name: str) -> Label[str]:
    return literal_column(f"'{name}'", String).label("kind")


def _mapping_heads_statement() -> CompoundSelect[str, int, int, datetime, str]:
    tenant_id = bindparam("tenant_id", type_=String(64))
    profile_of = select(Tenant.profile_id).where(Tenant.id == tenant_id).scalar_subquery()
    no_name = cast(null(), String(100)).label("name")
    own = (select(_kind("own"), MappingSet.id, MappingSet.version, MappingSet.created_at,
                  no_name)
           .where(MappingSet.tenant_id == tenant_id, MappingSet.version == (
               select(func.max(MappingSet.version)).where(MappingSet.tenant_id == tenant_id).scalar_subquery())))
    shared = (select(_kind("profile"), ProfileMappingSet.id, ProfileMappingSet.version,
                     ProfileMappingSet.created_at, no_name)
              .where(ProfileMappingSet.profile_id == profile_of, ProfileMappingSet.version == (
                  select(func.max(ProfileMappingSet.version))
                  .where(ProfileMappingSet.profile_id == profile_of).scalar_subquery())))
    which = (select(_kind("which"), MappingProfile.id, literal_column("0", Integer).label("version"),
                    MappingProfile.created_at, MappingProfile.name)
             .where(MappingProfile.id == profile_of))
    reference = (select(_kind("reference"), Tenant.reference_version, literal_column("0", Integer).label("version"),
                        cast(null(), MappingSet.created_at.type), no_name).where(Tenant.id == tenant_id))
    return union_all(own, shared, which, reference)


# Built once: mapping reads it for every bill, and building it each time was a large share of a bill's CPU.
_MAPPING_HEADS = _mapping_heads_statement()


def mapping_heads(session: Session, tenant_id: str) -> MappingHeads:
    """What mapping one bill needs to know first, in one round trip: the tenant's own mapping set in force,
    its profile, and that profile's mapping set in force (each None when there is none), and the tenant's
    reference_version."""
    # On the session's connection: plain rows, none of the ORM's execution path (a third of the cost).
    found = {row.kind: row for row in session.connection().execute(_MAPPING_HEADS, {"tenant_id": tenant_id})}
    own_row, shared_row, which_row = found.get("own"), found.get("profile"), found.get("which")
    return MappingHeads(
        own=SetHead(own_row.id, own_row.version, own_row.created_at) if own_row else None,
        profile_id=which_row.id if which_row else None,
        profile_name=which_row.name if which_row else None,
        profile=SetHead(shared_row.id, shared_row.version, shared_row.created_at) if shared_row else None,
        reference_version=int(found["reference"].id) if "reference" in found else 0,
    )


def profile_set_data(session: Session, set_id: int) -> dict[str, Any]:
    return session.get_one(ProfileMappingSet, set_id).data
