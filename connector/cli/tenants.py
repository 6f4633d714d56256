"""`connector tenants …`: the Xero organisations being synced, their cadence, file size and template."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from connector.cli.context import (
    CliContext,
    active_among,
    emit,
    json_option,
    pass_context,
    selected_tenants,
    tenant_selection,
)


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
@click.argument("positional_ids", nargs=-1, metavar="[TENANT_ID]...")
@tenant_selection
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
def set_tenant(context: CliContext, positional_ids: tuple[str, ...], tenant_ids: tuple[str, ...], all_tenants: bool,
               grant_ids: tuple[int, ...], interval: int | None, max_bills_per_file: int | None, status: str | None,
               template_file: Path | None, default_template: bool, allow_unmatched_dimensions: bool) -> None:
    """Change the cadence, file size, status or template of one tenant or many (TENANT_ID or --tenant,
    repeatable; --all-tenants; --grant N); the rest is kept. Every tenant is checked first: an unknown one
    changes nothing (exit 2).

    A template must read every dimension the tenant's tracking map gives and no dimension it does not:
    refused otherwise (exit 2, no tenant changed), since the values of a dimension no column reads would
    vanish from every file."""
    from connector.domain.tenants import TenantStatus
    from connector.services.holds import reopen_held
    from connector.services.mappings import refuse_unmatched_dimensions, unmatched_dimensions
    from connector.services.sync_now import reopened_work
    from connector.stampli import load_template
    from connector.stampli.template import default_template as default_csv_template
    from connector.store.inventory import reschedule_after_interval_change
    from connector.store.polls import unpark_polls
    from connector.store.tenants import change_settings, load_tenants

    chosen = selected_tenants(positional_ids + tenant_ids, all_tenants, grant_ids)
    template = None
    new_template = template_file is not None or default_template
    if new_template:
        # every problem named by file and field, for every tenant, before anything is stored
        loaded = load_template(template_file) if template_file is not None else default_csv_template("csv")
        with context.ledger.transaction() as session:
            problems = {tenant_id: unmatched_dimensions(session, tenant_id, template=loaded) for tenant_id in chosen}
        warnings = {tenant_id: refuse_unmatched_dimensions(found, allowed=allow_unmatched_dimensions)
                    for tenant_id, found in problems.items()}
        for tenant_id, found in warnings.items():
            for warning in found:
                click.echo(f"warning: tenant {tenant_id}: {warning}", err=True)
        template = template_file.read_text(encoding="utf-8") if template_file is not None else None
    with context.ledger.transaction() as session:
        load_tenants(session, chosen)
        for tenant_id in chosen:
            change_settings(session, tenant_id, poll_interval_seconds=interval,
                            max_bills_per_file=max_bills_per_file, status=status, template=template,
                            default_template=default_template)
            if new_template:
                reopen_held(session, tenant_id, {"unrenderable"}, why="the tenant's template changed",
                            actor=context.actor)
            if interval is not None:
                next_poll = reschedule_after_interval_change(session, tenant_id)
                click.echo(f"tenant {tenant_id}: next poll "
                           f"{next_poll.isoformat() if next_poll else 'at the next tick'}")
            if status == TenantStatus.ACTIVE and unpark_polls(session, tenant_id):
                click.echo(f"tenant {tenant_id}: parked polls cleared; it is polled at the next tick")
    if new_template:
        for tenant_id in chosen:
            sent = context.send_now(reopened_work(context.services, tenant_id))
            click.echo(f"tenant {tenant_id}: re-opened bills: {sent}")
    for tenant_id in chosen:
        click.echo(f"tenant {tenant_id} updated")


@tenants.command("poll")
@click.argument("positional_ids", nargs=-1, metavar="[TENANT_ID]...")
@tenant_selection
@click.option("--here", is_flag=True, help="poll in this process even when a broker is configured")
@pass_context
def poll_now(context: CliContext, positional_ids: tuple[str, ...], tenant_ids: tuple[str, ...], all_tenants: bool,
             grant_ids: tuple[int, ...], here: bool) -> None:
    """Poll tenants now, not at their next cadence: through the workers when a broker is configured
    (CONNECTOR_BROKER_URL), else here, followed by their mapping, batching and delivery.

    A tenant named (TENANT_ID or --tenant) that is not ACTIVE refuses the command (exit 4, nothing polled);
    one reached by --all-tenants or --grant is skipped, and said so."""
    from connector.services.sync_now import poll_now as claim

    named = positional_ids + tenant_ids
    messages, polled = [], []
    for tenant_id in active_among(selected_tenants(named, all_tenants, grant_ids), named, "polled"):
        claimed = claim(context.services, tenant_id)
        if not claimed:
            click.echo(f"tenant {tenant_id}: a poll is running already (or its polls are parked: see connector status)")
            continue
        messages.extend(claimed)
        polled.append(tenant_id)
    if not polled:
        return
    sent = context.send_now(messages, here=here)
    if len(polled) == 1:
        click.echo(f"tenant {polled[0]}: polled now; {sent}")
        return
    for tenant_id in polled:
        click.echo(f"tenant {tenant_id}: polled now")
    click.echo(f"{len(polled)} tenants polled now; {sent}")
