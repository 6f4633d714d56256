"""`connector sftp …`: Stampli SFTP import folders (credentials encrypted, host key pinned)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from connector.cli.context import TENANT, CliContext, pass_context


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
@click.option("--tenant", "tenant_ids", type=TENANT, multiple=True,
              help="deliver this tenant's files here (repeatable)")
@pass_context
def add(context: CliContext, host: str, port: int, username: str, import_dir: str, host_key: str,
        password_stdin: bool, private_key_file: Path | None, tenant_ids: tuple[str, ...]) -> None:
    """Store a target (credentials encrypted, host key pinned) and point tenants at it."""
    from connector.onboarding import add_sftp_target
    from connector.secret import Secret
    from connector.sftp.target import SftpTarget, fingerprint
    from connector.store.tenants import deliver_to

    password = Secret(sys.stdin.readline().rstrip("\n")) if password_stdin else None
    key = Secret(private_key_file.read_text()) if private_key_file else None
    SftpTarget(host=host, port=port, username=username, import_dir=import_dir, host_key=host_key,
               password=password, private_key=key)  # validates every field at once
    target_id = add_sftp_target(context.ledger, context.vault, host=host, port=port, username=username,
                                import_dir=import_dir, host_key=host_key, password=password, private_key=key)
    with context.ledger.transaction() as session:
        deliver_to(session, tenant_ids, target_id)
    click.echo(f"SFTP target {target_id}: {username}@{host}:{port}{import_dir}, host key {fingerprint(host_key)}")
