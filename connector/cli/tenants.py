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
    from connector.services.profiles import template_source
    from connector.store.masterdata import enabled_kinds_by_tenant
    from connector.store.profiles import profiles_by_id
    from connector.store.tenants import tenants_with_grant_status

    with context.ledger.transaction() as session:
        listed = tenants_with_grant_status(session)
        profiles = profiles_by_id(session, (t.profile_id for t, _ in listed if t.profile_id is not None))
        master_data = enabled_kinds_by_tenant(session)
        rows: list[dict[str, Any]] = []
        for tenant, grant_status in listed:
            profile = profiles.get(tenant.profile_id) if tenant.profile_id is not None else None
            rows.append({"id": tenant.id, "name": tenant.name, "status": tenant.status, "grant_id": tenant.grant_id,
                         "grant_status": grant_status, "profile": profile.name if profile else None,
                         "poll_interval_seconds": tenant.poll_interval_seconds,
                         "own_poll_interval": tenant.own_poll_interval, "next_poll_at": tenant.next_poll_at,
                         "last_polled_at": tenant.last_polled_at, "max_bills_per_file": tenant.max_bills_per_file,
                         "sftp_target_id": tenant.sftp_target_id,
                         "template": "custom" if tenant.template else "default",
                         "template_from": template_source(tenant, profile),
                         "master_data": [str(k) for k in master_data.get(tenant.id, [])]})
    emit(as_json, rows, (f"{r['id']}  {r['name']!r}  status={r['status']}  grant={r['grant_id']}({r['grant_status']})"
                         f"  profile={r['profile'] or '-'}  every {r['poll_interval_seconds']}s"
                         f"{'' if r['own_poll_interval'] or not r['profile'] else ' (profile)'}"
                         f"  template={r['template_from']}  sftp={r['sftp_target_id']}"
                         f"  master_data={','.join(r['master_data']) or '-'}" for r in rows))


@tenants.command("set")
@click.argument("positional_ids", nargs=-1, metavar="[TENANT_ID]...")
@tenant_selection
@click.option("--interval", type=click.IntRange(min=60), help="seconds between polls (the tenant's own cadence)")
@click.option("--max-bills-per-file", type=click.IntRange(min=1))
@click.option("--status", type=click.Choice(["ACTIVE", "PAUSED"]))
@click.option("--template", "template_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="the customer's Stampli template (YAML); validated before it is stored")
@click.option("--default-template", is_flag=True,
              help="drop the tenant's own template: its profile's, else our default CSV (as --inherit template)")
@click.option("--profile", "profile_name", metavar="NAME", help="share this profile's map, template and cadence")
@click.option("--no-profile", is_flag=True, help="leave the profile: its own map, template and cadence only")
@click.option("--inherit", multiple=True, type=click.Choice(["interval", "template"]),
              help="drop the tenant's own cadence or template and use its profile's (repeatable)")
@click.option("--allow-unmatched-dimensions", is_flag=True,
              help="store the change even when the template's dimension columns and the tenant's tracking map "
                   "would disagree (each disagreement is printed as a warning)")
@pass_context
def set_tenant(context: CliContext, positional_ids: tuple[str, ...], tenant_ids: tuple[str, ...], all_tenants: bool,
               grant_ids: tuple[int, ...], interval: int | None, max_bills_per_file: int | None, status: str | None,
               template_file: Path | None, default_template: bool, profile_name: str | None, no_profile: bool,
               inherit: tuple[str, ...], allow_unmatched_dimensions: bool) -> None:
    """Change the cadence, file size, status, template or profile of one tenant or many (TENANT_ID or
    --tenant, repeatable; --all-tenants; --grant N); the rest is kept. Every tenant is checked first: an
    unknown one (or profile) changes nothing (exit 2).

    On a profile, a tenant uses the profile's cadence and template unless it has its own (--interval,
    --template; --inherit drops them again), and maps with the profile's mapping set under its own entries.

    The template a tenant would use must read every dimension its tracking map would give and no dimension
    it would not: refused otherwise (exit 2, no tenant changed), since the values of a dimension no column
    reads would vanish from every file. A new template or profile sends the bills it re-opens to be mapped
    and batched at once."""
    from connector.domain.tenants import TenantStatus
    from connector.services.mappings import (
        KEEP,
        REMAPPED_BY_A_NEW_SET,
        TenantChange,
        refuse_unmatched_for,
        reopen_for_new_map,
        tenant_change_problems,
    )
    from connector.services.profiles import tenant_maps
    from connector.stampli import load_template
    from connector.store.holds import reopen_many
    from connector.store.inventory import reschedule_after_interval_change
    from connector.store.polls import unpark_polls
    from connector.store.profiles import get_profile, inherit_interval, put_on_profile
    from connector.store.tenants import change_settings, load_tenants

    drop_template = default_template or "template" in inherit
    if profile_name is not None and no_profile:
        raise click.UsageError("--profile and --no-profile exclude each other")
    if interval is not None and "interval" in inherit:
        raise click.UsageError("--interval and --inherit interval exclude each other")
    if template_file is not None and drop_template:
        raise click.UsageError("--template excludes --default-template and --inherit template")
    chosen = selected_tenants(positional_ids + tenant_ids, all_tenants, grant_ids)
    if template_file is not None:
        load_template(template_file)  # every problem named by file and field, before anything is stored
    template = template_file.read_text(encoding="utf-8") if template_file is not None else None
    change = TenantChange(template=template if template_file is not None else None if drop_template else KEEP)
    with context.ledger.transaction() as session:
        profile = get_profile(session, profile_name) if profile_name is not None else None
        if profile is not None or no_profile:
            change = TenantChange(template=change.template, profile=profile)
        if change != TenantChange():  # what the tenants would map and render with after it: checked first
            for warning in refuse_unmatched_for(tenant_change_problems(session, chosen, change),
                                                allowed=allow_unmatched_dimensions):
                click.echo(f"warning: {warning}", err=True)
    reopened: dict[str, int] = {}
    with context.ledger.transaction() as session:
        load_tenants(session, chosen)
        before = tenant_maps(session, chosen) if change.profile != KEEP else {}
        for tenant_id in chosen:
            change_settings(session, tenant_id, poll_interval_seconds=interval,
                            max_bills_per_file=max_bills_per_file, status=status, template=template,
                            default_template=drop_template)
        if change.profile != KEEP:
            if profile is not None:  # held until this commits: removed meanwhile, it is refused (exit 2)
                profile = get_profile(session, profile.name, for_update=True)
            put_on_profile(session, chosen, profile)
            after = tenant_maps(session, chosen)
            reopened = reopen_for_new_map(
                session, chosen, {t: (before[t].data().rules(), after[t].data().rules()) for t in chosen},
                why=f"the tenant's profile is now {profile.name if profile else 'none'}", actor=context.actor,
                held_for=REMAPPED_BY_A_NEW_SET)
        elif change.template != KEEP:
            reopened = reopen_many(session, chosen, held_for={"unrenderable"}, excluded_for={},
                                   reason="re-evaluated: the tenant's template changed", actor=context.actor)
        if "interval" in inherit:
            inherit_interval(session, chosen)
        for tenant_id in chosen:
            if interval is not None or "interval" in inherit or change.profile != KEEP:
                next_poll = reschedule_after_interval_change(session, tenant_id)
                if interval is not None or "interval" in inherit:
                    click.echo(f"tenant {tenant_id}: next poll "
                               f"{next_poll.isoformat() if next_poll else 'at the next tick'}")
            if status == TenantStatus.ACTIVE and unpark_polls(session, tenant_id):
                click.echo(f"tenant {tenant_id}: parked polls cleared; it is polled at the next tick")
    if reopened := {tenant_id: n for tenant_id, n in reopened.items() if n}:
        click.echo(f"{sum(reopened.values())} bills re-opened in {len(reopened)} tenants: "
                   f"{context.send_reopened(reopened)}")
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
