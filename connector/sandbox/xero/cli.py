"""`connector sandbox xero`: run the Xero sandbox in the foreground and print how to connect to it."""

from __future__ import annotations

import json
import sys
import threading

import click

from connector.sandbox.xero.app import SandboxApp
from connector.sandbox.xero.server import SandboxServer
from connector.sandbox.xero.state import SandboxState


@click.command("xero")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on (loopback by default).")
@click.option("--port", default=8765, show_default=True, type=int, help="Port; 0 picks a free one.")
@click.option("--seed", default=42, show_default=True, type=int, help="Dataset seed: same seed, same data.")
@click.option("--tenants", default=2, show_default=True, type=click.IntRange(min=1), help="Organisations.")
@click.option("--bills", default=1000, show_default=True, type=click.IntRange(min=0), help="Bills per tenant.")
@click.option("--time-scale", default=1.0, show_default=True, type=click.FloatRange(min=0),
              help="Sandbox seconds per real second (token expiry and rate-limit windows).")
@click.option("--json", "as_json", is_flag=True, help="Print the consent as one JSON object.")
@click.option("--access-log", is_flag=True, help="Log every request to stderr.")
def xero_command(host: str, port: int, seed: int, tenants: int, bills: int, time_scale: float, as_json: bool,
                 access_log: bool) -> None:
    """Serve a Xero look-alike (identity, connections, Accounting API) seeded with an AP dataset."""
    state = SandboxState(seed, tenants, bills, time_scale)
    try:
        server = SandboxServer(SandboxApp(state), host, port, access_log=access_log)
    except OSError as exc:
        raise click.ClickException(str(exc)) from exc
    consent = state.consent(server.base_url)
    if as_json:
        click.echo(json.dumps(consent))
    else:
        _print_human(consent, state)
    sys.stdout.flush()
    stop = threading.Event()
    try:
        server.start()
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()


def _print_human(consent: dict[str, object], state: SandboxState) -> None:
    urls = consent["urls"]
    assert isinstance(urls, dict)
    click.echo(f"Xero sandbox: seed {state.seed}, {state.tenant_count} tenant(s), {state.bills} bills each")
    for name in ("authorize", "token", "revocation", "connections", "api", "admin"):
        click.echo(f"  {name + ' URL':<17} {urls[name]}")
    click.echo(f"  {'client id':<17} {consent['client_id']}")
    click.echo(f"  {'client secret':<17} {consent['client_secret']}")
    click.echo(f"  {'refresh token':<17} {consent['refresh_token']}")
    for tenant in state.store.dataset.tenants:
        click.echo(f"  {'tenant':<17} {tenant.tenant_id}  {tenant.name}")
    click.echo("Serving until interrupted (Ctrl+C).")
