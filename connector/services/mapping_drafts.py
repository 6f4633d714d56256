"""Starter maps from Xero's own lists: the tenant's chart of accounts and tracking options, as CSV files in
the import's own format with Xero's name and status beside each code, so a person fills in the Stampli
columns instead of typing codes from a screen. The import reads such a file as it is (see
`connector.config.loader.DRAFT_COLUMNS`): rows left empty are codes not mapped yet."""

from __future__ import annotations

import csv
from pathlib import Path

from connector.config.loader import DRAFT_COLUMNS, MappingSetData
from connector.errors import ActionRefused, ConfigurationError
from connector.services.mappings import effective
from connector.store.db import Ledger
from connector.store.profiles import get_profile, profile_mapping_set_in_force, tenants_on
from connector.store.reference import Account, TrackingCategory, chart_of_accounts, shared_chart, tracking_lists

GL_COLUMNS = ("xero_account_code", "stampli_gl_code", *DRAFT_COLUMNS["gl"])
TRACKING_COLUMNS = ("xero_category", "xero_option", "stampli_dimension", "stampli_value", *DRAFT_COLUMNS["tracking"])


class NothingToDraft(ActionRefused):
    """The tenant's lists have not been read from Xero yet (no poll has run)."""


def draft_mapping_files(ledger: Ledger, tenant_id: str, folder: Path) -> dict[str, int]:
    """Write gl.csv and tracking.csv into `folder` (never over an existing file); returns rows per file.

    Stampli columns are empty, except where the map in force already gives a value for that code."""
    with ledger.transaction() as session:
        accounts = chart_of_accounts(session, tenant_id)
        categories = tracking_lists(session, tenant_id)
        in_force = effective(session, tenant_id).data  # the profile's entries too
    if not accounts and not categories:
        raise NothingToDraft(f"tenant {tenant_id}: its chart of accounts and tracking categories have not been read "
                             f"from Xero yet; run `connector tenants poll {tenant_id}` first")
    return _write_drafts(folder, accounts, categories, in_force)


def draft_profile_files(ledger: Ledger, name: str, folder: Path) -> dict[str, int]:
    """`draft_mapping_files` for a profile: every account code and tracking option of every tenant on it
    (each once), the Stampli columns filled from the profile's own map only (never a tenant's override),
    so that the file imported with `--profile` changes the shared map and nothing else."""
    with ledger.transaction() as session:
        profile = get_profile(session, name)
        on_it = tenants_on(session, profile.id)
        accounts, categories = shared_chart(session, on_it)
        row = profile_mapping_set_in_force(session, profile.id)
    if not accounts and not categories:
        raise NothingToDraft(f"profile {name}: none of its {len(on_it)} tenants has had its chart of accounts or "
                             "tracking categories read from Xero yet (put tenants on it, and poll them first)")
    return _write_drafts(folder, accounts, categories, MappingSetData.from_json(row.data) if row else MappingSetData())


def _write_drafts(folder: Path, accounts: list[Account], categories: list[TrackingCategory],
                  in_force: MappingSetData) -> dict[str, int]:
    targets = {"gl.csv": folder / "gl.csv", "tracking.csv": folder / "tracking.csv"}
    existing = [str(path) for path in targets.values() if path.exists()]
    if existing:
        raise ConfigurationError([f"{path}: exists already; a draft never overwrites a file (choose another --out)"
                                  for path in existing])
    mapped_tracking = {(r["xero_category"], r["xero_option"]): r for r in in_force.tracking}
    gl_rows = [{"xero_account_code": a.code or "", "stampli_gl_code": in_force.gl.get(a.code or "", ""),
                "xero_account_name": a.name, "xero_account_status": a.status} for a in accounts]
    tracking_rows = []
    for category in categories:
        for option in category.options:
            name = str(option.get("name") or "")
            mapped = mapped_tracking.get((category.name, name)) or {}
            tracking_rows.append({"xero_category": category.name, "xero_option": name,
                                  "stampli_dimension": mapped.get("stampli_dimension", ""),
                                  "stampli_value": mapped.get("stampli_value", ""),
                                  "xero_category_status": category.status,
                                  "xero_option_status": str(option.get("status") or "")})
    folder.mkdir(parents=True, exist_ok=True)
    _write(targets["gl.csv"], GL_COLUMNS, gl_rows)
    _write(targets["tracking.csv"], TRACKING_COLUMNS, tracking_rows)
    return {"gl.csv": len(gl_rows), "tracking.csv": len(tracking_rows)}


def _write(path: Path, columns: tuple[str, ...], rows: list[dict[str, str]]) -> None:
    with path.open("x", newline="", encoding="utf-8") as handle:  # "x": never over a file made meanwhile
        writer = csv.DictWriter(handle, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
