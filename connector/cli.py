"""The `connector` command line: demo, status, replay, key management and the bundled sandbox."""

from __future__ import annotations

import getpass
import os
import sys

import click

from connector.cli_auth import auth
from connector.cli_mappings import holds, mappings
from connector.cli_setup import sftp, tenants
from connector.crypto import Vault
from connector.errors import ConnectorError
from connector.logs import configure_logging
from connector.reporting import summarise
from connector.sandbox.xero.cli import xero_command
from connector.settings import load_settings


@click.group()
def cli() -> None:
    """Xero → Stampli accounts-payable connector."""


@cli.command()
@click.option("--bills", default=40, show_default=True, help="bills in the demo tenant")
@click.option("--timeout", default=180.0, show_default=True, help="seconds to wait for the cycle to settle")
def demo(bills: int, timeout: float) -> None:
    """Run the whole product on the embedded default and print where the files landed."""
    from connector.demo import run_demo

    sys.exit(run_demo(bills=bills, timeout=timeout))


@cli.command()
@click.option("--tenant", default=None, help="limit to one Xero tenant id")
def status(tenant: str | None) -> None:
    """Bills by state, held bills with their reasons, and files."""
    from connector.store.db import Ledger

    ledger = Ledger.connect(load_settings().database_url)
    summary = summarise(ledger, tenant)
    for line in summary.attention:
        click.echo(f"ATTENTION {line}")
    for state, count in sorted(summary.by_state.items()):
        click.echo(f"{state:<24}{count:>8}")
    for invoice_id, number, reasons in summary.held:
        click.echo(f"HELD {invoice_id} {number!r}: {'; '.join(reasons)}")
    for name, count, state in summary.files:
        click.echo(f"FILE {name} ({count} bills) {state}")


@cli.command()
@click.option("--invoice", required=True, help="Xero InvoiceID of the bill")
@click.option("--tenant", default=None, help="the tenant, when the InvoiceID is in several")
@click.option("--resend", is_flag=True, help="send a DELIVERED bill again, alone in a new file")
def replay(invoice: str, tenant: str | None, resend: bool) -> None:
    """Replay the stored file that carried a bill (same bytes, same name), or --resend a delivered bill."""
    from connector.services.context import build_services
    from connector.services.replay import replay_invoice

    services = build_services(load_settings())
    report = replay_invoice(services, invoice, actor=f"cli:{getpass.getuser()}", resend=resend, tenant_id=tenant)
    click.echo(f"batch {report.batch_id}: {report.state}{' (uploaded)' if report.uploaded else ''}")


@cli.command()
@click.option("--tenant", "tenant_ids", multiple=True, help="a tenant (repeatable; default: every active one)")
def reconcile(tenant_ids: tuple[str, ...]) -> None:
    """Compare what was delivered with what Xero holds now; store bills the deltas missed."""
    from connector.services.context import build_services
    from connector.services.reconcile import reconcile as run
    from connector.store.tenants import active_tenant_ids

    services = build_services(load_settings())
    if not tenant_ids:
        with services.ledger.transaction() as session:
            tenant_ids = tuple(active_tenant_ids(session))
    for tenant_id in tenant_ids:
        found: list[object] = []
        report = run(services, tenant_id, emit=found.append)
        click.echo(f"tenant {tenant_id}: {report.delivered_checked} delivered bills checked in {report.calls} "
                   f"Xero calls; {len(report.changed_after_delivery)} changed after delivery; "
                   f"{len(report.missing_from_ledger)} eligible bills the ledger lacked ({len(found)} to map, "
                   "picked up by the sweeper)")
        for line in report.changed_after_delivery:
            click.echo(f"  CHANGED {line}")
        for invoice_id in report.missing_from_ledger:
            click.echo(f"  MISSING {invoice_id}")


@cli.group()
def keys() -> None:
    """Fernet keys that encrypt secrets at rest."""


@keys.command("new")
def keys_new() -> None:
    """Print a new key; put it first in CONNECTOR_FERNET_KEYS, keep the old ones after it, then rotate."""
    click.echo(Vault.new_key())


@keys.command("rotate")
def keys_rotate() -> None:
    """Re-encrypt every stored secret under the first key of CONNECTOR_FERNET_KEYS."""
    from connector.services.context import build_services
    from connector.services.keys import rotate_keys

    click.echo(f"re-encrypted {rotate_keys(build_services(load_settings()))} secrets")


@cli.group()
def sandbox() -> None:
    """Bundled simulators for trying the connector without Xero or Stampli."""


cli.add_command(auth)
cli.add_command(mappings)
cli.add_command(holds)
cli.add_command(sftp)
cli.add_command(tenants)
sandbox.add_command(xero_command, "xero")


def main() -> None:
    configure_logging(os.environ.get("CONNECTOR_LOG_LEVEL", "INFO").upper())
    try:
        cli(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ConnectorError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
