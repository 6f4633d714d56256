"""`connector mappings …`: per-tenant mapping rules and maps, validated and versioned."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from connector.cli.context import (
    TENANT,
    CliContext,
    emit,
    json_option,
    pass_context,
    print_json,
    selected_tenants,
    tenant_selection,
)

FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.group()
def mappings() -> None:
    """Mapping rules (YAML) and GL, tracking and vendor maps (CSV), versioned per tenant."""


@mappings.command("import")
@tenant_selection
@click.option("--settings", "settings_file", type=FILE, help="tenant settings YAML (policies, tolerance, …)")
@click.option("--gl", type=FILE, help="CSV: xero_account_code,stampli_gl_code")
@click.option("--tracking", type=FILE, help="CSV: xero_category,xero_option,stampli_dimension,stampli_value")
@click.option("--vendors", type=FILE, help="CSV: xero_contact_id,stampli_vendor_code")
@click.option("--allow-unmatched-dimensions", is_flag=True,
              help="store it even when a mapped dimension has no template column, or a template column reads a "
                   "dimension nothing maps (each is printed as a warning)")
@click.option("--dry-run", is_flag=True,
              help="show which bills would change state and why (decided by the real mapping); store nothing")
@json_option
@pass_context
def import_(context: CliContext, tenant_ids: tuple[str, ...], all_tenants: bool, grant_ids: tuple[int, ...],
            settings_file: Path | None, gl: Path | None, tracking: Path | None, vendors: Path | None,
            allow_unmatched_dimensions: bool, dry_run: bool, as_json: bool) -> None:
    """Validate the files (every problem named by file, row and column) and store a new version for each
    tenant selected (--tenant, repeatable; --all-tenants; --grant N); files not given keep each tenant's own.

    The tracking map must name the dimensions each tenant's template reads: refused otherwise (exit 2, no
    tenant changed), since the values of a dimension no column reads would vanish from every file. Files
    made by `mappings draft` import as they are: rows whose Stampli columns are still empty are not mapped.
    With --json: one document for one tenant, a list of them for several."""
    from connector.config.loader import load_mapping_set
    from connector.services.mappings import (
        current,
        import_mapping_set,
        refuse_unmatched_dimensions,
        unmatched_dimensions,
    )
    from connector.services.sync_now import reopened_work

    if not any((settings_file, gl, tracking, vendors)):
        raise click.UsageError("give at least one of --settings, --gl, --tracking, --vendors")
    chosen = selected_tenants(tenant_ids, all_tenants, grant_ids)
    planned = {}
    with context.ledger.transaction() as session:
        for tenant in chosen:
            _, in_force = current(session, tenant)
            data = load_mapping_set(settings_file, gl, tracking, vendors, base=in_force)
            planned[tenant] = (data, unmatched_dimensions(session, tenant, data=data))
    if dry_run:
        _emit_all(as_json, [_show_dry_run(context, tenant, data, problems) for tenant, (data, problems) in
                            planned.items()])
        return
    for tenant, (_, problems) in planned.items():  # refused for one tenant: nothing stored for any
        for warning in refuse_unmatched_dimensions(problems, allowed=allow_unmatched_dimensions):
            click.echo(f"warning: tenant {tenant}: {warning}", err=True)
    reports = []
    for tenant, (data, problems) in planned.items():
        version, reopened = import_mapping_set(context.ledger, tenant, data, actor=context.actor)
        sent = context.send_now(reopened_work(context.services, tenant)) if reopened else None
        reports.append(({"tenant_id": tenant, "stored": True, "version": version, "gl_codes": len(data.gl),
                         "tracking_rows": len(data.tracking), "vendors": len(data.vendors), "reopened": reopened,
                         "sent": sent, "dimension_warnings": problems},
                        [f"tenant {tenant}: mapping set {version} stored ({len(data.gl)} GL codes, "
                         f"{len(data.tracking)} tracking rows, {len(data.vendors)} vendors); {reopened} bills "
                         f"re-opened"] + ([f"tenant {tenant}: {sent}"] if sent else [])))
    _emit_all(as_json, reports)


def _emit_all(as_json: bool, reports: list[tuple[dict[str, Any], list[str]]]) -> None:
    """One tenant's document as it is, several as a list; the human lines one tenant after another."""
    documents = [document for document, _ in reports]
    emit(as_json, documents[0] if len(documents) == 1 else documents,
         [line for _, lines in reports for line in lines])


def _show_dry_run(context: CliContext, tenant: str, data: Any,
                  problems: list[str]) -> tuple[dict[str, Any], list[str]]:
    from connector.services.mappings import dry_run_import

    run = dry_run_import(context.ledger, tenant, data, actor=context.actor)
    document = {"tenant_id": tenant, "stored": False, "version": run.version, "mapped_again": run.mapped_again,
                "dimension_problems": problems, "bills": [change.as_json() for change in run.changes]}
    lines = [f"tenant {tenant}: dry run, nothing stored: mapping set {run.version} would send {run.mapped_again} "
             f"bills to be mapped again; {len(run.changes)} would change"]
    lines += [f"  would be refused: {problem}" for problem in problems]
    for change in run.changes:
        lines.append(f"  {change.invoice_number or change.invoice_id} ({change.invoice_id}): "
                     f"{change.from_state} -> {change.to_state}")
        lines += [f"      was: {why}" for why in change.was] + [f"      now: {why}" for why in change.now]
    return document, lines


@mappings.command("draft")
@click.option("--tenant", required=True, type=TENANT)
@click.option("--out", "folder", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="folder for gl.csv and tracking.csv (created; existing files are never overwritten)")
@pass_context
def draft(context: CliContext, tenant: str, folder: Path) -> None:
    """Starter gl.csv and tracking.csv from the tenant's chart of accounts and tracking options as Xero last
    listed them: codes, names and status, with the Stampli columns to fill in (already filled where the
    map in force gives a value). Fill in what to map, then `mappings import` them as they are."""
    from connector.services.mapping_drafts import draft_mapping_files

    written = draft_mapping_files(context.ledger, tenant, folder)
    for name, rows in written.items():
        click.echo(f"{folder / name}: {rows} rows")
    click.echo(f"fill in the stampli_ columns, then: connector mappings import --tenant {tenant} "
               f"--gl {folder / 'gl.csv'} --tracking {folder / 'tracking.csv'} --dry-run")


@mappings.command("show")
@click.option("--tenant", required=True, type=TENANT)
@click.option("--json", "as_json", is_flag=True, default=True, hidden=True)  # always JSON: the maps are data
@pass_context
def show(context: CliContext, tenant: str, as_json: bool) -> None:
    """The mapping set in force, as JSON."""
    from connector.services.mappings import current

    with context.ledger.transaction() as session:
        version, data = current(session, tenant)
    print_json({"version": version, **data.as_json()})
