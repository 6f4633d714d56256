"""A tenant's mapping sets: the one in force, and importing a new version.

A new version re-opens the tenant's held bills and the bills its policies excluded, so they are mapped
again under the new rules (the sweeper maps them within its interval). Status exclusions stay: a new map
does not make a draft eligible, a new `eligible_statuses` does — so those re-open too when it changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from connector.config.loader import MappingSetData
from connector.domain.credit_notes import WITH_EXCLUDED_BILLS
from connector.domain.dimensions import dimension_mismatches, dimensions_fed
from connector.domain.reasons import CATALOGUE
from connector.domain.reasons import render as render_reason
from connector.domain.rules import TenantRules, UnmappedTracking
from connector.domain.states import BillState
from connector.errors import ConfigurationError
from connector.services.batch import tenant_template
from connector.services.map import decide_without_storing
from connector.services.profiles import EffectiveMapping, combine, effective_mapping, template_for, tenant_maps
from connector.stampli.template import Template
from connector.store.db import Ledger, Session
from connector.store.holds import bills_in_state_for, reopen_many
from connector.store.mappings import (
    add_mapping_set,
    add_mapping_sets,
    lock_many_tenants_maps,
    lock_tenant_maps,
    mapping_set_in_force,
)
from connector.store.models import MappingProfile
from connector.store.profiles import (
    add_profile_mapping_set,
    get_profile,
    profile_mapping_set_in_force,
    put_on_profile,
    tenants_on,
)
from connector.store.reference import tracking_category_names
from connector.store.tenants import get_tenant

ALLOW_UNMATCHED_DIMENSIONS = "--allow-unmatched-dimensions"

POLICY_CODES = frozenset(code for code, (reason_class, _) in CATALOGUE.items() if reason_class is not None)
REMAPPED_BY_A_NEW_SET = POLICY_CODES | {"unrenderable"}
# Excluded bills a new map may let through; a credit note excluded with its bills follows them.
EXCLUDED_BY_A_NEW_SET = POLICY_CODES | {WITH_EXCLUDED_BILLS}


def _statuses(rules: TenantRules) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The statuses a set sends to Stampli (bills', credit notes'): a change re-opens what they had excluded."""
    return rules.eligible_statuses, rules.credit_note_statuses


def current(session: Session, tenant_id: str) -> tuple[int, MappingSetData]:
    """The tenant's OWN mapping set (version 0 and defaults when none was ever imported): what a tenant's
    import builds on. What mapping uses is `effective` (own laid over the tenant's profile's)."""
    row = mapping_set_in_force(session, tenant_id)
    return (0, MappingSetData()) if row is None else (row.version, MappingSetData.from_json(row.data))


def effective(session: Session, tenant_id: str) -> EffectiveMapping:
    """The mapping set in force for the tenant, resolved as mapping resolves it (services.profiles)."""
    get_tenant(session, tenant_id)
    return effective_mapping(session, tenant_id)


@dataclass(frozen=True)
class WouldChange:
    """One bill a mapping import would map again, and what mapping would then decide."""

    invoice_id: str
    invoice_number: str
    from_state: str
    to_state: str
    was: tuple[str, ...]   # the reasons it has now
    now: tuple[str, ...]   # the reasons it would have

    def as_json(self) -> dict[str, Any]:
        return {"invoice_id": self.invoice_id, "invoice_number": self.invoice_number, "from": self.from_state,
                "to": self.to_state, "was": list(self.was), "now": list(self.now)}


@dataclass(frozen=True)
class DryRun:
    version: int                    # the version the import would store
    mapped_again: int               # bills the import would send to be mapped again
    changes: tuple[WouldChange, ...]  # those whose state or reasons would change


class _RollBack(Exception):
    """Raised inside a dry run's transaction so that nothing it did is kept."""


def dry_run_import(ledger: Ledger, tenant_id: str, data: MappingSetData, *, actor: str) -> DryRun:
    """What importing `data` would do, decided by the real mapping on the real bills inside one
    transaction that is then rolled back: nothing is stored, no bill moves, no audit row is written."""
    return _dry_run(ledger, [tenant_id], lambda session: add_mapping_set(session, tenant_id, data.as_json(),
                                                                         created_by=actor))[tenant_id]


def dry_run_profile_import(ledger: Ledger, name: str, data: MappingSetData, *, actor: str) -> dict[str, DryRun]:
    """`dry_run_import` for a profile's map: for every tenant on it, what its bills would become."""
    with ledger.transaction() as session:
        profile = get_profile(session, name)
        tenant_ids = tenants_on(session, profile.id)
    return _dry_run(ledger, tenant_ids, lambda session: add_profile_mapping_set(session, profile.id, data.as_json(),
                                                                                created_by=actor))


def _dry_run(ledger: Ledger, tenant_ids: list[str], store: Callable[[Session], int]) -> dict[str, DryRun]:
    results: dict[str, DryRun] = {}
    try:
        with ledger.transaction() as session:
            previous = {tenant_id: effective(session, tenant_id).rules for tenant_id in tenant_ids}
            version = store(session)
            for tenant_id in tenant_ids:
                results[tenant_id] = _would_change(session, tenant_id, previous[tenant_id], version)
            raise _RollBack
    except _RollBack:
        pass
    return results


def _would_change(session: Session, tenant_id: str, previous: TenantRules, version: int) -> DryRun:
    statuses_changed = _statuses(effective(session, tenant_id).rules) != _statuses(previous)
    excluded_for = EXCLUDED_BY_A_NEW_SET | ({"status_not_eligible"} if statuses_changed else set())
    candidates = bills_in_state_for(session, tenant_id, BillState.HELD, REMAPPED_BY_A_NEW_SET) \
        + bills_in_state_for(session, tenant_id, BillState.EXCLUDED, excluded_for)
    changes = []
    for bill in candidates:
        was = tuple(render_reason(r) for r in bill.reasons)
        try:
            outcome = decide_without_storing(session, tenant_id, bill)
            to_state, now = str(outcome.state), tuple(r.text() for r in outcome.reasons)
        except Exception as error:  # the real mapping would hold it (bad_record): say so
            to_state, now = str(BillState.HELD), (f"mapping it would fail: {type(error).__name__}",)
        if (str(bill.state), was) != (to_state, now):
            changes.append(WouldChange(bill.invoice_id, bill.invoice_number or "", str(bill.state),
                                       to_state, was, now))
    return DryRun(version, len(candidates), tuple(changes))


#: What an import stores: a whole set, or the parts its files give laid onto the set in force when it is
#: stored (read then, under a lock, so two imports at once keep each other's parts).
Onto = Callable[[MappingSetData], MappingSetData]


def import_mapping_set(ledger: Ledger, tenant_id: str, data: MappingSetData | Onto, *, actor: str,
                       allow_unmatched: bool = True) -> tuple[int, int]:
    """Store `data` as the tenant's next version; returns (version, bills re-opened)."""
    stored = import_tenant_mapping_set(ledger, tenant_id, data, actor=actor, allow_unmatched=allow_unmatched)
    return stored.version, stored.reopened


@dataclass(frozen=True)
class TenantImport:
    version: int
    reopened: int
    data: MappingSetData  # the set stored


def import_tenant_mapping_set(ledger: Ledger, tenant_id: str, data: MappingSetData | Onto, *, actor: str,
                              allow_unmatched: bool = True) -> TenantImport:
    """Store `data` as the tenant's next version, and re-open the bills a new map may decide otherwise.
    Two imports into one tenant take turns: each builds on the set the other stored. Unless
    `allow_unmatched`, a set whose tracking map and the tenant's template disagree is refused
    (DimensionsUnmatched, nothing stored)."""
    with ledger.transaction() as session:
        lock_tenant_maps(session, tenant_id)
        previous_version, own = current(session, tenant_id)
        before = effective(session, tenant_id)
        stored = data(own) if callable(data) else data
        if not allow_unmatched:
            refuse_unmatched_for({tenant_id: unmatched_dimensions(
                session, tenant_id, data=combine(stored, _shared(session, before)))}, allowed=False)
        version = add_mapping_set(session, tenant_id, stored.as_json(), created_by=actor)
        now = effective(session, tenant_id).rules
        reopened = reopen_for_new_map(session, [tenant_id], {tenant_id: (before.rules, now)},
                                      why=f"mapping set {version} replaced {previous_version}", actor=actor)
    return TenantImport(version, reopened[tenant_id], stored)


def import_many_tenant_mapping_sets(ledger: Ledger, tenant_ids: list[str], onto: Onto, *, actor: str,
                                    allow_unmatched: bool = True) -> dict[str, TenantImport]:
    """`import_tenant_mapping_set` for many tenants in one transaction and a few queries whatever their
    number: their rows held, `onto` laid onto each one's own set in force, each checked against its
    template (refused for one: nothing stored), stored, and their bills re-opened."""
    with ledger.transaction() as session:
        lock_many_tenants_maps(session, sorted(tenant_ids))
        views = tenant_maps(session, tenant_ids)
        stored = {tenant_id: onto(view.own) for tenant_id, view in views.items()}
        if not allow_unmatched:
            found = {tenant_id: unmatched_dimensions(session, tenant_id, data=combine(stored[tenant_id], view.shared),
                                                     template=view.template()) for tenant_id, view in views.items()}
            refuse_unmatched_for({tenant_id: problems for tenant_id, problems in found.items() if problems},
                                 allowed=False)
        add_mapping_sets(session, {tenant_id: (views[tenant_id].own_version + 1, data.as_json())
                                   for tenant_id, data in stored.items()}, created_by=actor)
        reopened = reopen_for_new_map(
            session, tenant_ids, {tenant_id: (view.data().rules(), combine(stored[tenant_id], view.shared).rules())
                                  for tenant_id, view in views.items()},
            why="a new version of the tenant's own mapping set", actor=actor)
    return {tenant_id: TenantImport(views[tenant_id].own_version + 1, reopened[tenant_id], data)
            for tenant_id, data in stored.items()}


def _shared(session: Session, mapping: EffectiveMapping) -> MappingSetData | None:
    """The profile's side of a tenant's map in force (None when it is on no profile)."""
    if mapping.profile_id is None:
        return None
    row = profile_mapping_set_in_force(session, mapping.profile_id)
    return MappingSetData.from_json(row.data) if row else MappingSetData()


def reopen_for_new_map(session: Session, tenant_ids: list[str],
                       rules: dict[str, tuple[TenantRules, TenantRules]], *, why: str, actor: str,
                       held_for: frozenset[str] = REMAPPED_BY_A_NEW_SET) -> dict[str, int]:
    """After the map in force changed for these tenants (`rules`: before and after, each), their bills held
    for what a map decides, and those excluded by a policy (or by status, when the eligible statuses
    changed), go back to be mapped again; in two queries for any number of tenants. Returns how many
    bills each tenant re-opened."""
    excluded_for = {tenant_id: EXCLUDED_BY_A_NEW_SET | ({"status_not_eligible"} if _statuses(before)
                                               != _statuses(after) else set())
                    for tenant_id, (before, after) in rules.items()}
    reopened = reopen_many(session, tenant_ids, held_for=held_for, excluded_for=excluded_for,
                           reason=f"re-evaluated: {why}", actor=actor)
    return {tenant_id: reopened.get(tenant_id, 0) for tenant_id in tenant_ids}


class DimensionsUnmatched(ConfigurationError):
    """The tracking map and the template would not name the same dimensions: values would vanish from
    the files, or a column would always be empty. A person fixes one side (or accepts it with a flag)."""


def unmatched_dimensions(session: Session, tenant_id: str, *, data: MappingSetData | None = None,
                         template: Template | None = None) -> list[str]:
    """What would go wrong between the tenant's tracking map and its template, one sentence each; either
    side may be the one about to change (`data`: the whole set that would be in force, own and profile's
    together; `template`), the other is the one in force."""
    if data is None:
        data = effective(session, tenant_id).data
    if template is None:
        template = tenant_template(session, get_tenant(session, tenant_id))
    passed_through = tracking_category_names(session, tenant_id) \
        if data.rules().unmapped_tracking is UnmappedTracking.PASS_THROUGH else []
    fed = dimensions_fed(((r["xero_category"], r["xero_option"], r["stampli_dimension"]) for r in data.tracking),
                         pass_through_categories=passed_through)
    columns = template.dimension_columns()
    return [m.text(template.name, columns) for m in dimension_mismatches(columns, fed, check_unfed_columns=bool(fed))]


def refuse_unmatched_for(problems: dict[str, list[str]], *, allowed: bool) -> list[str]:
    """`refuse_unmatched_dimensions` for many tenants at once, naming each tenant with its problems."""
    return refuse_unmatched_dimensions([f"tenant {tenant_id}: {problem}" for tenant_id, found in problems.items()
                                        for problem in found], allowed=allowed)


def refuse_unmatched_dimensions(problems: list[str], *, allowed: bool) -> list[str]:
    """Refuse the change unless the operator allowed it; returns the warnings to print when allowed."""
    if problems and not allowed:
        raise DimensionsUnmatched([*problems, f"nothing stored: fix the tracking map or the template, or pass "
                                              f"{ALLOW_UNMATCHED_DIMENSIONS} to store it anyway"])
    return problems


# --- Profiles: one map, template and cadence for many tenants ------------------------------------------


@dataclass(frozen=True)
class ProfileImport:
    version: int                # the profile's new mapping set
    reopened: dict[str, int]    # per tenant on the profile, the bills sent to be mapped again
    data: MappingSetData = field(default_factory=MappingSetData)  # the set stored
    warnings: dict[str, list[str]] = field(default_factory=dict)  # per tenant, the disagreements allowed


def profile_import_problems(session: Session, profile: MappingProfile, data: MappingSetData) -> dict[str, list[str]]:
    """For each tenant on the profile, what would go wrong between the map it would then use (its own
    entries over `data`) and its template; only tenants with a problem."""
    views = tenant_maps(session, tenants_on(session, profile.id))
    found = {tenant_id: unmatched_dimensions(session, tenant_id, data=combine(view.own, data),
                                             template=view.template()) for tenant_id, view in views.items()}
    return {tenant_id: problems for tenant_id, problems in found.items() if problems}


def import_profile_mapping_set(ledger: Ledger, name: str, data: MappingSetData | Onto, *, actor: str,
                               allow_unmatched: bool = True) -> ProfileImport:
    """Store `data` as the profile's next version; every tenant on it maps with it from now on (under its
    own entries), and its bills held or excluded by what a map decides are re-opened, in one transaction.
    The profile's row is held meanwhile: two imports at once take turns, each building on the set the
    other stored. Refused (DimensionsUnmatched, nothing stored) when a tenant's map and template would
    disagree, unless `allow_unmatched`."""
    with ledger.transaction() as session:
        profile = get_profile(session, name, for_update=True)
        previous = profile_mapping_set_in_force(session, profile.id)
        stored = data(MappingSetData.from_json(previous.data) if previous else MappingSetData()) \
            if callable(data) else data
        problems = profile_import_problems(session, profile, stored)
        refuse_unmatched_for(problems, allowed=allow_unmatched)
        views = tenant_maps(session, tenants_on(session, profile.id))
        version = add_profile_mapping_set(session, profile.id, stored.as_json(), created_by=actor)
        rules = {tenant_id: (view.data().rules(), combine(view.own, stored).rules())
                 for tenant_id, view in views.items()}
        reopened = reopen_for_new_map(session, list(views), rules, actor=actor,
                                      why=f"profile {name} mapping set {version} replaced "
                                          f"{previous.version if previous else 0}")
    return ProfileImport(version, reopened, stored, problems)


def profile_template_problems(session: Session, profile: MappingProfile, template: Template) -> dict[str, list[str]]:
    """For each tenant on the profile that uses the profile's template (it has none of its own), what would
    go wrong between its map in force and `template`; only tenants with a problem."""
    views = tenant_maps(session, tenants_on(session, profile.id))
    found = {tenant_id: unmatched_dimensions(session, tenant_id, data=view.data(), template=template)
             for tenant_id, view in views.items() if view.tenant.template is None}
    return {tenant_id: problems for tenant_id, problems in found.items() if problems}


def change_profile_template(session: Session, profile: MappingProfile, template: str | None, *,
                            actor: str) -> dict[str, int]:
    """The profile's template becomes `template` (None: our default CSV): the tenants using it have their
    bills the old one could not carry re-opened. Returns, per such tenant, the bills re-opened."""
    profile.template = template
    following = [t for t, view in tenant_maps(session, tenants_on(session, profile.id)).items()
                 if view.tenant.template is None]
    return reopen_many(session, following, held_for={"unrenderable"}, excluded_for={},
                       reason=f"re-evaluated: the template of profile {profile.name} changed", actor=actor)


KEEP: Final = "keep"


@dataclass(frozen=True)
class TenantChange:
    """What `tenants set` would change in the map and template of the tenants it selects."""

    template: str | Literal["keep"] | None = KEEP   # the tenant's own template YAML (None: none of its own)
    profile: MappingProfile | Literal["keep"] | None = KEEP


def tenant_change_problems(session: Session, tenant_ids: list[str], change: TenantChange) -> dict[str, list[str]]:
    """For each tenant, what would go wrong between the map and the template it would use after `change`."""
    views = tenant_maps(session, tenant_ids)
    profile_sets: dict[int, MappingSetData] = {}
    if isinstance(change.profile, MappingProfile):
        row = profile_mapping_set_in_force(session, change.profile.id)
        profile_sets[change.profile.id] = MappingSetData.from_json(row.data) if row else MappingSetData()
    found = {}
    for tenant_id, view in views.items():
        profile = view.profile if change.profile == KEEP else change.profile
        assert not isinstance(profile, str)
        shared = view.shared if change.profile == KEEP else (
            None if profile is None else profile_sets[profile.id])
        own_template = view.tenant.template if change.template == KEEP else change.template
        template = template_for(tenant_id, own_template, profile)
        found[tenant_id] = unmatched_dimensions(session, tenant_id, data=combine(view.own, shared), template=template)
    return {tenant_id: problems for tenant_id, problems in found.items() if problems}


def leave_profile(session: Session, tenant_ids: list[str], *, why: str, actor: str) -> dict[str, int]:
    """These tenants leave their profile (`tenants set --no-profile`): their own map, template and cadence
    only (the cadence in force stays). Their bills held or excluded by what a map decides are re-opened;
    returns how many per tenant."""
    before = tenant_maps(session, tenant_ids)
    put_on_profile(session, tenant_ids, None)
    after = tenant_maps(session, tenant_ids)
    return reopen_for_new_map(session, tenant_ids, {t: (before[t].data().rules(), after[t].data().rules())
                                                    for t in tenant_ids}, why=why, actor=actor)
