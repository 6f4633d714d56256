"""`connector sftp …`: Stampli SFTP import folders (credentials encrypted, host key pinned), checked
before they are stored."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from connector.cli.context import CliContext, emit, json_option, pass_context, selected_tenants, tenant_selection
from connector.errors import PermanentError

if TYPE_CHECKING:
    from connector.secret import Secret


class TargetUnverified(PermanentError):
    """The target failed its check; nothing was stored."""


@click.group()
def sftp() -> None:
    """Stampli SFTP import folders."""


def _credentials(password_stdin: bool, private_key_file: Path | None) -> tuple[Secret | None, Secret | None]:
    from connector.secret import Secret

    password = Secret(sys.stdin.readline().rstrip("\n")) if password_stdin else None
    key = Secret(private_key_file.read_text()) if private_key_file else None
    return password, key


def _verify(context: CliContext, target: Any, unverified: bool) -> None:
    """Connect before storing; a failure refuses (exit 3) unless --unverified, then it warns loudly."""
    from connector.services.checks import check_sftp

    result = check_sftp(target, "sftp target")
    if result.ok:
        click.echo(result.line())
        return
    if not unverified:
        raise TargetUnverified(f"{result.detail}; nothing stored (fix it, or pass --unverified to store it anyway)")
    click.echo(f"WARNING: stored UNVERIFIED, files will fail until this is fixed: {result.detail}", err=True)


@sftp.command("add")
@click.option("--host", required=True)
@click.option("--port", type=int, default=22, show_default=True)
@click.option("--user", "username", required=True)
@click.option("--import-dir", required=True, help="Stampli's import folder on the server")
@click.option("--host-key", required=True, help='the pinned public host key, "ssh-ed25519 AAAA…"')
@click.option("--password-stdin", is_flag=True, help="read the password from standard input")
@click.option("--private-key-file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@tenant_selection
@click.option("--unverified", is_flag=True, help="store it even if the connection check fails (with a warning)")
@pass_context
def add(context: CliContext, host: str, port: int, username: str, import_dir: str, host_key: str,
        password_stdin: bool, private_key_file: Path | None, tenant_ids: tuple[str, ...], all_tenants: bool,
        grant_ids: tuple[int, ...], unverified: bool) -> None:
    """Check the target (connect, host key, login, folder writable), then store it (credentials encrypted,
    host key pinned) and point the tenants selected at it (--tenant, repeatable; --all-tenants; --grant N):
    each is checked first, an unknown one stores nothing (exit 2)."""
    from connector.onboarding import add_sftp_target
    from connector.sftp.target import SftpTarget, fingerprint
    from connector.store.tenants import deliver_to

    chosen = selected_tenants(tenant_ids, all_tenants, grant_ids, required=False)
    password, key = _credentials(password_stdin, private_key_file)
    target = SftpTarget(host=host, port=port, username=username, import_dir=import_dir, host_key=host_key,
                        password=password, private_key=key,
                        timeout=context.settings.sftp_timeout_seconds)  # validates every field at once
    _verify(context, target, unverified)
    target_id = add_sftp_target(context.ledger, context.vault, host=host, port=port, username=username,
                                import_dir=import_dir, host_key=host_key, password=password, private_key=key)
    with context.ledger.transaction() as session:
        deliver_to(session, chosen, target_id)
    click.echo(f"SFTP target {target_id}: {username}@{host}:{port}{import_dir}, host key {fingerprint(host_key)}")


@sftp.command("list")
@json_option
@pass_context
def list_targets(context: CliContext, as_json: bool) -> None:
    """Every target with the tenants whose files it receives (never its credentials)."""
    from connector.sftp.target import fingerprint
    from connector.store.inventory import target_listings

    with context.ledger.transaction() as session:
        rows: list[dict[str, Any]] = [
            {"id": t.id, "host": t.host, "port": t.port, "user": t.username, "import_dir": t.import_dir,
             "host_key_fingerprint": fingerprint(t.host_key), "auth": t.auth, "tenants": t.tenant_ids}
            for t in target_listings(session)]
    emit(as_json, rows, (f"{r['id']}  {r['user']}@{r['host']}:{r['port']}{r['import_dir']}  "
                         f"{r['host_key_fingerprint']}  auth={r['auth']}  tenants={','.join(r['tenants']) or '-'}"
                         for r in rows))


@sftp.command("set")
@click.argument("target_id", type=int)
@click.option("--host")
@click.option("--port", type=int)
@click.option("--user", "username")
@click.option("--import-dir")
@click.option("--host-key", help="a new pinned host key (the server's key changed)")
@click.option("--password-stdin", is_flag=True, help="read a new password from standard input")
@click.option("--private-key-file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@tenant_selection
@click.option("--unverified", is_flag=True, help="store the change even if the connection check fails")
@pass_context
def set_target(context: CliContext, target_id: int, host: str | None, port: int | None, username: str | None,
               import_dir: str | None, host_key: str | None, password_stdin: bool, private_key_file: Path | None,
               tenant_ids: tuple[str, ...], all_tenants: bool, grant_ids: tuple[int, ...], unverified: bool) -> None:
    """Change a target in place (checked first, like `add`); the tenants that use it keep using it, and
    the tenants selected (--tenant, repeatable; --all-tenants; --grant N) deliver here too."""
    import dataclasses

    from connector.services.checks import stored_target
    from connector.store.inventory import change_sftp_target
    from connector.store.tenants import deliver_to

    chosen = selected_tenants(tenant_ids, all_tenants, grant_ids, required=False)
    password, key = _credentials(password_stdin, private_key_file)
    current = stored_target(context.services, target_id)
    changes: dict[str, Any] = {name: value for name, value in (("host", host), ("port", port), ("username", username),
                                               ("import_dir", import_dir), ("host_key", host_key)) if value is not None}
    if password is not None:
        changes.update(password=password, private_key=None)
    if key is not None:
        changes.update(private_key=key, password=None)
    if changes:
        _verify(context, dataclasses.replace(current, **changes), unverified)
    vault = context.vault
    with context.ledger.transaction() as session:
        change_sftp_target(session, target_id, host=host, port=port, username=username, import_dir=import_dir,
                           host_key=host_key, password_enc=vault.encrypt(password.reveal()) if password else None,
                           private_key_enc=vault.encrypt(key.reveal()) if key else None)
        deliver_to(session, chosen, target_id)
    click.echo(f"SFTP target {target_id} updated" + (f"; {len(chosen)} tenants deliver here" if chosen else ""))


@sftp.command("remove")
@click.argument("target_id", type=int)
@pass_context
def remove_target(context: CliContext, target_id: int) -> None:
    """Remove a target no tenant uses (refused, naming them, while any does)."""
    from connector.store.inventory import remove_sftp_target

    with context.ledger.transaction() as session:
        remove_sftp_target(session, target_id)
    click.echo(f"SFTP target {target_id} removed")
