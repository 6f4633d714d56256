"""`connector keys …`: the Fernet keys that encrypt secrets at rest."""

from __future__ import annotations

import click

from connector.cli.context import CliContext, emit, json_option, pass_context


@click.group()
def keys() -> None:
    """Fernet keys that encrypt secrets at rest."""


@keys.command("new")
def keys_new() -> None:
    """Print a new key; put it first in CONNECTOR_FERNET_KEYS, keep the old ones after it, restart every
    worker with the new list, then rotate."""
    from connector.crypto import Vault

    click.echo(Vault.new_key())


@keys.command("rotate")
@json_option
@pass_context
def keys_rotate(context: CliContext, as_json: bool) -> None:
    """Re-encrypt every stored secret under the first key of CONNECTOR_FERNET_KEYS.

    Refused (exit 4, nothing re-encrypted) while a running worker lacks that key, naming the worker: it
    could read no secret afterwards. See `connector keys status`."""
    from connector.services.keys import rotate_keys

    count = rotate_keys(context.services)
    newest = context.vault.key_ids[0]
    emit(as_json, {"re_encrypted": count, "key_id": newest}, [f"re-encrypted {count} secrets under key {newest}"])


@keys.command("status")
@json_option
@pass_context
def keys_status(context: CliContext, as_json: bool) -> None:
    """The ids of the keys configured here (newest first) and, for each worker, the keys it holds, as
    it recorded them with its heartbeat: every running worker must hold the newest key before rotating."""
    from connector.services.keys import key_custody

    report = key_custody(context.ledger, context.vault)
    newest = report["configured"][0]
    lines = [f"configured here: {', '.join(report['configured'])} (newest first)"]
    lines += [f"{w['worker']}: {', '.join(w['key_ids'])}  "
              f"{'running' if w['live'] else 'silent'} (last heartbeat {w['heard_seconds_ago']} s ago)"
              f"{'' if w['has_newest_key'] else f'  LACKS {newest}'}" for w in report["workers"]]
    if not report["workers"]:
        lines.append("no worker has recorded its keys")
    emit(as_json, report, lines)
