"""A tenant's mapping sets: the one in force, and importing a new version.

A new version re-opens the tenant's held bills and the bills its policies excluded, so they are mapped
again under the new rules (the sweeper maps them within its interval). Status exclusions stay: a new map
does not make a draft eligible, a new `eligible_statuses` does — so those re-open too when it changes.
"""

from __future__ import annotations

from connector.config.loader import MappingSetData
from connector.domain.dimensions import dimension_mismatches, dimensions_fed
from connector.domain.reasons import CATALOGUE
from connector.domain.rules import UnmappedTracking
from connector.errors import ConfigurationError
from connector.services.batch import tenant_template
from connector.services.holds import reopen_held
from connector.stampli.template import Template
from connector.store.db import Ledger, Session
from connector.store.holds import reopen_excluded_for
from connector.store.mappings import add_mapping_set, mapping_set_in_force
from connector.store.reference import tracking_category_names
from connector.store.tenants import get_tenant

ALLOW_UNMATCHED_DIMENSIONS = "--allow-unmatched-dimensions"

POLICY_CODES = frozenset(code for code, (reason_class, _) in CATALOGUE.items() if reason_class is not None)
REMAPPED_BY_A_NEW_SET = POLICY_CODES | {"unrenderable"}


def current(session: Session, tenant_id: str) -> tuple[int, MappingSetData]:
    """The mapping set in force (version 0 and defaults when none was ever imported)."""
    row = mapping_set_in_force(session, tenant_id)
    return (0, MappingSetData()) if row is None else (row.version, MappingSetData.from_json(row.data))


def import_mapping_set(ledger: Ledger, tenant_id: str, data: MappingSetData, *, actor: str) -> tuple[int, int]:
    """Store `data` as the tenant's next version; returns (version, bills re-opened)."""
    with ledger.transaction() as session:
        previous_version, previous = current(session, tenant_id)
        version = add_mapping_set(session, tenant_id, data.as_json(), created_by=actor)
        why = f"mapping set {version} replaced {previous_version}"
        reopened = len(reopen_held(session, tenant_id, REMAPPED_BY_A_NEW_SET, why=why, actor=actor))
        statuses_changed = data.rules().eligible_statuses != previous.rules().eligible_statuses
        excluded_for = POLICY_CODES | ({"status_not_eligible"} if statuses_changed else set())
        reopened += len(reopen_excluded_for(session, tenant_id, excluded_for, reason=f"re-evaluated: {why}",
                                            actor=actor))
    return version, reopened


class DimensionsUnmatched(ConfigurationError):
    """The tracking map and the template would not name the same dimensions: values would vanish from
    the files, or a column would always be empty. A person fixes one side (or accepts it with a flag)."""


def unmatched_dimensions(session: Session, tenant_id: str, *, data: MappingSetData | None = None,
                         template: Template | None = None) -> list[str]:
    """What would go wrong between the tenant's tracking map and its template, one sentence each; either
    side may be the one about to change (`data` or `template`), the other is the one in force."""
    tenant = get_tenant(session, tenant_id)
    if data is None:
        _, data = current(session, tenant_id)
    if template is None:
        template = tenant_template(tenant)
    passed_through = tracking_category_names(session, tenant_id) \
        if data.rules().unmapped_tracking is UnmappedTracking.PASS_THROUGH else []
    fed = dimensions_fed(((r["xero_category"], r["xero_option"], r["stampli_dimension"]) for r in data.tracking),
                         pass_through_categories=passed_through)
    columns = template.dimension_columns()
    return [m.text(template.name, columns) for m in dimension_mismatches(columns, fed, check_unfed_columns=bool(fed))]


def refuse_unmatched_dimensions(problems: list[str], *, allowed: bool) -> list[str]:
    """Refuse the change unless the operator allowed it; returns the warnings to print when allowed."""
    if problems and not allowed:
        raise DimensionsUnmatched([*problems, f"nothing stored: fix the tracking map or the template, or pass "
                                              f"{ALLOW_UNMATCHED_DIMENSIONS} to store it anyway"])
    return problems
