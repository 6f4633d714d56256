"""`connector mappings …`: per-tenant mapping rules and maps, validated and versioned."""

from __future__ import annotations

from pathlib import Path

import click

from connector.cli.context import TENANT, CliContext, pass_context, print_json

FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.group()
def mappings() -> None:
    """Mapping rules (YAML) and GL, tracking and vendor maps (CSV), versioned per tenant."""


@mappings.command("import")
@click.option("--tenant", required=True, type=TENANT)
@click.option("--settings", "settings_file", type=FILE, help="tenant settings YAML (policies, tolerance, …)")
@click.option("--gl", type=FILE, help="CSV: xero_account_code,stampli_gl_code")
@click.option("--tracking", type=FILE, help="CSV: xero_category,xero_option,stampli_dimension,stampli_value")
@click.option("--vendors", type=FILE, help="CSV: xero_contact_id,stampli_vendor_code")
@click.option("--allow-unmatched-dimensions", is_flag=True,
              help="store it even when a mapped dimension has no template column, or a template column reads a "
                   "dimension nothing maps (each is printed as a warning)")
@pass_context
def import_(context: CliContext, tenant: str, settings_file: Path | None, gl: Path | None, tracking: Path | None,
            vendors: Path | None, allow_unmatched_dimensions: bool) -> None:
    """Validate the files (every problem named by file, row and column) and store a new version.

    The tracking map must name the dimensions the tenant's template reads: refused otherwise (exit 2),
    since the values of a dimension no column reads would vanish from every file."""
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
    with context.ledger.transaction() as session:
        _, in_force = current(session, tenant)
    data = load_mapping_set(settings_file, gl, tracking, vendors, base=in_force)
    with context.ledger.transaction() as session:
        problems = unmatched_dimensions(session, tenant, data=data)
    for warning in refuse_unmatched_dimensions(problems, allowed=allow_unmatched_dimensions):
        click.echo(f"warning: tenant {tenant}: {warning}", err=True)
    version, reopened = import_mapping_set(context.ledger, tenant, data, actor=context.actor)
    click.echo(f"tenant {tenant}: mapping set {version} stored ({len(data.gl)} GL codes, {len(data.tracking)} "
               f"tracking rows, {len(data.vendors)} vendors); {reopened} bills re-opened")
    if reopened:
        click.echo(f"tenant {tenant}: {context.send_now(reopened_work(context.services, tenant))}")


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
