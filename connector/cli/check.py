"""`connector check`: one line per thing the connector depends on, and a non-zero exit if any fails."""

from __future__ import annotations

import click

from connector.cli.context import CliContext, emit, json_option, pass_context
from connector.errors import EXIT_CODES


class ChecksFailed(click.ClickException):
    exit_code = 3

    def show(self, file: object = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


@click.command()
@json_option
@pass_context
def check(context: CliContext, as_json: bool) -> None:
    """Check the database and its migrations, the broker, every Xero grant (one cheap call each) and every
    SFTP target (connect, host key, login, folder writable)."""
    from connector.services.checks import check_broker, ledger_unreachable, run_checks

    try:
        services = context.services  # opens the ledger (and migrates it, as every process does on start)
    except Exception as exc:  # an unreachable ledger is a FAIL line
        checks = [ledger_unreachable(context.settings, exc), check_broker(context.settings)]
    else:
        checks = run_checks(services)
    emit(as_json, [{"subject": c.subject, "ok": c.ok, "detail": c.detail} for c in checks],
         (c.line() for c in checks))
    failed = [c for c in checks if not c.ok]
    if failed:
        raise ChecksFailed(f"{len(failed)} of {len(checks)} checks failed ({EXIT_CODES[3].split(':')[0]})")
