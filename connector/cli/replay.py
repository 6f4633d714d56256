"""`connector replay`: send a stored file again (same bytes, same name), or re-send one delivered bill."""

from __future__ import annotations

import click

from connector.cli.context import TENANT, CliContext, emit, json_option, pass_context


@click.command()
@click.option("--invoice", default=None, help="Xero InvoiceID of the bill")
@click.option("--file", "file_name", default=None, help="the file's name, as `connector status` shows it")
@click.option("--tenant", default=None, type=TENANT, help="the tenant, when the InvoiceID is in several")
@click.option("--resend", is_flag=True, help="send a DELIVERED bill again, alone in a new file")
@json_option
@pass_context
def replay(context: CliContext, invoice: str | None, file_name: str | None, tenant: str | None, resend: bool,
           as_json: bool) -> None:
    """Replay a stored file (same bytes, same name), named or as the file that carried a bill; or --resend a
    delivered bill alone in a new file."""
    from connector.services.history import replay_file
    from connector.services.replay import replay_invoice

    if (invoice is None) == (file_name is None):
        raise click.UsageError("give one of --invoice or --file")
    if file_name is not None:
        if resend:
            raise click.UsageError("--resend sends one bill again: use it with --invoice")
        report = replay_file(context.services, file_name, actor=context.actor)
    else:
        assert invoice is not None
        report = replay_invoice(context.services, invoice, actor=context.actor, resend=resend, tenant_id=tenant)
    waits = f" (waits for {', '.join(report.waits_for)})" if report.waits_for else ""
    lines = [f"batch {report.batch_id}: {report.state}{' (uploaded)' if report.uploaded else ''}{waits}"]
    if report.follow_ups:  # files that waited for this one (a replayed master-data file): on their way now
        lines.append(f"files that waited for it: {context.send_now(list(report.follow_ups))}")
    emit(as_json, {"batch_id": report.batch_id, "state": report.state, "uploaded": report.uploaded,
                   "waits_for": list(report.waits_for)}, lines)
