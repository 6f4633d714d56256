"""`make run`: the whole product on the embedded default, in one process tree.

SQLite ledger, kombu's file broker (no server), the bundled Xero sandbox and SFTP server in this
process, and one real `celery worker`, one real `celery beat` and the webhook receiver as child
processes. Progress is printed while bills move; once the first cycle settles, a bill added in the
sandbox shows a webhook waking the tenant's poll (its cadence is 15 minutes). The tenant sends its
master data too (vendors, GL accounts, dimension values, purchase orders: a file per kind, before its
bills). The run ends with a summary and the paths of the delivered files.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click

from connector.config.loader import MappingSetData
from connector.crypto import Vault
from connector.domain.masterdata import MASTER_KINDS
from connector.domain.states import BillState
from connector.onboarding import add_grant, add_sftp_target, add_tenant
from connector.reporting import Summary, summarise
from connector.secret import Secret
from connector.services.mappings import import_mapping_set
from connector.settings import load_settings, xero_url_environment
from connector.store.db import Ledger
from connector.store.history import bill_histories
from connector.store.masterdata import master_file_kinds, set_kind
from connector.webhooks.receiver import WEBHOOK_PATH

IMPORT_DIR = "/stampli/import"
SFTP_USER = "stampli"


def run_demo(*, bills: int, timeout: float, base: Path | None = None) -> int:
    from sandbox.sftp import BundledSftpServer
    from sandbox.xero import XeroSandbox

    logging.getLogger("alembic").setLevel(logging.WARNING)  # the demo shows progress, not migrations
    home = (base or Path.cwd() / "var" / "demo").resolve()
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    sftp_password = secrets.token_urlsafe(16)
    click.echo(f"» demo folder: {home}")
    with XeroSandbox(seed=42, tenants=1, bills=bills) as xero, BundledSftpServer(
        home / "sftp-root", SFTP_USER, sftp_password, None
    ) as sftp:
        sftp.start()
        sftp.ensure_dir(IMPORT_DIR)
        consent = xero.consent()
        env = _environment(home, consent["urls"])
        click.echo(f"» Xero sandbox at {xero.base_url} ({bills} bills); SFTP server at 127.0.0.1:{sftp.port}")
        settings = load_settings(env)
        ledger = Ledger.connect(settings.database_url)
        vault = Vault(settings.fernet_keys)
        _onboard(ledger, vault, xero, consent, sftp.port, sftp.host_key, sftp_password)
        webhook_key = xero.webhooks.new_key()
        receiver_port = _free_port()
        env["CONNECTOR_WEBHOOK_COALESCE_SECONDS"] = "0.5"
        click.echo(f"» starting one celery worker, one celery beat and the webhook receiver "
                   f"(127.0.0.1:{receiver_port})")
        children = {**_start_celery(home, env),  # only the receiver gets the webhook key
                    "receiver": _start_receiver(home, {**env, "CONNECTOR_XERO_WEBHOOK_KEY": webhook_key},
                                                receiver_port)}
        try:
            summary = _watch(ledger, timeout, children)
            if summary.settled:
                _show_a_webhook(xero, ledger, f"http://127.0.0.1:{receiver_port}{WEBHOOK_PATH}", webhook_key,
                                children)
                summary = summarise(ledger)
        finally:
            _stop(list(children.values()))
        with ledger.transaction() as session:
            kinds = master_file_kinds(session)
        _print_summary(summary, sftp.local_path(IMPORT_DIR), home, kinds)
        for line in look_around(home, env):
            click.echo(line)
        ledger.dispose()
        return 0 if summary.settled else 1


def _environment(home: Path, urls: dict[str, str]) -> dict[str, str]:
    env = {
        **os.environ,
        "CONNECTOR_DATABASE_URL": f"sqlite:///{home / 'connector.db'}",
        "CONNECTOR_BROKER_URL": "filesystem://",
        "CONNECTOR_BROKER_DIR": str(home / "broker"),
        "CONNECTOR_STAGING_DIR": str(home / "staging"),
        "CONNECTOR_FERNET_KEYS": Vault.new_key(),
        **xero_url_environment(urls),
        "CONNECTOR_BEAT_TICK_SECONDS": "1",
        "CONNECTOR_SWEEP_INTERVAL_SECONDS": "5",
        "CONNECTOR_SWEEP_STALE_SECONDS": "10",
    }
    return env


#: What `connector` needs to read the demo's ledger after the run (no broker: commands run in process).
LOOK_AROUND_VARIABLES = ("CONNECTOR_DATABASE_URL", "CONNECTOR_FERNET_KEYS", "CONNECTOR_STAGING_DIR",
                         "CONNECTOR_BROKER_DIR")


def look_around(home: Path, env: dict[str, str]) -> list[str]:
    """Write the demo ledger's environment to a private file and say what to try next with it; the
    throwaway key stays in the file, never on the terminal."""
    env_file = home / "connector.env"
    env_file.touch(mode=0o600)
    env_file.write_text("".join(f"{name}={env[name]}\n" for name in LOOK_AROUND_VARIABLES), encoding="utf-8")
    return [f"» look around the demo's ledger: set -a; . {env_file}; set +a",
            "  then try: connector status · connector bills list --state HELD · connector bills show <InvoiceID>"
            " · connector audit export --since 1h · connector check"]


def _onboard(ledger: Ledger, vault: Vault, xero: object, consent: dict[str, object], port: int, host_key: str,
             password: str) -> None:
    from sandbox.xero import XeroSandbox

    assert isinstance(xero, XeroSandbox)
    grant_id = add_grant(
        ledger, vault, client_id=str(consent["client_id"]), client_secret=Secret(str(consent["client_secret"])),
        refresh_token=Secret(str(consent["refresh_token"])),
    )
    target_id = add_sftp_target(
        ledger, vault, host="127.0.0.1", port=port, username=SFTP_USER, import_dir=IMPORT_DIR, host_key=host_key,
        password=Secret(password),
    )
    for tenant in xero.dataset.tenants:
        add_tenant(
            ledger, tenant_id=tenant.tenant_id, name=tenant.name, short_name="demo", grant_id=grant_id,
            sftp_target_id=target_id, poll_interval_seconds=900,
        )
        import_mapping_set(ledger, tenant.tenant_id, demo_mapping_set(tenant), actor="demo")
        with ledger.transaction() as session:  # as `connector masterdata set ID --on all` does
            for kind in MASTER_KINDS:
                set_kind(session, tenant.tenant_id, kind, enabled=True)


def demo_mapping_set(tenant: Any) -> MappingSetData:
    """What an onboarding would give for a sandbox tenant: every active account to a Stampli GL code,
    Department options to Stampli department codes, Region options passed through as locations (the
    default templates' `department` and `location` dimensions). Archived accounts and tracking options
    stay unmapped, so the bills that use them show what a hold looks like."""
    tracking = []
    for category in tenant.tracking_categories:
        for option in category.options:
            if option.status != "ACTIVE":
                continue
            if category.name == "Department":
                tracking.append({"xero_category": category.name, "xero_option": option.name,
                                 "stampli_dimension": "department", "stampli_value": f"D-{option.name.upper()}"})
            else:
                tracking.append({"xero_category": category.name, "xero_option": option.name,
                                 "stampli_dimension": "location", "stampli_value": "*"})
    return MappingSetData(
        settings={"amount_tolerance": "0.05"},
        gl={a.code: f"GL-{a.code}" for a in tenant.accounts if a.status == "ACTIVE"},
        tracking=tracking,
    )


def _start_celery(home: Path, env: dict[str, str]) -> dict[str, subprocess.Popen[bytes]]:
    logs = home / "logs"
    logs.mkdir()
    celery = [sys.executable, "-m", "celery", "-A", "workers.app"]
    worker = [*celery, "worker", "-Q", "poll,map,batch,sftp", "-c", "2", "-n", "demo@%h",
              "--without-mingle", "--without-gossip", "--loglevel", "INFO"]
    beat = [*celery, "beat", "--loglevel", "INFO", "-s", str(home / "celerybeat-schedule")]
    return {
        name: subprocess.Popen(cmd, env=env, stdout=(logs / f"{name}.log").open("wb"), stderr=subprocess.STDOUT)
        for name, cmd in (("worker", worker), ("beat", beat))
    }


def _start_receiver(home: Path, env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "connector.webhooks", "serve", "--bind", f"127.0.0.1:{port}",
               "--workers", "1", "--threads", "4"]
    return subprocess.Popen(command, env=env, stdout=(home / "logs" / "receiver.log").open("wb"),
                            stderr=subprocess.STDOUT)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


WEBHOOK_DEMO_SECONDS = 60.0  # how long the demo waits for the woken poll to bring the new bill


def _show_a_webhook(xero: Any, ledger: Ledger, url: str, key: str,
                    children: dict[str, subprocess.Popen[bytes]]) -> None:
    """Point the sandbox's webhook at the receiver, add a bill, and time how soon the woken poll brings it
    to its final state (the tenant is next due in 15 minutes, so only the webhook can explain seconds)."""
    deadline = time.monotonic() + 20
    while not xero.webhooks.configure(url, key)["intent_to_receive"]:
        _check_alive(children)
        if time.monotonic() > deadline:
            click.echo("» the webhook receiver did not pass Xero's intent-to-receive check; see logs/receiver.log",
                       err=True)
            return
        time.sleep(0.5)
    tenant_id = xero.dataset.tenants[0].tenant_id
    click.echo(f"» webhooks: the sandbox signs one to {url} on every change (intent to receive passed)")
    started = time.monotonic()
    [added] = xero.update(tenant_id, add=1)["added"]
    click.echo(f"» added bill {added} in the Xero sandbox; the tenant's next regular poll is 15 minutes away")
    while time.monotonic() < started + WEBHOOK_DEMO_SECONDS:
        _check_alive(children)
        with ledger.transaction() as session:
            states = [history.bill.state for history in bill_histories(session, added)]
        if states and states[0] in {BillState.DELIVERED, BillState.HELD, BillState.EXCLUDED}:
            click.echo(f"» a webhook woke the poll: the new bill was {states[0].lower()} "
                       f"{time.monotonic() - started:.1f} s after the change in Xero")
            return
        time.sleep(0.2)
    click.echo("» the new bill did not arrive within a minute; see logs/receiver.log and logs/worker.log", err=True)


def _check_alive(children: dict[str, subprocess.Popen[bytes]]) -> None:
    for name, child in children.items():
        if child.poll() is not None:
            raise click.ClickException(f"the {name} exited early; see logs/{name}.log")


def _watch(ledger: Ledger, timeout: float, children: dict[str, subprocess.Popen[bytes]]) -> Summary:
    deadline = time.monotonic() + timeout
    last = ""
    summary = summarise(ledger)
    while time.monotonic() < deadline:
        _check_alive(children)
        summary = summarise(ledger)
        line = "  ".join(f"{state.lower()}={count}" for state, count in sorted(summary.by_state.items()))
        line += f"  files={len(summary.files)}"
        if line != last:
            click.echo(f"  {line}")
            last = line
        if summary.settled:
            return summary
        time.sleep(0.5)
    click.echo("» timed out waiting for the cycle to settle", err=True)
    return summary


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()


def _print_summary(summary: Summary, import_folder: Path, home: Path, kinds: dict[str, str]) -> None:
    delivered = summary.by_state.get("DELIVERED", 0)
    click.echo("")
    click.echo(f"Bills seen: {summary.seen}   delivered: {delivered}   held: {len(summary.held)}   "
               f"excluded: {len(summary.excluded)}   (supplier credit notes among them: {summary.credit_notes})")
    if summary.held:
        click.echo("Held (needs a person):")
        for invoice_id, number, reasons in summary.held:
            click.echo(f"  {invoice_id}  {number!r}: {'; '.join(reasons)}")
    if summary.excluded:
        click.echo("Excluded:")
        for invoice_id, number, reasons in summary.excluded:
            click.echo(f"  {invoice_id}  {number!r}: {'; '.join(reasons)}")
    click.echo("Delivered files (on the bundled SFTP server):")
    for name, count, state in summary.files:
        carried = f"{count} {kinds[name]} records" if name in kinds else f"{count} bills"
        click.echo(f"  {import_folder / name}  ({carried}, {state})")
    click.echo(f"Ledger: {home / 'connector.db'}   logs: {home / 'logs'}")
