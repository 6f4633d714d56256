"""Which map and template a tenant works with: its own where it has one, its profile's otherwise.

Resolved here and nowhere else, the same way for mapping a bill, a dry run, the dimension check, a
draft, a reconcile and `mappings show`:

- the mapping set in force is the tenant's own newest set laid over its profile's newest set entry by
  entry (`MappingSetData.overlaid_on`): a GL code, a tracking (category, option) row, a vendor or a
  setting the tenant maps itself is its own, every other is the profile's;
- the template is the tenant's own, else its profile's, else our default CSV;
- the cadence is kept in `tenants.poll_interval_seconds` (what beat reads): the profile's, copied to every
  tenant on it without one of its own (`own_poll_interval`) whenever either changes (store.profiles).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from connector.config.loader import MappingSetData
from connector.domain.rules import Maps, TenantRules
from connector.stampli import Template, default_template, parse_template
from connector.store.db import Session
from connector.store.mapping_inputs import mapping_set_data
from connector.store.mappings import mapping_set_in_force
from connector.store.models import MappingProfile, Tenant
from connector.store.profiles import (
    MappingHeads,
    mapping_heads,
    own_sets_in_force,
    profile_set_data,
    profile_sets_in_force,
    profiles_by_id,
)
from connector.store.tenants import get_tenant, load_tenants


def combine(own: MappingSetData, shared: MappingSetData | None) -> MappingSetData:
    """The set in force: the tenant's own alone, or laid over its profile's entry by entry (a tenant's
    masks only hide its profile's entries: off a profile they hide nothing)."""
    return own.overlaid_on(shared or MappingSetData())


@dataclass(frozen=True)
class EffectiveMapping:
    """The mapping set in force for one tenant, and what it was made of (what a mapped bill records)."""

    own_version: int  # the tenant's own set (0: none imported)
    profile_id: int | None
    profile_name: str | None
    profile_version: int | None  # the profile's set (0: none imported); None when not on a profile
    data: MappingSetData
    rules: TenantRules
    maps: Maps

    @property
    def described(self) -> str:
        """As the audit says it: "set 2", "profile uk v3" or "set 2 + profile uk v3"."""
        parts = [f"set {self.own_version}"] if self.own_version or self.profile_name is None else []
        if self.profile_name is not None:
            parts.append(f"profile {self.profile_name} v{self.profile_version}")
        return " + ".join(parts)

    def as_json(self) -> dict[str, object]:
        return {"version": self.own_version,
                "profile": None if self.profile_name is None else {"name": self.profile_name,
                                                                   "version": self.profile_version},
                **self.data.as_json()}


_EFFECTIVE: dict[tuple[str, MappingHeads], EffectiveMapping] = {}


def effective_mapping(session: Session, tenant_id: str, heads: MappingHeads | None = None) -> EffectiveMapping:
    """The tenant's mapping set in force. Stored sets never change, so only their identities are read per
    call (one round trip, none when the caller read `heads` already); their data is read and parsed once
    per process, when first seen."""
    heads = heads or mapping_heads(session, tenant_id)
    key = (tenant_id, heads)
    found = _EFFECTIVE.get(key)
    if found is None:
        if len(_EFFECTIVE) > 2000:
            _EFFECTIVE.clear()
        own = MappingSetData.from_json(mapping_set_data(session, heads.own.id)) if heads.own \
            else MappingSetData()
        shared = None if heads.profile_id is None else (
            MappingSetData.from_json(profile_set_data(session, heads.profile.id)) if heads.profile
            else MappingSetData())
        data = combine(own, shared)
        found = _EFFECTIVE[key] = EffectiveMapping(
            own_version=heads.own.version if heads.own else 0, profile_id=heads.profile_id,
            profile_name=heads.profile_name,
            profile_version=None if heads.profile_id is None else (heads.profile.version if heads.profile else 0),
            data=data, rules=data.rules(), maps=data.maps())
    return found


@lru_cache(maxsize=256)
def _parsed(text: str, origin: str) -> Template:
    return parse_template(text, origin=origin)


def template_of(tenant: Tenant, profile: MappingProfile | None) -> Template:
    """The tenant's own template, else its profile's, else our default CSV (parsed once per text)."""
    return template_for(tenant.id, tenant.template, profile)


def template_for(tenant_id: str, own: str | None, profile: MappingProfile | None) -> Template:
    """`own` (a tenant's template YAML, or None) else the profile's, else our default CSV."""
    if own is not None:
        return _parsed(own, f"template of tenant {tenant_id}")
    if profile is not None and profile.template is not None:
        return _parsed(profile.template, f"template of profile {profile.name}")
    return default_template("csv")


def effective_template(session: Session, tenant: Tenant) -> Template:
    profile = session.get(MappingProfile, tenant.profile_id) \
        if tenant.template is None and tenant.profile_id is not None else None
    return template_of(tenant, profile)


def template_source(tenant: Tenant, profile: MappingProfile | None) -> str:
    """Where the tenant's template comes from: "own", "profile" or "default"."""
    if tenant.template is not None:
        return "own"
    return "profile" if profile is not None and profile.template is not None else "default"


@dataclass(frozen=True)
class TenantMaps:
    """One tenant's own map and template beside its profile's: what a change to either side is checked
    against (a change is tried by replacing one side and asking again)."""

    tenant: Tenant
    own: MappingSetData
    own_version: int
    profile: MappingProfile | None
    shared: MappingSetData | None  # the profile's set in force; None when not on a profile
    shared_version: int

    def data(self) -> MappingSetData:
        return combine(self.own, self.shared)

    def template(self) -> Template:
        return template_of(self.tenant, self.profile)


def tenant_maps(session: Session, tenant_ids: Iterable[str]) -> dict[str, TenantMaps]:
    """Each tenant's own side and its profile's, for any number of tenants in four queries."""
    wanted = list(tenant_ids)
    tenants = load_tenants(session, wanted)
    owns = own_sets_in_force(session, wanted)
    profiles = profiles_by_id(session, (t.profile_id for t in tenants.values() if t.profile_id is not None))
    shared = profile_sets_in_force(session, profiles)
    parsed = {pid: MappingSetData.from_json(row.data) for pid, row in shared.items()}
    found = {}
    for tenant_id in wanted:
        tenant = tenants[tenant_id]
        own = owns.get(tenant_id)
        profile = profiles.get(tenant.profile_id) if tenant.profile_id is not None else None
        found[tenant_id] = TenantMaps(
            tenant=tenant, own=MappingSetData.from_json(own.data) if own else MappingSetData(),
            own_version=own.version if own else 0, profile=profile,
            shared=None if profile is None else parsed.get(profile.id, MappingSetData()),
            shared_version=shared[profile.id].version if profile is not None and profile.id in shared else 0)
    return found


def own_mapping_set(session: Session, tenant_id: str) -> tuple[int, MappingSetData]:
    """The tenant's own newest set (version 0 and an empty set when it has none)."""
    get_tenant(session, tenant_id)
    row = mapping_set_in_force(session, tenant_id)
    return (0, MappingSetData()) if row is None else (row.version, MappingSetData.from_json(row.data))
