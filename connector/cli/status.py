"""`connector status`: what the ledger holds and what waits for a person."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import click

from connector.cli.context import TENANT, CliContext, emit, json_option, pass_context


@click.command()
@click.option("--tenant", default=None, type=TENANT, help="limit to one Xero tenant id")
@json_option
@pass_context
def status(context: CliContext, tenant: str | None, as_json: bool) -> None:
    """Bills by state, held bills with their reasons, and files."""
    from connector.reporting import summarise

    silence = timedelta(seconds=context.settings.webhook_silence_seconds)
    summary = summarise(context.ledger, tenant, webhook_silence=silence)
    document: dict[str, Any] = {
        "attention": summary.attention,
        "bills_by_state": dict(sorted(summary.by_state.items())),
        "held": [{"invoice_id": i, "invoice_number": n, "reasons": r} for i, n, r in summary.held],
        "files": [{"name": name, "bills": count, "state": state} for name, count, state in summary.files],
        "webhooks": summary.webhooks,
    }
    lines = [*(f"ATTENTION {line}" for line in summary.attention),
             *(f"{state:<24}{count:>8}" for state, count in sorted(summary.by_state.items())),
             *(f"HELD {i} {n!r}: {'; '.join(r)}" for i, n, r in summary.held),
             *(f"FILE {name} ({count} bills) {state}" for name, count, state in summary.files),
             *(f"WEBHOOK {line}" for line in summary.webhooks)]
    emit(as_json, document, lines)
