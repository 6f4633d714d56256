"""`connector replay`: send a stored file again (same bytes, same name), or re-send one delivered bill."""

from __future__ import annotations

import click

from connector.cli.context import TENANT, CliContext, emit, json_option, pass_context


@click.command()
@click.option("--invoice", required=True, help="Xero InvoiceID of the bill")
@click.option("--tenant", default=None, type=TENANT, help="the tenant, when the InvoiceID is in several")
@click.option("--resend", is_flag=True, help="send a DELIVERED bill again, alone in a new file")
@json_option
@pass_context
def replay(context: CliContext, invoice: str, tenant: str | None, resend: bool, as_json: bool) -> None:
    """Replay the stored file that carried a bill (same bytes, same name), or --resend a delivered bill."""
    from connector.services.replay import replay_invoice

    report = replay_invoice(context.services, invoice, actor=context.actor, resend=resend, tenant_id=tenant)
    emit(as_json, {"batch_id": report.batch_id, "state": report.state, "uploaded": report.uploaded},
         [f"batch {report.batch_id}: {report.state}{' (uploaded)' if report.uploaded else ''}"])
