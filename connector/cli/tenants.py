"""`connector tenants …`: the Xero organisations being synced, their cadence, file size and template."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from connector.cli.context import TENANT, CliContext, emit, json_option, pass_context


@click.group()
def tenants() -> None:
    """The Xero tenants being synced."""


@tenants.command("list")
@json_option
@pass_context
def list_tenants(context: CliContext, as_json: bool) -> None:
    """Every tenant with its status, grant, cadence and delivery target."""
    from connector.store.tenants import tenants_with_grant_status

    with context.ledger.transaction() as session:
        rows: list[dict[str, Any]] = [
            {"id": tenant.id, "name": tenant.name, "status": tenant.status, "grant_id": tenant.grant_id,
             "grant_status": grant_status, "poll_interval_seconds": tenant.poll_interval_seconds,
             "next_poll_at": tenant.next_poll_at, "last_polled_at": tenant.last_polled_at,
             "max_bills_per_file": tenant.max_bills_per_file, "sftp_target_id": tenant.sftp_target_id,
             "template": "custom" if tenant.template else "default"}
            for tenant, grant_status in tenants_with_grant_status(session)]
    emit(as_json, rows, (f"{r['id']}  {r['name']!r}  status={r['status']}  grant={r['grant_id']}({r['grant_status']})"
                         f"  every {r['poll_interval_seconds']}s  sftp={r['sftp_target_id']}" for r in rows))


@tenants.command("set")
@click.argument("tenant_id", type=TENANT)
@click.option("--interval", type=click.IntRange(min=60), help="seconds between polls")
@click.option("--max-bills-per-file", type=click.IntRange(min=1))
@click.option("--status", type=click.Choice(["ACTIVE", "PAUSED"]))
@click.option("--template", "template_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="the customer's Stampli template (YAML); validated before it is stored")
@click.option("--default-template", is_flag=True, help="go back to our default CSV template")
@click.option("--allow-unmatched-dimensions", is_flag=True,
              help="store the template even when its dimension columns and the tenant's tracking map disagree "
                   "(each disagreement is printed as a warning)")
@pass_context
def set_tenant(context: CliContext, tenant_id: str, interval: int | None, max_bills_per_file: int | None,
               status: str | None, template_file: Path | None, default_template: bool,
               allow_unmatched_dimensions: bool) -> None:
    """Change a tenant's cadence, file size, status or template; the rest is kept.

    A template must read every dimension the tenant's tracking map gives and no dimension it does not:
    refused otherwise (exit 2), since the values of a dimension no column reads would vanish from every file."""
    from connector.domain.tenants import TenantStatus
    from connector.services.holds import reopen_held
    from connector.services.mappings import refuse_unmatched_dimensions, unmatched_dimensions
    from connector.services.sync_now import reopened_work
    from connector.stampli import load_template
    from connector.stampli.template import default_template as default_csv_template
    from connector.store.inventory import reschedule_after_interval_change
    from connector.store.polls import unpark_polls
    from connector.store.tenants import change_settings

    template = None
    if template_file is not None or default_template:
        # every problem named by file and field, before anything is stored
        loaded = load_template(template_file) if template_file is not None else default_csv_template("csv")
        with context.ledger.transaction() as session:
            problems = unmatched_dimensions(session, tenant_id, template=loaded)
        for warning in refuse_unmatched_dimensions(problems, allowed=allow_unmatched_dimensions):
            click.echo(f"warning: tenant {tenant_id}: {warning}", err=True)
        template = template_file.read_text(encoding="utf-8") if template_file is not None else None
    with context.ledger.transaction() as session:
        change_settings(session, tenant_id, poll_interval_seconds=interval, max_bills_per_file=max_bills_per_file,
                        status=status, template=template, default_template=default_template)
        if template_file is not None or default_template:
            reopen_held(session, tenant_id, {"unrenderable"}, why="the tenant's template changed", actor=context.actor)
        if interval is not None:
            next_poll = reschedule_after_interval_change(session, tenant_id)
            click.echo(f"tenant {tenant_id}: next poll {next_poll.isoformat() if next_poll else 'at the next tick'}")
        if status == TenantStatus.ACTIVE and unpark_polls(session, tenant_id):
            click.echo(f"tenant {tenant_id}: parked polls cleared; it is polled at the next tick")
    if template_file is not None or default_template:
        sent = context.send_now(reopened_work(context.services, tenant_id))
        click.echo(f"tenant {tenant_id}: re-opened bills: {sent}")
    click.echo(f"tenant {tenant_id} updated")


@tenants.command("poll")
@click.argument("tenant_id", type=TENANT)
@click.option("--here", is_flag=True, help="poll in this process even when a broker is configured")
@pass_context
def poll_now(context: CliContext, tenant_id: str, here: bool) -> None:
    """Poll the tenant now, not at its next cadence: through the workers when a broker is configured
    (CONNECTOR_BROKER_URL), else here, followed by its mapping, batching and delivery."""
    from connector.services.sync_now import poll_now as claim

    messages = claim(context.services, tenant_id)
    if not messages:
        click.echo(f"tenant {tenant_id}: a poll is running already (or its polls are parked: see connector status)")
        return
    click.echo(f"tenant {tenant_id}: polled now; {context.send_now(list(messages), here=here)}")
