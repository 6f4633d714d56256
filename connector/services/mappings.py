"""A tenant's mapping sets: the one in force, and importing a new version.

A new version re-opens the tenant's held bills and the bills its policies excluded, so they are mapped
again under the new rules (the sweeper maps them within its interval). Status exclusions stay: a new map
does not make a draft eligible, a new `eligible_statuses` does — so those re-open too when it changes.
"""

from __future__ import annotations

from connector.config.loader import MappingSetData
from connector.domain.reasons import CATALOGUE
from connector.services.holds import reopen_held
from connector.store.db import Ledger, Session
from connector.store.holds import reopen_excluded_for
from connector.store.mappings import add_mapping_set, mapping_set_in_force

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
