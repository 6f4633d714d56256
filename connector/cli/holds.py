"""`connector holds …`: bills waiting for a person, and releasing one, audited."""

from __future__ import annotations

import getpass
from typing import Any

import click

from connector.cli.context import (
    TENANT,
    CliContext,
    emit,
    json_option,
    pass_context,
    selected_tenants,
    tenant_selection,
)


@click.group()
def holds() -> None:
    """Bills waiting for a person."""


@holds.command("list")
@click.option("--tenant", default=None, type=TENANT)
@json_option
@pass_context
def list_holds(context: CliContext, tenant: str | None, as_json: bool) -> None:
    """Every HELD bill with its reasons."""
    from connector.domain.reasons import render_with_next_try
    from connector.store.holds import held_bills

    with context.ledger.transaction() as session:
        rows: list[dict[str, Any]] = [
            {"tenant_id": bill.tenant_id, "invoice_id": bill.invoice_id, "invoice_number": bill.invoice_number,
             "reasons": render_with_next_try(bill.reasons, bill.documents_retry_at),
             "reason_codes": [str(r.get("code")) for r in bill.reasons]}
            for bill in held_bills(session, tenant)]
    emit(as_json, rows, (f"{r['tenant_id']}  {r['invoice_id']}  {r['invoice_number']!r}: {'; '.join(r['reasons'])}"
                         for r in rows))


@holds.command("release")
@click.option("--invoice", "invoices", multiple=True, help="Xero InvoiceID of a held bill (repeatable)")
@click.option("--reason", "reason_codes", multiple=True, metavar="CODE",
              help="instead of --invoice: every HELD bill of the tenants selected held for nothing but these "
                   "reason codes (repeatable), e.g. unknown_po")
@click.option("--why", required=True, help="kept in the audit and sent as a flag with the bill")
@tenant_selection
@click.option("--by", default=None, help="who releases it (default: the logged-in user)")
@click.option("--without-documents", is_flag=True,
              help="a bill held because Xero fails to serve one of its documents goes on without it "
                   "(by default a release fetches its documents again)")
@pass_context
def release_hold(context: CliContext, invoices: tuple[str, ...], reason_codes: tuple[str, ...], why: str,
                 tenant_ids: tuple[str, ...], all_tenants: bool, grant_ids: tuple[int, ...], by: str | None,
                 without_documents: bool) -> None:
    """Send held bills on anyway; each goes in the next file, marked released with who released it and why.

    Either --invoice (repeatable; the tenants selected, if any, narrow where it is looked for: --tenant,
    repeatable; --all-tenants; --grant N) or --reason CODE with a selection: every HELD bill of those
    tenants held only for those codes. Bills named by --invoice are released together or not at all
    (exit 4 naming the one refused); by --reason, a bill that cannot be released is skipped and said so."""
    from connector.services.holds import ReleaseRefused, releasable_for, release, release_bill
    from connector.services.sync_now import reopened_work

    if bool(invoices) == bool(reason_codes):
        raise click.UsageError("give --invoice ID (repeatable), or --reason CODE with --tenant, --all-tenants "
                               "or --grant")
    chosen = selected_tenants(tenant_ids, all_tenants, grant_ids, required=bool(reason_codes))
    who = by or getpass.getuser()
    released: dict[str, str] = {}  # invoice id -> its tenant
    lines: list[str] = []  # printed once the transaction committed
    with context.ledger.transaction() as session:
        if invoices:
            for invoice in dict.fromkeys(invoices):
                bill = release(session, chosen or None, invoice, by=who, why=why, actor=context.actor,
                               without_documents=without_documents)
                released[bill.invoice_id] = bill.tenant_id
                lines.append(f"bill {invoice} released: " + ("READY for the next file" if bill.state == "READY"
                                                             else "to be mapped again"))
        else:
            for bill in releasable_for(session, chosen, reason_codes):
                try:  # refused before it changes anything: the others are released
                    release_bill(session, bill, by=who, why=why, actor=context.actor,
                                 without_documents=without_documents)
                except ReleaseRefused as refused:
                    click.echo(f"tenant {bill.tenant_id}: bill {bill.invoice_id} not released: {refused}", err=True)
                    continue
                released[bill.invoice_id] = bill.tenant_id
            lines.append(f"{len(released)} bills released in {len(set(released.values()))} tenants")
    for line in lines:
        click.echo(line)
    for tenant_id in dict.fromkeys(released.values()):
        click.echo(f"tenant {tenant_id}: {context.send_now(reopened_work(context.services, tenant_id))}")
