"""`connector mappings …`: per-tenant mapping rules and maps, validated and versioned."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from connector.cli.context import (
    TENANT,
    CliContext,
    emit,
    json_option,
    pass_context,
    print_json,
    selected_tenants,
    tenant_selection,
)
from connector.errors import ConfigurationError

if TYPE_CHECKING:
    from connector.config.loader import MappingSetData

FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.group()
def mappings() -> None:
    """Mapping rules (YAML) and GL, tracking and vendor maps (CSV), versioned per tenant."""


@mappings.command("import")
@tenant_selection
@click.option("--profile", "profile_name", metavar="NAME",
              help="import into this profile's shared map instead: every tenant on it maps with it")
@click.option("--settings", "settings_file", type=FILE, help="tenant settings YAML (policies, tolerance, …)")
@click.option("--gl", type=FILE, help="CSV: xero_account_code,stampli_gl_code")
@click.option("--tracking", type=FILE, help="CSV: xero_category,xero_option,stampli_dimension,stampli_value")
@click.option("--vendors", type=FILE, help="CSV: xero_contact_id,stampli_vendor_code")
@click.option("--allow-unmatched-dimensions", is_flag=True,
              help="store it even when a mapped dimension has no template column, or a template column reads a "
                   "dimension nothing maps (each is printed as a warning)")
@click.option("--dry-run", is_flag=True,
              help="show which bills would change state and why (decided by the real mapping); store nothing")
@json_option
@pass_context
def import_(context: CliContext, tenant_ids: tuple[str, ...], all_tenants: bool, grant_ids: tuple[int, ...],
            profile_name: str | None, settings_file: Path | None, gl: Path | None, tracking: Path | None,
            vendors: Path | None, allow_unmatched_dimensions: bool, dry_run: bool, as_json: bool) -> None:
    """Validate the files (every problem named by file, row and column) and store a new version for each
    tenant selected (--tenant, repeatable; --all-tenants; --grant N), or for a profile (--profile NAME);
    files not given keep that part of each one's own set.

    A tenant on a profile maps with the profile's set under its own: each GL code, tracking (category,
    option) row, vendor and setting it maps itself wins, every other is the profile's. So a tenant's import
    holds only what it does differently, and a profile's reaches every tenant on it at once.

    The tracking map each tenant would use must name the dimensions its template reads: refused otherwise
    (exit 2, nothing stored), since the values of a dimension no column reads would vanish from every file.
    Files made by `mappings draft` import as they are: rows whose Stampli columns are still empty are not
    mapped. With --json: one document for one tenant or a profile, a list for several tenants."""
    from connector.config.loader import MappingSetData, load_mapping_set

    if not any((settings_file, gl, tracking, vendors)):
        raise click.UsageError("give at least one of --settings, --gl, --tracking, --vendors")
    if profile_name is not None and (tenant_ids or all_tenants or grant_ids):
        raise click.UsageError("--profile imports the profile's own map: give it without a tenant selection")
    files = load_mapping_set(settings_file, gl, tracking, vendors)  # read and checked once, for every tenant

    def onto(base: MappingSetData) -> MappingSetData:
        """The files given replace those parts of `base`; the others stay."""
        return MappingSetData(settings=files.settings if settings_file else base.settings,
                              gl=files.gl if gl else base.gl, tracking=files.tracking if tracking else base.tracking,
                              vendors=files.vendors if vendors else base.vendors).with_masks_of(base)

    if profile_name is not None:
        _import_for_profile(context, profile_name, onto, allow_unmatched_dimensions, dry_run, as_json)
        return
    _import_for_tenants(context, selected_tenants(tenant_ids, all_tenants, grant_ids), onto,
                        allow_unmatched_dimensions, dry_run, as_json)


def _import_for_tenants(context: CliContext, chosen: list[str], onto: Callable[[MappingSetData], MappingSetData],
                        allow_unmatched_dimensions: bool, dry_run: bool, as_json: bool,
                        extra: dict[str, Any] | None = None) -> None:
    """A new version of each chosen tenant's own set (`onto` its set in force), each checked against the
    tenant's template first (refused for one: nothing stored), and the bills it re-opens sent on at once."""
    from connector.services import mappings as service
    from connector.services.mappings import refuse_unmatched_for, unmatched_dimensions
    from connector.services.profiles import combine, tenant_maps

    planned = {}
    with context.ledger.transaction() as session:
        for tenant, view in tenant_maps(session, chosen).items():
            data = onto(view.own)
            planned[tenant] = (data, unmatched_dimensions(session, tenant, data=combine(data, view.shared),
                                                          template=view.template()))
    if dry_run:
        _emit_all(as_json, [_show_dry_run(context, tenant, data, problems) for tenant, (data, problems) in
                            planned.items()])
        return
    for warning in refuse_unmatched_for({tenant: problems for tenant, (_, problems) in planned.items()},
                                        allowed=allow_unmatched_dimensions):  # refused for one: nothing stored
        click.echo(f"warning: {warning}", err=True)
    reports, reopened_in = [], []
    # the files laid onto each tenant's set as it is when stored (its row held): an import that landed
    # meanwhile is kept; many tenants in one transaction and a few queries, whatever their number
    if len(planned) == 1:
        [only] = planned
        results = {only: service.import_tenant_mapping_set(context.ledger, only, onto, actor=context.actor,
                                                           allow_unmatched=allow_unmatched_dimensions)}
    else:
        results = service.import_many_tenant_mapping_sets(context.ledger, list(planned), onto, actor=context.actor,
                                                          allow_unmatched=allow_unmatched_dimensions)
    for tenant, (_, problems) in planned.items():
        version, reopened, data = results[tenant].version, results[tenant].reopened, results[tenant].data
        if reopened:
            reopened_in.append(tenant)
        reports.append(({**(extra or {}), "tenant_id": tenant, "stored": True, "version": version,
                         "gl_codes": len(data.gl),
                         "tracking_rows": len(data.tracking), "vendors": len(data.vendors), "reopened": reopened,
                         "sent": None, "dimension_warnings": problems},
                        [f"tenant {tenant}: mapping set {version} stored ({len(data.gl)} GL codes, "
                         f"{len(data.tracking)} tracking rows, {len(data.vendors)} vendors); {reopened} bills "
                         f"re-opened"]))
    if reopened_in:
        sent = context.send_reopened(reopened_in)
        for document, lines in reports:
            if document["reopened"]:
                document["sent"] = sent
                lines.append(f"tenant {document['tenant_id']}: {sent}")
    _emit_all(as_json, reports)


def _import_for_profile(context: CliContext, name: str, onto: Callable[[MappingSetData], MappingSetData],
                        allowed: bool, dry_run: bool, as_json: bool, extra: dict[str, Any] | None = None) -> None:
    """`mappings import --profile NAME`: one new version of the profile's set, checked against the map and
    template every tenant on it would then use, and the bills it re-opens sent on at once."""
    from connector.config.loader import MappingSetData
    from connector.services import mappings as service
    from connector.services.mappings import dry_run_profile_import, profile_import_problems, refuse_unmatched_for
    from connector.store.profiles import get_profile, profile_mapping_set_in_force

    if dry_run:
        with context.ledger.transaction() as session:
            profile = get_profile(session, name)
            row = profile_mapping_set_in_force(session, profile.id)
            data = onto(MappingSetData.from_json(row.data) if row else MappingSetData())
            problems = profile_import_problems(session, profile, data)
        runs = dry_run_profile_import(context.ledger, name, data, actor=context.actor)
        shown = [_dry_run_report(tenant, run, problems.get(tenant, [])) for tenant, run in runs.items()]
        version = next(iter(runs.values())).version if runs else (row.version + 1 if row else 1)
        emit(as_json, {"profile": name, "stored": False, "version": version, "tenants": [d for d, _ in shown]},
             [f"profile {name}: dry run, nothing stored: mapping set {version} for {len(runs)} tenants"]
             + [line for _, lines in shown for line in lines])
        return
    # the files laid onto the profile's set as it is when stored (its row held): an import that landed
    # meanwhile is kept, and each tenant's map is checked against what is stored
    result = service.import_profile_mapping_set(context.ledger, name, onto, actor=context.actor,
                                                allow_unmatched=allowed)
    data, problems = result.data, result.warnings
    for warning in refuse_unmatched_for(problems, allowed=True):
        click.echo(f"warning: {warning}", err=True)
    reopened_in = [tenant for tenant, n in result.reopened.items() if n]
    sent = context.send_reopened(reopened_in) if reopened_in else None
    total = sum(result.reopened.values())
    emit(as_json, {**(extra or {}), "profile": name, "stored": True, "version": result.version,
                   "gl_codes": len(data.gl),
                   "tracking_rows": len(data.tracking), "vendors": len(data.vendors),
                   "tenants": len(result.reopened), "reopened": total,
                   "reopened_by_tenant": {t: n for t, n in result.reopened.items() if n}, "sent": sent,
                   "dimension_warnings": problems},
         [f"profile {name}: mapping set {result.version} stored ({len(data.gl)} GL codes, {len(data.tracking)} "
          f"tracking rows, {len(data.vendors)} vendors) for {len(result.reopened)} tenants; {total} bills re-opened "
          f"in {len(reopened_in)} tenants"] + ([f"profile {name}: {sent}"] if sent else []))


def _emit_all(as_json: bool, reports: list[tuple[dict[str, Any], list[str]]]) -> None:
    """One tenant's document as it is, several as a list; the human lines one tenant after another."""
    documents = [document for document, _ in reports]
    emit(as_json, documents[0] if len(documents) == 1 else documents,
         [line for _, lines in reports for line in lines])


def _show_dry_run(context: CliContext, tenant: str, data: Any,
                  problems: list[str]) -> tuple[dict[str, Any], list[str]]:
    from connector.services.mappings import dry_run_import

    return _dry_run_report(tenant, dry_run_import(context.ledger, tenant, data, actor=context.actor), problems)


def _dry_run_report(tenant: str, run: Any, problems: list[str]) -> tuple[dict[str, Any], list[str]]:
    document = {"tenant_id": tenant, "stored": False, "version": run.version, "mapped_again": run.mapped_again,
                "dimension_problems": problems, "bills": [change.as_json() for change in run.changes]}
    lines = [f"tenant {tenant}: dry run, nothing stored: mapping set {run.version} would send {run.mapped_again} "
             f"bills to be mapped again; {len(run.changes)} would change"]
    lines += [f"  would be refused: {problem}" for problem in problems]
    for change in run.changes:
        lines.append(f"  {change.invoice_number or change.invoice_id} ({change.invoice_id}): "
                     f"{change.from_state} -> {change.to_state}")
        lines += [f"      was: {why}" for why in change.was] + [f"      now: {why}" for why in change.now]
    return document, lines


@mappings.command("draft")
@click.option("--tenant", default=None, type=TENANT)
@click.option("--profile", "profile_name", default=None, metavar="NAME",
              help="a draft of the profile's map: the codes of every tenant on it, filled from the profile's map")
@click.option("--out", "folder", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="folder for gl.csv and tracking.csv (created; existing files are never overwritten)")
@pass_context
def draft(context: CliContext, tenant: str | None, profile_name: str | None, folder: Path) -> None:
    """Starter gl.csv and tracking.csv from the tenant's chart of accounts and tracking options as Xero last
    listed them: codes, names and status, with the Stampli columns to fill in (already filled where the
    map in force gives a value). Fill in what to map, then `mappings import` them as they are.

    With --profile NAME instead: every code and option of every tenant on the profile (each once), filled
    from the profile's map only; import it with `--profile NAME`."""
    from connector.services.mapping_drafts import draft_mapping_files, draft_profile_files

    if (tenant is None) == (profile_name is None):
        raise click.UsageError("give --tenant ID or --profile NAME")
    written = draft_mapping_files(context.ledger, tenant, folder) if tenant is not None \
        else draft_profile_files(context.ledger, str(profile_name), folder)
    for name, rows in written.items():
        click.echo(f"{folder / name}: {rows} rows")
    whom = f"--tenant {tenant}" if tenant is not None else f"--profile {profile_name}"
    if tenant is not None:
        from connector.services.mappings import effective

        with context.ledger.transaction() as session:
            shared = effective(session, tenant).profile_name
        if shared is not None:
            click.echo(f"note: tenant {tenant} is on profile {shared}: this draft is filled from its map in force, the "
                       f"profile's entries too; imported with --tenant, every filled row becomes the tenant's own "
                       f"(it stops following the profile's). For the shared map: --profile {shared}", err=True)
    click.echo(f"fill in the stampli_ columns, then: connector mappings import {whom} "
               f"--gl {folder / 'gl.csv'} --tracking {folder / 'tracking.csv'} --dry-run")


@mappings.command("show")
@click.option("--tenant", default=None, type=TENANT)
@click.option("--profile", "profile_name", default=None, metavar="NAME", help="the profile's own set")
@click.option("--own", is_flag=True, help="the tenant's own set only, without its profile's entries")
@click.option("--json", "as_json", is_flag=True, default=True, hidden=True)  # always JSON: the maps are data
@pass_context
def show(context: CliContext, tenant: str | None, profile_name: str | None, own: bool, as_json: bool) -> None:
    """The mapping set in force, as JSON: a tenant's (its own entries over its profile's, with the version
    of each: `version` is the tenant's own, `profile` names the profile and its version), the tenant's own
    only (--own), or a profile's (--profile NAME)."""
    from connector.config.loader import MappingSetData
    from connector.services.mappings import current, effective
    from connector.store.profiles import get_profile, profile_mapping_set_in_force

    if (tenant is None) == (profile_name is None):
        raise click.UsageError("give --tenant ID or --profile NAME")
    with context.ledger.transaction() as session:
        if profile_name is not None:
            profile = get_profile(session, profile_name)
            row = profile_mapping_set_in_force(session, profile.id)
            data = MappingSetData.from_json(row.data) if row else MappingSetData()
            print_json({"profile": profile_name, "version": row.version if row else 0, **data.as_json()})
            return
        assert tenant is not None
        if own:
            version, mine = current(session, tenant)
            print_json({"version": version, **mine.as_json()})
            return
        print_json(effective(session, tenant).as_json())


@mappings.command("unset")
@tenant_selection
@click.option("--profile", "profile_name", metavar="NAME", help="drop entries of this profile's shared map instead")
@click.option("--gl", "gl_codes", multiple=True, metavar="CODE", help="a Xero account code (repeatable)")
@click.option("--tracking", "tracking_rows", multiple=True, nargs=2, metavar="CATEGORY OPTION",
              help="a tracking row, by its category and option as written in the map (repeatable)")
@click.option("--vendor", "vendor_ids", multiple=True, metavar="CONTACT_ID", help="a Xero contact id (repeatable)")
@click.option("--setting", "setting_names", multiple=True, metavar="NAME", help="a setting, e.g. policies (repeatable)")
@click.option("--allow-unmatched-dimensions", is_flag=True,
              help="store it even when the tracking map left and a template disagree (each printed as a warning)")
@json_option
@pass_context
def unset(context: CliContext, tenant_ids: tuple[str, ...], all_tenants: bool, grant_ids: tuple[int, ...],
          profile_name: str | None, gl_codes: tuple[str, ...], tracking_rows: tuple[tuple[str, str], ...],
          vendor_ids: tuple[str, ...], setting_names: tuple[str, ...], allow_unmatched_dimensions: bool,
          as_json: bool) -> None:
    """Drop entries from each selected tenant's own map (--tenant, repeatable; --all-tenants; --grant N),
    stored as its next version: a tenant on a profile then uses the profile's entry again (an override
    undone), one on none has the entry unmapped. With --profile NAME, drop them from the profile's map, for
    every tenant on it. Every entry named must be in each map it is dropped from: refused otherwise (exit
    2, nothing stored), naming the tenant and the entry. Checked against the templates like an import."""
    from connector.config.loader import Entries, MappingSetData
    from connector.services.profiles import tenant_maps

    entries = Entries(gl=gl_codes, tracking=tuple((c, o) for c, o in tracking_rows), vendors=vendor_ids,
                      settings=setting_names)
    if not entries:
        raise click.UsageError("name at least one entry: --gl, --tracking, --vendor or --setting")
    if profile_name is not None and (tenant_ids or all_tenants or grant_ids):
        raise click.UsageError("--profile drops from the profile's own map: give it without a tenant selection")
    extra = {"dropped": entries.as_json()}
    if profile_name is not None:
        _import_for_profile(context, profile_name, _dropping(entries, f"profile {profile_name}: its map"),
                            allow_unmatched_dimensions, False, as_json, extra)
        return
    chosen = selected_tenants(tenant_ids, all_tenants, grant_ids)
    problems = []
    with context.ledger.transaction() as session:
        for tenant, view in tenant_maps(session, chosen).items():
            shared = view.shared or MappingSetData()
            for entry, theirs in zip(_each_lacking(view.own, entries), _each_lacking(shared, entries), strict=True):
                if entry is None:
                    continue
                where = (f" (it is its profile's: drop it there with `connector mappings unset --profile "
                         f"{view.profile.name}`)") if view.profile is not None and theirs is None else ""
                problems.append(f"tenant {tenant}: its own map has no {entry}{where}")
    if problems:
        raise ConfigurationError([*problems, "nothing stored"])
    _import_for_tenants(context, chosen, _dropping(entries, "its own map"), allow_unmatched_dimensions, False,
                        as_json, extra)


def _each_lacking(data: MappingSetData, entries: Any) -> list[str | None]:
    """For each entry in `entries`, in order: what `data` lacks of it, None where it has it."""
    from connector.config.loader import Entries

    found: list[str | None] = []
    for part in ("gl", "tracking", "vendors", "settings"):
        for each in getattr(entries, part):
            lacking = data.lacking(Entries(**{part: (each,)}))
            found.append(lacking[0] if lacking else None)
    return found


def _dropping(entries: Any, whose: str) -> Callable[[MappingSetData], MappingSetData]:
    """What `mappings unset` stores: the set in force when stored, without the entries (refused if one is gone
    meanwhile)."""

    def onto(base: MappingSetData) -> MappingSetData:
        if lacking := base.lacking(entries):
            raise ConfigurationError([f"{whose} has no {entry}" for entry in lacking] + ["nothing stored"])
        return base.without(entries)

    return onto


@mappings.command("mask")
@tenant_selection
@click.option("--gl", "gl_codes", multiple=True, metavar="CODE", help="a Xero account code (repeatable)")
@click.option("--tracking", "tracking_rows", multiple=True, nargs=2, metavar="CATEGORY OPTION",
              help="a tracking row, by its category and option as written in the profile's map (repeatable)")
@click.option("--vendor", "vendor_ids", multiple=True, metavar="CONTACT_ID", help="a Xero contact id (repeatable)")
@click.option("--allow-unmatched-dimensions", is_flag=True,
              help="store it even when the tracking map left and a template disagree (each printed as a warning)")
@json_option
@pass_context
def mask(context: CliContext, tenant_ids: tuple[str, ...], all_tenants: bool, grant_ids: tuple[int, ...],
         gl_codes: tuple[str, ...], tracking_rows: tuple[tuple[str, str], ...], vendor_ids: tuple[str, ...],
         allow_unmatched_dimensions: bool, as_json: bool) -> None:
    """Leave entries of their profile's map unmapped for the selected tenants (--tenant, repeatable;
    --all-tenants; --grant N): a bill on a masked GL code holds as unmapped, as if the profile did not map
    it, for these tenants only and through every later version of the profile, until `mappings unset`
    lifts the mask. Stored as each tenant's next version (its own value for the entry is dropped too).
    Refused (exit 2, nothing stored) for a tenant on no profile, or an entry its profile does not map."""
    from connector.config.loader import Entries
    from connector.services.profiles import tenant_maps

    entries = Entries(gl=gl_codes, tracking=tuple((c, o) for c, o in tracking_rows), vendors=vendor_ids)
    if not entries:
        raise click.UsageError("name at least one entry: --gl, --tracking or --vendor")
    chosen = selected_tenants(tenant_ids, all_tenants, grant_ids)
    problems = []
    with context.ledger.transaction() as session:
        for tenant, view in tenant_maps(session, chosen).items():
            if view.profile is None or view.shared is None:
                problems.append(f"tenant {tenant} is on no profile: nothing to mask (drop its own entries with "
                                "`connector mappings unset`)")
                continue
            problems += [f"tenant {tenant}: its profile {view.profile.name} maps no {entry}"
                         for entry in view.shared.lacking(entries)]
    if problems:
        raise ConfigurationError([*problems, "nothing stored"])
    masked = {part: values for part, values in entries.as_json().items() if part != "settings"}
    _import_for_tenants(context, chosen, lambda base: base.masking(entries), allow_unmatched_dimensions, False,
                        as_json, {"masked": masked})
