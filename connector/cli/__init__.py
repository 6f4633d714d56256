"""The `connector` command line: one module per command group, one context per run (settings, ledger,
vault and services, each built on first use), and one place that turns a failure into an exit status.

Commands call services and repository functions only. Every `--tenant` is checked where it is read
(`connector.cli.context.TENANT`); every failure the connector raises on purpose carries its exit status
(`connector.errors.EXIT_CODES`), so a script, and a CliRunner test, sees the same status as an operator.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from connector.cli.auth import auth
from connector.cli.bills import audit, bills
from connector.cli.check import check
from connector.cli.context import CliContext
from connector.cli.demo import demo, sandbox
from connector.cli.holds import holds
from connector.cli.keys import keys
from connector.cli.mappings import mappings
from connector.cli.masterdata import masterdata
from connector.cli.profiles import profiles
from connector.cli.reconcile import reconcile
from connector.cli.replay import replay
from connector.cli.sftp import sftp
from connector.cli.status import status
from connector.cli.tenants import tenants
from connector.cli.webhooks import webhooks
from connector.errors import EXIT_CODES, ConnectorError

__all__ = ["cli", "main"]


class CommandFailed(click.ClickException):
    """A ConnectorError on its way out: its message on standard error, its type's exit status."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        vars(self)["exit_code"] = exit_code  # per instance: click reads it, the class default is 1

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class ConnectorGroup(click.Group):
    """The root group: turns every failure the connector raises on purpose into its exit status, and a
    database failure into a one-line message (never a traceback, never a password)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConnectorError as failure:
            raise CommandFailed(str(failure), failure.exit_code) from failure
        except Exception as failure:
            if not type(failure).__module__.startswith("sqlalchemy"):
                raise
            from connector.settings import mask_url_password

            first_line = str(failure).strip().splitlines()[0] if str(failure).strip() else type(failure).__name__
            raise CommandFailed(f"the ledger failed: {mask_url_password(first_line)}", 1) from failure


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("xero-stampli-connector")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


EXIT_STATUS_HELP = "\b\nExit status:\n" + "\n".join(f"  {code:<4}{meaning}" for code, meaning in EXIT_CODES.items())


@click.group(cls=ConnectorGroup, epilog=EXIT_STATUS_HELP, context_settings={"max_content_width": 120})
@click.version_option(_version(), "--version", prog_name="connector", message="%(prog)s %(version)s")
@click.option("-v", "--verbose", count=True, help="log what happens (-v: info, -vv: debug); quiet by default")
@click.pass_context
def cli(ctx: click.Context, verbose: int) -> None:
    """Xero → Stampli accounts-payable connector."""
    from connector.logs import configure_logging

    configure_logging(["WARNING", "INFO", "DEBUG"][min(verbose, 2)])
    if verbose == 0:
        logging.getLogger("alembic").setLevel(logging.WARNING)  # no migration chatter on every command
    context = ctx.ensure_object(CliContext)
    ctx.call_on_close(context.close)


for group in (audit, auth, bills, check, demo, holds, keys, mappings, masterdata, profiles, reconcile, replay, sandbox,
              sftp, status, tenants, webhooks):
    cli.add_command(group)


def main() -> None:
    """The `connector` console script."""
    try:
        status_code = cli(prog_name="connector", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except click.ClickException as failure:
        failure.show()
        sys.exit(failure.exit_code)
    sys.exit(status_code if isinstance(status_code, int) else 0)
