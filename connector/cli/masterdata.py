"""`connector masterdata …`: vendors, GL accounts, dimension values and purchase orders sent to Stampli as
files of their own: which kinds a tenant sends and in which template, a full file on request, and the
audit of one record."""

from __future__ import annotations

from pathlib import Path
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
from connector.domain.masterdata import MASTER_KINDS

#: The kinds by name, in the order their files go (one list: the domain's).
KINDS = tuple(kind.value for kind in MASTER_KINDS)
KIND = click.Choice(KINDS)


@click.group()
def masterdata() -> None:
    """Master data sent to Stampli: vendors, GL accounts, dimension values, purchase orders."""


@masterdata.command("set")
@click.argument("positional_ids", nargs=-1, metavar="[TENANT_ID]...")
@tenant_selection
@click.option("--on", "turn_on", multiple=True, type=click.Choice((*KINDS, "all")),
              help="send this kind (repeatable; 'all' for every kind, less those given to --off)")
@click.option("--off", "turn_off", multiple=True, type=click.Choice((*KINDS, "all")),
              help="stop sending this kind (repeatable; 'all' for every kind)")
@click.option("--template", "templates", multiple=True, metavar="KIND=FILE",
              help="the customer's Stampli template for a kind (YAML, its `record:` the kind); validated first")
@click.option("--default-template", "defaults", multiple=True, type=KIND, help="go back to our default for a kind")
@pass_context
def set_kinds(context: CliContext, positional_ids: tuple[str, ...], tenant_ids: tuple[str, ...], all_tenants: bool,
              grant_ids: tuple[int, ...], turn_on: tuple[str, ...], turn_off: tuple[str, ...],
              templates: tuple[str, ...], defaults: tuple[str, ...]) -> None:
    """Which master-data kinds tenants send, and in which template. A kind turned on sends a full file at
    once (its first), then only what is new or changed; every template is checked before anything is stored."""
    from connector.domain.masterdata import Kind
    from connector.errors import ConfigurationError
    from connector.services.messages import AssembleBatch, Message
    from connector.stampli import load_template
    from connector.store.masterdata import set_kind
    from connector.store.tenants import load_tenants

    chosen = selected_tenants(positional_ids + tenant_ids, all_tenants, grant_ids)
    if set(turn_on) & set(turn_off):
        raise click.UsageError(f"both --on and --off for {', '.join(sorted(set(turn_on) & set(turn_off)))}")
    off = set(KINDS) if "all" in turn_off else set(turn_off)
    on = (set(KINDS) if "all" in turn_on else set(turn_on)) - (off if "all" in turn_on else set())
    texts: dict[str, str] = {}
    for given in templates:
        kind, _, file_name = given.partition("=")
        if kind not in KINDS or not file_name:
            raise click.UsageError(f"--template {given!r}: give KIND=FILE, KIND one of {', '.join(KINDS)}")
        loaded = load_template(Path(file_name))
        if loaded.record != kind:
            raise ConfigurationError([f"{file_name}: record: is {loaded.record!r}, so it cannot be the {kind} "
                                      f"template (set `record: {kind}` in it)"])
        texts[kind] = Path(file_name).read_text(encoding="utf-8")
    with context.ledger.transaction() as session:
        load_tenants(session, chosen)
        for tenant_id in chosen:
            for kind in KINDS:
                enabled = True if kind in on else False if kind in off else None
                if enabled is None and kind not in texts and kind not in defaults:
                    continue
                set_kind(session, tenant_id, Kind(kind), enabled=enabled, template=texts.get(kind),
                         default_template=kind in defaults)
    for tenant_id in chosen:
        click.echo(f"tenant {tenant_id} updated")
    if on:
        messages: list[Message] = [AssembleBatch(t) for t in chosen]
        click.echo(f"first files: {context.send_now(messages)}")


@masterdata.command("resend")
@click.option("--kind", required=True, type=KIND, help="the kind to send in full")
@tenant_selection
@pass_context
def resend(context: CliContext, kind: str, tenant_ids: tuple[str, ...], all_tenants: bool,
           grant_ids: tuple[int, ...]) -> None:
    """A full file of the kind (every record, changed or not), through the same delivery as any file: for
    each tenant named (--tenant, repeatable), each tenant that sends the kind among those reached by
    --all-tenants or --grant N, or by default every tenant that sends the kind."""
    from connector.domain.masterdata import Kind
    from connector.services.masterdata import resend as full_files
    from connector.store.masterdata import tenants_sending

    selected = selected_tenants(tenant_ids, all_tenants, grant_ids, required=False)
    with context.ledger.transaction() as session:
        sending = tenants_sending(session, Kind(kind))
    named = set(tenant_ids)
    chosen = [t for t in selected if t in named or t in sending] if selected else sending
    if not chosen:
        raise click.UsageError(f"no tenant sends {kind}: name one with --tenant")
    messages = full_files(context.services, Kind(kind), chosen, actor=context.actor)
    click.echo(f"{len(messages)} full {kind} file(s) made for {len(chosen)} tenant(s); {context.send_now(messages)}")


@masterdata.command("history")
@click.option("--tenant", required=True, type=TENANT)
@click.option("--kind", required=True, type=KIND)
@click.option("--key", required=True, help="the record's Xero id (ContactID, AccountID, TrackingOptionID, "
                                           "PurchaseOrderID)")
@json_option
@pass_context
def history(context: CliContext, tenant: str, kind: str, key: str, as_json: bool) -> None:
    """Every file a record was put in, and how each ended (the audit, oldest first)."""
    from connector.domain.masterdata import Kind
    from connector.store.masterdata import history as rows

    with context.ledger.transaction() as session:
        found: list[dict[str, Any]] = [
            {"at": r.at, "state": r.to_state, "file": r.file_name, "fingerprint": r.fingerprint, "actor": r.actor,
             "reason": r.reason} for r in rows(session, tenant, Kind(kind), key)]
    emit(as_json, found, (f"{r['at']:%Y-%m-%d %H:%M:%S} {r['state']:<10} {r['file']}"
                          f"{' (' + str(r['reason']) + ')' if r['reason'] else ''}" for r in found))
