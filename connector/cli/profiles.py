"""`connector profiles …`: a map, a template and a cadence that many tenants share.

A tenant on a profile maps with the profile's mapping set under its own entries (a GL code, a tracking
(category, option) row, a vendor or a setting the tenant maps itself wins; every other is the
profile's), renders with its own template else the profile's, and polls at its own cadence (set with
`tenants set --interval`) else the profile's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from connector.cli.context import CliContext, emit, json_option, pass_context
from connector.errors import ConfigurationError

TEMPLATE = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.group()
def profiles() -> None:
    """Mapping profiles: one versioned map, a template and a cadence shared by many tenants."""


@profiles.command("create")
@click.argument("name")
@click.option("--interval", type=click.IntRange(min=60), help="seconds between polls of its tenants")
@click.option("--template", "template_file", type=TEMPLATE, help="the Stampli template (YAML) of its tenants")
@json_option
@pass_context
def create(context: CliContext, name: str, interval: int | None, template_file: Path | None, as_json: bool) -> None:
    """A new profile (no tenant on it yet: `tenants set --profile NAME`; its map: `mappings import
    --profile NAME`)."""
    from connector.stampli import load_template
    from connector.store.profiles import add_profile

    if template_file is not None:
        load_template(template_file)  # every problem named by file and field, before anything is stored
    with context.ledger.transaction() as session:
        add_profile(session, name, poll_interval_seconds=interval, created_by=context.actor,
                    template=template_file.read_text(encoding="utf-8") if template_file else None)
    emit(as_json, {"profile": name, "created": True, "poll_interval_seconds": interval,
                   "template": "custom" if template_file else "default"},
         [f"profile {name} created; put tenants on it with `connector tenants set --profile {name} "
          "--tenant ID | --all-tenants | --grant N`"])


@profiles.command("set")
@click.argument("name")
@click.option("--interval", type=click.IntRange(min=60), help="seconds between polls of its tenants")
@click.option("--no-interval", is_flag=True, help="no cadence: its tenants keep the one they have")
@click.option("--template", "template_file", type=TEMPLATE, help="the Stampli template (YAML) of its tenants")
@click.option("--default-template", is_flag=True, help="our default CSV template")
@click.option("--allow-unmatched-dimensions", is_flag=True,
              help="store the template even when its dimension columns and a tenant's tracking map disagree "
                   "(each disagreement is printed as a warning)")
@json_option
@pass_context
def set_profile(context: CliContext, name: str, interval: int | None, no_interval: bool, template_file: Path | None,
                default_template: bool, allow_unmatched_dimensions: bool, as_json: bool) -> None:
    """Change the profile's cadence or template; every tenant on it without its own takes the change now
    (a shorter cadence moves the next poll; bills the old template could not carry are re-opened and sent
    on at once). A template is checked against the map in force of every tenant that would use it:
    refused (exit 2, nothing changed) when any disagrees, naming the tenant."""
    from connector.services.mappings import (
        change_profile_template,
        profile_template_problems,
        refuse_unmatched_for,
    )
    from connector.stampli import load_template
    from connector.stampli.template import default_template as default_csv_template
    from connector.store.inventory import reschedule_after_interval_change
    from connector.store.profiles import change_profile_cadence, get_profile

    if interval is not None and no_interval:
        raise click.UsageError("--interval and --no-interval exclude each other")
    if template_file is not None and default_template:
        raise click.UsageError("--template and --default-template exclude each other")
    new_template = template_file is not None or default_template
    with context.ledger.transaction() as session:
        profile = get_profile(session, name, for_update=True)  # an import into its map waits, and is checked after
        if new_template:
            loaded = load_template(template_file) if template_file is not None else default_csv_template("csv")
            for warning in refuse_unmatched_for(profile_template_problems(session, profile, loaded),
                                                allowed=allow_unmatched_dimensions):
                click.echo(f"warning: {warning}", err=True)
        reopened: dict[str, int] = {}
        if new_template:
            reopened = change_profile_template(session, profile, template_file.read_text(encoding="utf-8")
                                               if template_file is not None else None, actor=context.actor)
        moved = []
        if interval is not None or no_interval:
            moved = change_profile_cadence(session, profile, interval)
            if interval is not None:
                for tenant_id in moved:
                    reschedule_after_interval_change(session, tenant_id)
    lines = []
    if interval is not None:
        lines.append(f"profile {name}: every {interval}s for {len(moved)} tenants (those with a cadence of their "
                     "own keep it)")
    if no_interval:
        lines.append(f"profile {name}: no cadence; its tenants keep the one they have")
    sent = None
    if new_template:
        lines.append(f"profile {name}: template changed; {sum(reopened.values())} bills re-opened in "
                     f"{len(reopened)} tenants")
        if reopened:
            sent = context.send_reopened(reopened)
            lines.append(f"profile {name}: {sent}")
    emit(as_json, {"profile": name, "poll_interval_seconds": interval if not no_interval else None,
                   "tenants_following": len(moved) if interval is not None or no_interval else None,
                   "template_changed": new_template, "reopened": reopened, "sent": sent}, lines)


@profiles.command("list")
@json_option
@pass_context
def list_profiles(context: CliContext, as_json: bool) -> None:
    """Every profile: its tenants, cadence, template and mapping set version."""
    from connector.store.profiles import profile_listings

    with context.ledger.transaction() as session:
        rows: list[dict[str, Any]] = [_row(listing) for listing in profile_listings(session)]
    emit(as_json, rows, (f"{r['name']}  {r['tenants']} tenants  mapping set {r['mapping_version']}  "
                         f"every {r['poll_interval_seconds'] or '-'}s  template={r['template']}" for r in rows))


def _row(listing: Any) -> dict[str, Any]:
    profile = listing.profile
    return {"name": profile.name, "tenants": listing.tenants, "mapping_version": listing.version,
            "poll_interval_seconds": profile.poll_interval_seconds,
            "template": "custom" if profile.template else "default", "created_at": profile.created_at,
            "created_by": profile.created_by}


@profiles.command("show")
@click.argument("name")
@json_option
@pass_context
def show(context: CliContext, name: str, as_json: bool) -> None:
    """The profile and each tenant on it, with what the tenant overrides (its own cadence, template, or
    mapping entries)."""
    from connector.services.profiles import tenant_maps
    from connector.store.profiles import get_profile, profile_listings, tenants_on

    with context.ledger.transaction() as session:
        profile = get_profile(session, name)
        listing = next(item for item in profile_listings(session) if item.profile.id == profile.id)
        views = tenant_maps(session, tenants_on(session, profile.id))
        tenants = [{"id": tenant_id, "poll_interval_seconds": view.tenant.poll_interval_seconds,
                    "own_interval": view.tenant.own_poll_interval, "own_template": view.tenant.template is not None,
                    "own_mapping_set": view.own_version,
                    "overrides": {"gl": sorted(set(view.own.gl) & set(view.shared.gl)) if view.shared else [],
                                  "gl_codes": len(view.own.gl), "tracking_rows": len(view.own.tracking),
                                  "vendors": len(view.own.vendors), "settings": sorted(view.own.settings),
                                  "masked": {part: values for part, values in view.own.masked.as_json().items()
                                             if part != "settings"}}}
                   for tenant_id, view in views.items()]
        document = {**_row(listing), "tenant_list": tenants}
    lines = [f"profile {name}: {listing.tenants} tenants, mapping set {listing.version}, every "
             f"{profile.poll_interval_seconds or '-'}s, template {document['template']}"]
    for tenant in tenants:
        own = [part for part, yes in (("cadence", tenant["own_interval"]), ("template", tenant["own_template"]),
                                      (f"mapping set {tenant['own_mapping_set']}", tenant["own_mapping_set"])) if yes]
        lines.append(f"  {tenant['id']}  every {tenant['poll_interval_seconds']}s"
                     + (f"  own: {', '.join(own)}" if own else ""))
    emit(as_json, document, lines)


@profiles.command("rename")
@click.argument("name")
@click.argument("new_name")
@json_option
@pass_context
def rename(context: CliContext, name: str, new_name: str, as_json: bool) -> None:
    """Call the profile NEW_NAME from now on; its tenants stay on it (audit rows already written keep the
    old name). Exit 2 when NAME is unknown or NEW_NAME taken."""
    from connector.store.profiles import get_profile, rename_profile

    with context.ledger.transaction() as session:
        rename_profile(session, get_profile(session, name, for_update=True), new_name)
    emit(as_json, {"profile": new_name, "was": name}, [f"profile {name} is now {new_name}"])


class ProfileInUse(ConfigurationError):
    """A profile with tenants on it is not removed unless they are detached."""


@profiles.command("remove")
@click.argument("name")
@click.option("--detach", is_flag=True,
              help="take its tenants off it first (as `tenants set --no-profile`: their own map, template and "
                   "cadence only)")
@click.option("--allow-unmatched-dimensions", is_flag=True,
              help="detach even when a tenant's own map and template would disagree (each printed as a warning)")
@json_option
@pass_context
def remove(context: CliContext, name: str, detach: bool, allow_unmatched_dimensions: bool, as_json: bool) -> None:
    """Remove the profile and every version of its map. Refused (exit 2, nothing changed) while tenants are
    on it, unless --detach: they leave it first, each checked like `tenants set --no-profile` (its own map
    and template must agree on dimensions), and the bills that re-opens are sent on at once. Bills keep the
    profile version they were mapped with, and the audit its name."""
    from connector.services.mappings import (
        TenantChange,
        leave_profile,
        refuse_unmatched_for,
        tenant_change_problems,
    )
    from connector.store.profiles import get_profile, remove_profile, tenants_on

    with context.ledger.transaction() as session:
        profile = get_profile(session, name, for_update=True)
        on_it = tenants_on(session, profile.id)
        if on_it and not detach:
            raise ProfileInUse([f"{len(on_it)} tenants are on profile {name} (connector profiles show {name}); "
                                f"move them with `connector tenants set --profile OTHER`, or pass --detach to take "
                                f"them off it (their own map, template and cadence only); nothing removed"])
        warnings = refuse_unmatched_for(tenant_change_problems(session, on_it, TenantChange(profile=None)),
                                        allowed=allow_unmatched_dimensions)
        reopened = leave_profile(session, on_it, why=f"the tenant's profile {name} was removed",
                                 actor=context.actor) if on_it else {}
        remove_profile(session, profile)
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    reopened = {tenant_id: n for tenant_id, n in reopened.items() if n}
    sent = context.send_reopened(reopened) if reopened else None
    emit(as_json, {"profile": name, "removed": True, "detached": on_it, "reopened": reopened, "sent": sent},
         [f"profile {name} removed" + (f"; {len(on_it)} tenants taken off it" if on_it else "")]
         + ([f"{sum(reopened.values())} bills re-opened in {len(reopened)} tenants: {sent}"] if sent else []))
