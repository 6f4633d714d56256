"""`connector sftp …` and `connector tenants …`: delivery targets and per-tenant cadence."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from connector.crypto import Vault
from connector.domain.tenants import TenantStatus
from connector.onboarding import add_sftp_target
from connector.secret import Secret
from connector.services.holds import reopen_held
from connector.settings import load_settings
from connector.sftp.target import SftpTarget, fingerprint
from connector.stampli import load_template
from connector.store.db import Ledger
from connector.store.polls import unpark_polls
from connector.store.tenants import (
    NoSuchTenant,
    change_settings,
    deliver_to,
    require_tenants,
    tenants_with_grant_status,
)


@click.group()
def sftp() -> None:
    """Stampli SFTP import folders."""


@sftp.command("add")
@click.option("--host", required=True)
@click.option("--port", type=int, default=22, show_default=True)
@click.option("--user", "username", required=True)
@click.option("--import-dir", required=True, help="Stampli's import folder on the server")
@click.option("--host-key", required=True, help='the pinned public host key, "ssh-ed25519 AAAA…"')
@click.option("--password-stdin", is_flag=True, help="read the password from standard input")
@click.option("--private-key-file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--tenant", "tenants", multiple=True, help="deliver this tenant's files here (repeatable)")
def add(host: str, port: int, username: str, import_dir: str, host_key: str, password_stdin: bool,
        private_key_file: Path | None, tenants: tuple[str, ...]) -> None:
    """Store a target (credentials encrypted, host key pinned) and point tenants at it."""
    password = Secret(sys.stdin.readline().rstrip("\n")) if password_stdin else None
    key = Secret(private_key_file.read_text()) if private_key_file else None
    SftpTarget(host=host, port=port, username=username, import_dir=import_dir, host_key=host_key,
               password=password, private_key=key)  # validates every field at once
    settings = load_settings()
    ledger = Ledger.connect(settings.database_url)
    try:
        with ledger.transaction() as session:
            require_tenants(session, tenants)
    except NoSuchTenant as unknown:
        raise click.BadParameter(str(unknown), param_hint="--tenant") from None
    target_id = add_sftp_target(ledger, Vault(settings.fernet_keys), host=host, port=port, username=username,
                                import_dir=import_dir, host_key=host_key, password=password, private_key=key)
    with ledger.transaction() as session:
        deliver_to(session, tenants, target_id)
    click.echo(f"SFTP target {target_id}: {username}@{host}:{port}{import_dir}, host key {fingerprint(host_key)}")


@click.group()
def tenants() -> None:
    """The Xero tenants being synced."""


@tenants.command("list")
def list_tenants() -> None:
    ledger = Ledger.connect(load_settings().database_url)
    with ledger.transaction() as session:
        for tenant, grant_status in tenants_with_grant_status(session):
            click.echo(f"{tenant.id}  {tenant.name!r}  status={tenant.status}  grant={tenant.grant_id}"
                       f"({grant_status})  every {tenant.poll_interval_seconds}s  sftp={tenant.sftp_target_id}")


@tenants.command("set")
@click.argument("tenant_id")
@click.option("--interval", type=click.IntRange(min=60), help="seconds between polls")
@click.option("--max-bills-per-file", type=click.IntRange(min=1))
@click.option("--status", type=click.Choice(["ACTIVE", "PAUSED"]))
@click.option("--template", "template_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="the customer's Stampli template (YAML); validated before it is stored")
@click.option("--default-template", is_flag=True, help="go back to our default CSV template")
def set_tenant(tenant_id: str, interval: int | None, max_bills_per_file: int | None, status: str | None,
               template_file: Path | None, default_template: bool) -> None:
    template = None
    if template_file is not None:
        load_template(template_file)  # every problem named by file and field, before anything is stored
        template = template_file.read_text(encoding="utf-8")
    ledger = Ledger.connect(load_settings().database_url)
    with ledger.transaction() as session:
        change_settings(session, tenant_id, poll_interval_seconds=interval, max_bills_per_file=max_bills_per_file,
                        status=status, template=template, default_template=default_template)
        if template_file is not None or default_template:
            reopen_held(session, tenant_id, {"unrenderable"}, why="the tenant's template changed", actor="cli")
        if status == TenantStatus.ACTIVE and unpark_polls(session, tenant_id):
            click.echo(f"tenant {tenant_id}: parked polls cleared; it is polled at the next tick")
    click.echo(f"tenant {tenant_id} updated")
