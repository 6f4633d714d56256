"""`connector auth …`: connect, import or re-authorise a Xero grant and choose the tenants to sync."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import click

from connector.cli.context import CliContext, emit, json_option, pass_context

if TYPE_CHECKING:
    from connector.secret import Secret
    from connector.xero.consent import Connection


@click.group()
def auth() -> None:
    """Xero grants: consent, import from another tool, re-authorisation."""


def _client_options(command: click.decorators.FC) -> click.decorators.FC:
    command = click.option("--client-secret", envvar="XERO_CLIENT_SECRET", prompt=True, hide_input=True,
                           help="the app's client secret (or XERO_CLIENT_SECRET)")(command)
    return click.option("--client-id", envvar="XERO_CLIENT_ID", required=True,
                        help="the app's client id (or XERO_CLIENT_ID)")(command)


def _tenant_options(command: click.decorators.FC) -> click.decorators.FC:
    command = click.option("--all-tenants", is_flag=True, help="sync every tenant the grant reaches")(command)
    return click.option("--tenant", "tenants", multiple=True, help="a tenant id to sync (repeatable)")(command)


@auth.command()
@_client_options
@click.option("--redirect-uri", default="http://localhost:8721/callback", show_default=True)
@click.option("--paste", is_flag=True, help="paste the redirected URL instead of listening for it")
@click.option("--grant", "grant_id", type=int, default=None, help="re-authorise this existing grant")
@_tenant_options
@pass_context
def connect(context: CliContext, client_id: str, client_secret: str, redirect_uri: str, paste: bool,
            grant_id: int | None, tenants: tuple[str, ...], all_tenants: bool) -> None:
    """Print the consent URL, take the redirect, and store the grant encrypted."""
    from connector.onboarding import add_grant
    from connector.secret import Secret
    from connector.store.grants import reauthorise
    from connector.xero.consent import Consent, list_connections, wait_for_redirect

    settings = context.settings
    consent = Consent(settings.xero, client_id, Secret(client_secret), redirect_uri,
                      timeout=settings.xero_timeout_seconds)
    click.echo(f"Open this URL and approve the connector:\n\n  {consent.url}\n")
    if paste:
        redirected = click.prompt("Paste the URL your browser was sent to")
    else:
        click.echo(f"Waiting for Xero to redirect to {redirect_uri} …")
        redirected = wait_for_redirect(redirect_uri)
    tokens = consent.complete(redirected)
    ledger, vault = context.ledger, context.vault
    if grant_id is not None:
        with ledger.transaction() as session:
            reauthorise(session, grant_id,
                        vault.encrypt(tokens.refresh_token.reveal()) if tokens.refresh_token else None)
        click.echo(f"grant {grant_id} re-authorised")
    else:
        grant_id = add_grant(ledger, vault, client_id=client_id, client_secret=Secret(client_secret),
                             refresh_token=tokens.refresh_token)
        click.echo(f"grant {grant_id} stored")
    _choose_tenants(context, grant_id, list_connections(settings.xero, tokens.access_token), tenants, all_tenants)


@auth.command("import")
@_client_options
@click.option("--refresh-token", envvar="XERO_REFRESH_TOKEN", prompt=True, hide_input=True,
              help="the grant's current refresh token (or XERO_REFRESH_TOKEN); it rotates on first use")
@_tenant_options
@pass_context
def import_grant(context: CliContext, client_id: str, client_secret: str, refresh_token: str,
                 tenants: tuple[str, ...], all_tenants: bool) -> None:
    """Adopt a grant another tool holds; its refresh token is rotated at once and kept only by us."""
    from connector.onboarding import add_grant
    from connector.secret import Secret
    from connector.xero.consent import list_connections

    grant_id = add_grant(context.ledger, context.vault, client_id=client_id, client_secret=Secret(client_secret),
                         refresh_token=Secret(refresh_token))
    access = _first_token_or_forget(context, grant_id)
    click.echo(f"grant {grant_id} imported and refreshed (the old refresh token no longer works elsewhere)")
    _choose_tenants(context, grant_id, list_connections(context.settings.xero, access), tenants, all_tenants)


@auth.command()
@_client_options
@_tenant_options
@pass_context
def custom(context: CliContext, client_id: str, client_secret: str, tenants: tuple[str, ...],
           all_tenants: bool) -> None:
    """A custom connection: client credentials, one organisation, no refresh token."""
    from connector.onboarding import add_grant
    from connector.secret import Secret
    from connector.xero.consent import list_connections

    grant_id = add_grant(context.ledger, context.vault, client_id=client_id, client_secret=Secret(client_secret),
                         refresh_token=None, kind="client_credentials")
    access = _first_token_or_forget(context, grant_id)
    _choose_tenants(context, grant_id, list_connections(context.settings.xero, access), tenants,
                    all_tenants or not tenants)


def _first_token_or_forget(context: CliContext, grant_id: int) -> Secret:
    """The grant's first access token; if Xero refuses it, the grant is removed again: a failed import
    stores nothing (it would otherwise warn on every tick)."""
    from connector.errors import ConnectorError
    from connector.store.inventory import remove_grant

    try:
        return context.services.tokens.access_token(grant_id, force_refresh=True)
    except ConnectorError:
        with context.ledger.transaction() as session:
            remove_grant(session, grant_id)
        raise


@auth.command("list")
@json_option
@pass_context
def list_grants(context: CliContext, as_json: bool) -> None:
    """Every grant: kind, app, status, last refresh, the tenants it syncs (never a token)."""
    from connector.store.inventory import grant_listings

    with context.ledger.transaction() as session:
        rows: list[dict[str, Any]] = [{"id": g.id, "kind": g.kind, "client_id": g.client_id, "status": g.status,
                 "refreshed_at": g.refreshed_at, "created_at": g.created_at, "tenants": g.tenant_ids}
                for g in grant_listings(session)]
    emit(as_json, rows, (f"{r['id']}  {r['kind']}  app={r['client_id']}  {r['status']}  refreshed="
                         f"{r['refreshed_at'] or 'never'}  tenants={','.join(r['tenants']) or '-'}" for r in rows))


@auth.command("remove")
@click.argument("grant_id", type=int)
@pass_context
def remove(context: CliContext, grant_id: int) -> None:
    """Remove a grant no tenant uses (a failed import, a replaced consent); refused while any does."""
    from connector.store.inventory import remove_grant

    with context.ledger.transaction() as session:
        remove_grant(session, grant_id)
    click.echo(f"grant {grant_id} removed")


def _choose_tenants(context: CliContext, grant_id: int, connections: list[Connection], chosen: tuple[str, ...],
                    all_tenants: bool) -> None:
    from connector.domain.tenants import TenantStatus
    from connector.onboarding import add_tenant
    from connector.store.tenants import adopt_grant

    click.echo("Tenants this grant reaches:")
    for connection in connections:
        click.echo(f"  {connection.tenant_id}  {connection.tenant_name} ({connection.tenant_type})")
    reachable = {c.tenant_id: c for c in connections}
    unknown = [t for t in chosen if t not in reachable]
    if unknown:
        raise click.BadParameter(f"not reachable with this grant: {', '.join(unknown)}", param_hint="--tenant")
    picked = list(reachable) if all_tenants else list(chosen)
    if not picked:
        click.echo("No tenant chosen: pass --tenant ID (repeatable) or --all-tenants to start syncing.")
        return
    with context.ledger.transaction() as session:
        existing = adopt_grant(session, picked, grant_id)
    for tenant_id in picked:
        if tenant_id in existing:
            if existing[tenant_id] == TenantStatus.PAUSED:
                click.echo(f"tenant {tenant_id} now uses grant {grant_id}; it stays PAUSED as an operator left it "
                           f"(`connector tenants set {tenant_id} --status ACTIVE` to start it again)")
            else:
                click.echo(f"tenant {tenant_id} now uses grant {grant_id} and is {existing[tenant_id]} again")
            continue
        name = reachable[tenant_id].tenant_name
        add_tenant(context.ledger, tenant_id=tenant_id, name=name, short_name=short_name(name), grant_id=grant_id,
                   sftp_target_id=None)
        click.echo(f"tenant {tenant_id} ({name}) will be synced; give it an SFTP target with `connector sftp add`")


def short_name(name: str) -> str:
    """A file-name-safe short form of an organisation name."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:20] or "tenant"
