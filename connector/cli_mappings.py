"""`connector mappings …` and `connector holds …`: per-tenant mapping sets, and held bills."""

from __future__ import annotations

import getpass
import json
from pathlib import Path

import click

from connector.config.loader import load_mapping_set
from connector.domain.reasons import render
from connector.services.holds import release
from connector.services.mappings import current, import_mapping_set
from connector.settings import load_settings
from connector.store.db import Ledger
from connector.store.holds import held_bills
from connector.store.tenants import get_tenant

FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.group()
def mappings() -> None:
    """Mapping rules (YAML) and GL, tracking and vendor maps (CSV), versioned per tenant."""


@mappings.command("import")
@click.option("--tenant", required=True)
@click.option("--settings", "settings_file", type=FILE, help="tenant settings YAML (policies, tolerance, …)")
@click.option("--gl", type=FILE, help="CSV: xero_account_code,stampli_gl_code")
@click.option("--tracking", type=FILE, help="CSV: xero_category,xero_option,stampli_dimension,stampli_value")
@click.option("--vendors", type=FILE, help="CSV: xero_contact_id,stampli_vendor_code")
def import_(tenant: str, settings_file: Path | None, gl: Path | None, tracking: Path | None,
            vendors: Path | None) -> None:
    """Validate the files (every problem named by file, row and column) and store a new version."""
    if not any((settings_file, gl, tracking, vendors)):
        raise click.UsageError("give at least one of --settings, --gl, --tracking, --vendors")
    ledger = Ledger.connect(load_settings().database_url)
    with ledger.transaction() as session:
        get_tenant(session, tenant)
        _, in_force = current(session, tenant)
    data = load_mapping_set(settings_file, gl, tracking, vendors, base=in_force)
    version, reopened = import_mapping_set(ledger, tenant, data, actor=f"cli:{getpass.getuser()}")
    click.echo(f"tenant {tenant}: mapping set {version} stored ({len(data.gl)} GL codes, {len(data.tracking)} "
               f"tracking rows, {len(data.vendors)} vendors); {reopened} bills will be mapped again")


@mappings.command("show")
@click.option("--tenant", required=True)
def show(tenant: str) -> None:
    ledger = Ledger.connect(load_settings().database_url)
    with ledger.transaction() as session:
        version, data = current(session, tenant)
    click.echo(json.dumps({"version": version, **data.as_json()}, indent=2, ensure_ascii=False))


@click.group()
def holds() -> None:
    """Bills waiting for a person."""


@holds.command("list")
@click.option("--tenant", default=None)
def list_holds(tenant: str | None) -> None:
    ledger = Ledger.connect(load_settings().database_url)
    with ledger.transaction() as session:
        for bill in held_bills(session, tenant):
            click.echo(f"{bill.tenant_id}  {bill.invoice_id}  {bill.invoice_number!r}: "
                       f"{'; '.join(render(r) for r in bill.reasons)}")


@holds.command("release")
@click.option("--invoice", required=True, help="Xero InvoiceID of the held bill")
@click.option("--why", required=True, help="kept in the audit and sent as a flag with the bill")
@click.option("--tenant", default=None)
@click.option("--by", default=None, help="who releases it (default: the logged-in user)")
def release_hold(invoice: str, why: str, tenant: str | None, by: str | None) -> None:
    """Send a held bill on anyway; it goes in the next file, flagged with who released it and why."""
    ledger = Ledger.connect(load_settings().database_url)
    with ledger.transaction() as session:
        user = getpass.getuser()
        bill = release(session, tenant, invoice, by=by or user, why=why, actor=f"cli:{user}")
        click.echo(f"bill {bill.invoice_id} released: READY for the next file")
