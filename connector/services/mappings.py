"""A tenant's mapping sets: the one in force, and importing a new version.

A new version re-opens the tenant's held bills and the bills its policies excluded, so they are mapped
again under the new rules (the sweeper maps them within its interval). Status exclusions stay: a new map
does not make a draft eligible, a new `eligible_statuses` does — so those re-open too when it changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from connector.config.loader import MappingSetData
from connector.domain.dimensions import dimension_mismatches, dimensions_fed
from connector.domain.reasons import CATALOGUE
from connector.domain.reasons import render as render_reason
from connector.domain.rules import UnmappedTracking
from connector.domain.states import BillState
from connector.errors import ConfigurationError
from connector.services.batch import tenant_template
from connector.services.holds import reopen_held
from connector.services.map import decide_without_storing
from connector.stampli.template import Template
from connector.store.db import Ledger, Session
from connector.store.holds import bills_in_state_for, reopen_excluded_for
from connector.store.mappings import add_mapping_set, mapping_set_in_force
from connector.store.reference import tracking_category_names
from connector.store.tenants import get_tenant

ALLOW_UNMATCHED_DIMENSIONS = "--allow-unmatched-dimensions"

POLICY_CODES = frozenset(code for code, (reason_class, _) in CATALOGUE.items() if reason_class is not None)
REMAPPED_BY_A_NEW_SET = POLICY_CODES | {"unrenderable"}


def _statuses(data: MappingSetData) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The statuses a set sends to Stampli: a change re-opens what they had excluded."""
    rules = data.rules()
    return rules.eligible_statuses, rules.credit_note_statuses


def current(session: Session, tenant_id: str) -> tuple[int, MappingSetData]:
    """The mapping set in force (version 0 and defaults when none was ever imported)."""
    row = mapping_set_in_force(session, tenant_id)
    return (0, MappingSetData()) if row is None else (row.version, MappingSetData.from_json(row.data))


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
    result: DryRun | None = None
    try:
        with ledger.transaction() as session:
            _, previous = current(session, tenant_id)
            version = add_mapping_set(session, tenant_id, data.as_json(), created_by=actor)
            statuses_changed = _statuses(data) != _statuses(previous)
            excluded_for = POLICY_CODES | ({"status_not_eligible"} if statuses_changed else set())
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
            result = DryRun(version, len(candidates), tuple(changes))
            raise _RollBack
    except _RollBack:
        pass
    assert result is not None
    return result


def import_mapping_set(ledger: Ledger, tenant_id: str, data: MappingSetData, *, actor: str) -> tuple[int, int]:
    """Store `data` as the tenant's next version; returns (version, bills re-opened)."""
    with ledger.transaction() as session:
        previous_version, previous = current(session, tenant_id)
        version = add_mapping_set(session, tenant_id, data.as_json(), created_by=actor)
        why = f"mapping set {version} replaced {previous_version}"
        reopened = len(reopen_held(session, tenant_id, REMAPPED_BY_A_NEW_SET, why=why, actor=actor))
        statuses_changed = _statuses(data) != _statuses(previous)
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
