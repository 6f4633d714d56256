"""`connector sandbox xero`: run the Xero sandbox in the foreground and print how to connect to it."""

from __future__ import annotations

import json
import sys
import threading

import click

from sandbox.xero.app import SandboxApp
from sandbox.xero.server import SandboxServer
from sandbox.xero.state import SandboxState


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
@click.option("--webhook-url", metavar="URL",
              help="Send signed webhooks here on every data change (e.g. http://127.0.0.1:8780/webhooks/xero), "
                   "after the intent-to-receive check; retried until the receiver passes it.")
@click.option("--webhook-key", envvar="CONNECTOR_XERO_WEBHOOK_KEY", show_envvar=True, metavar="KEY",
              help="The webhook key to sign with (the receiver's CONNECTOR_XERO_WEBHOOK_KEY); "
                   "without it a new one is made and printed.")
def xero_command(host: str, port: int, seed: int, tenants: int, bills: int, time_scale: float, as_json: bool,
                 access_log: bool, webhook_url: str | None, webhook_key: str | None) -> None:
    """Serve a Xero look-alike (identity, connections, Accounting API) seeded with an AP dataset."""
    state = SandboxState(seed, tenants, bills, time_scale)
    try:
        server = SandboxServer(SandboxApp(state), host, port, access_log=access_log)
    except OSError as exc:
        raise click.ClickException(str(exc)) from exc
    consent = state.consent(server.base_url)
    made_key = None
    if webhook_url and not webhook_key:  # a key given in the environment is never printed
        webhook_key = made_key = state.webhooks.new_key()
    if as_json:
        click.echo(json.dumps({**consent, **({"webhook": {"url": webhook_url, "key": made_key}}
                                             if webhook_url else {})}))
    else:
        _print_human(consent, state, (webhook_url, made_key or "(as given)") if webhook_url else None)
    sys.stdout.flush()
    stop = threading.Event()
    try:
        server.start()
        if webhook_url and webhook_key:
            threading.Thread(target=_set_up_webhook, args=(state, webhook_url, webhook_key, stop),
                             name="xero-sandbox-webhook-setup", daemon=True).start()
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()


WEBHOOK_SETUP_PAUSE_SECONDS = 2.0


def _set_up_webhook(state: SandboxState, url: str, key: str, stop: threading.Event) -> None:
    """Run the intent-to-receive check until it passes: the receiver may start after the sandbox (compose
    starts both together), and Xero would only enable a webhook that passed."""
    announced = False
    while not stop.is_set():
        if state.webhooks.configure(url, key)["intent_to_receive"]:
            click.echo(f"Webhooks: sending to {url} (intent to receive passed)", err=True)
            return
        if not announced:
            click.echo(f"Webhooks: {url} did not pass the intent-to-receive check (200 for the webhook key, "
                       "401 otherwise); trying again every few seconds", err=True)
            announced = True
        stop.wait(WEBHOOK_SETUP_PAUSE_SECONDS)


def _print_human(consent: dict[str, object], state: SandboxState, webhook: tuple[str, str] | None) -> None:
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
    if webhook:
        click.echo(f"  {'webhook URL':<17} {webhook[0]}")
        click.echo(f"  {'webhook key':<17} {webhook[1]}")
    click.echo("Serving until interrupted (Ctrl+C).")
