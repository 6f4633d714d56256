"""`connector webhooks serve`: the Xero webhook receiver behind gunicorn."""

from __future__ import annotations

import click


@click.group()
def webhooks() -> None:
    """Xero webhooks: a receiver that wakes a tenant's poll within seconds (polling stays the safety net)."""


@webhooks.command("serve")
@click.option("--bind", default="0.0.0.0:8780", show_default=True, help="address:port to listen on")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(min=1), help="gunicorn processes")
@click.option("--threads", default=8, show_default=True, type=click.IntRange(min=1), help="threads per process")
def serve(bind: str, workers: int, threads: int) -> None:
    """Serve POST /webhooks/xero (and /healthz, /readyz) until SIGTERM; needs CONNECTOR_XERO_WEBHOOK_KEY."""
    from connector.settings import load_settings
    from connector.webhooks.serve import serve as run

    run(load_settings(), bind, workers, threads)
