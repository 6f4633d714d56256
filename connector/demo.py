"""`make run`: the whole product on the embedded default, in one process tree.

SQLite ledger, kombu's file broker (no server), the bundled Xero sandbox and SFTP server in this
process, and one real `celery worker` and one real `celery beat` as child processes. Progress is
printed while bills move; the run ends with a summary and the paths of the delivered files.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click

from connector.config.loader import MappingSetData
from connector.crypto import Vault
from connector.onboarding import add_grant, add_sftp_target, add_tenant
from connector.reporting import Summary, summarise
from connector.secret import Secret
from connector.services.mappings import import_mapping_set
from connector.settings import load_settings, xero_url_environment
from connector.store.db import Ledger

IMPORT_DIR = "/stampli/import"
SFTP_USER = "stampli"


def run_demo(*, bills: int, timeout: float, base: Path | None = None) -> int:
    from connector.sandbox.sftp import BundledSftpServer
    from connector.sandbox.xero import XeroSandbox

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
        click.echo("» starting one celery worker and one celery beat")
        children = _start_celery(home, env)
        try:
            summary = _watch(ledger, timeout, children)
        finally:
            _stop(children)
        _print_summary(summary, sftp.local_path(IMPORT_DIR), home)
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
    from connector.sandbox.xero import XeroSandbox

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


def _start_celery(home: Path, env: dict[str, str]) -> list[subprocess.Popen[bytes]]:
    logs = home / "logs"
    logs.mkdir()
    celery = [sys.executable, "-m", "celery", "-A", "workers.app"]
    worker = [*celery, "worker", "-Q", "poll,map,batch,sftp", "-c", "2", "-n", "demo@%h",
              "--without-mingle", "--without-gossip", "--loglevel", "INFO"]
    beat = [*celery, "beat", "--loglevel", "INFO", "-s", str(home / "celerybeat-schedule")]
    return [
        subprocess.Popen(cmd, env=env, stdout=(logs / f"{name}.log").open("wb"), stderr=subprocess.STDOUT)
        for name, cmd in (("worker", worker), ("beat", beat))
    ]


def _watch(ledger: Ledger, timeout: float, children: list[subprocess.Popen[bytes]]) -> Summary:
    deadline = time.monotonic() + timeout
    last = ""
    summary = summarise(ledger)
    while time.monotonic() < deadline:
        for name, child in zip(("worker", "beat"), children, strict=True):
            if child.poll() is not None:
                raise click.ClickException(f"celery {name} exited early; see its log")
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


def _print_summary(summary: Summary, import_folder: Path, home: Path) -> None:
    delivered = summary.by_state.get("DELIVERED", 0)
    click.echo("")
    click.echo(f"Bills seen: {summary.seen}   delivered: {delivered}   held: {len(summary.held)}   "
               f"excluded: {len(summary.excluded)}")
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
        click.echo(f"  {import_folder / name}  ({count} bills, {state})")
    click.echo(f"Ledger: {home / 'connector.db'}   logs: {home / 'logs'}")
