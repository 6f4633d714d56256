"""`connector keys …`: the Fernet keys that encrypt secrets at rest."""

from __future__ import annotations

import click

from connector.cli.context import CliContext, emit, json_option, pass_context


@click.group()
def keys() -> None:
    """Fernet keys that encrypt secrets at rest."""


@keys.command("new")
def keys_new() -> None:
    """Print a new key; put it first in CONNECTOR_FERNET_KEYS, keep the old ones after it, then rotate."""
    from connector.crypto import Vault

    click.echo(Vault.new_key())


@keys.command("rotate")
@json_option
@pass_context
def keys_rotate(context: CliContext, as_json: bool) -> None:
    """Re-encrypt every stored secret under the first key of CONNECTOR_FERNET_KEYS."""
    from connector.services.keys import rotate_keys

    count = rotate_keys(context.services)
    emit(as_json, {"re_encrypted": count}, [f"re-encrypted {count} secrets"])
