"""`connector holds …`: bills waiting for a person, and releasing one, audited."""

from __future__ import annotations

import getpass
from typing import Any

import click

from connector.cli.context import TENANT, CliContext, emit, json_option, pass_context


@click.group()
def holds() -> None:
    """Bills waiting for a person."""


@holds.command("list")
@click.option("--tenant", default=None, type=TENANT)
@json_option
@pass_context
def list_holds(context: CliContext, tenant: str | None, as_json: bool) -> None:
    """Every HELD bill with its reasons."""
    from connector.domain.reasons import render
    from connector.store.holds import held_bills

    with context.ledger.transaction() as session:
        rows: list[dict[str, Any]] = [
            {"tenant_id": bill.tenant_id, "invoice_id": bill.invoice_id, "invoice_number": bill.invoice_number,
             "reasons": [render(r) for r in bill.reasons],
             "reason_codes": [str(r.get("code")) for r in bill.reasons]}
            for bill in held_bills(session, tenant)]
    emit(as_json, rows, (f"{r['tenant_id']}  {r['invoice_id']}  {r['invoice_number']!r}: {'; '.join(r['reasons'])}"
                         for r in rows))


@holds.command("release")
@click.option("--invoice", required=True, help="Xero InvoiceID of the held bill")
@click.option("--why", required=True, help="kept in the audit and sent as a flag with the bill")
@click.option("--tenant", default=None, type=TENANT)
@click.option("--by", default=None, help="who releases it (default: the logged-in user)")
@pass_context
def release_hold(context: CliContext, invoice: str, why: str, tenant: str | None, by: str | None) -> None:
    """Send a held bill on anyway; it goes in the next file, marked released with who released it and why."""
    from connector.services.holds import release
    from connector.services.sync_now import reopened_work

    with context.ledger.transaction() as session:
        bill = release(session, tenant, invoice, by=by or getpass.getuser(), why=why, actor=context.actor)
        released_tenant, ready = bill.tenant_id, bill.state == "READY"
    click.echo(f"bill {invoice} released: " + ("READY for the next file" if ready else "to be mapped again"))
    click.echo(f"tenant {released_tenant}: {context.send_now(reopened_work(context.services, released_tenant))}")
