"""A webhook brings a changed bill to Stampli's folder within seconds, on real parts: the sandbox sends its
signed webhook to the receiver under gunicorn, a real worker and beat poll, a real sshd takes the file.
The Xero calls of that cycle are those of a normal delta poll: a webhook only wakes the poll. A supplier
credit note's CREDITNOTE event does the same, its poll reading the credit notes too (one call more)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from connector.reporting import summarise
from connector.services.context import Services
from connector.webhooks import WEBHOOK_PATH
from sandbox.xero import XeroSandbox
from tests.conftest import pg_url_for
from tests.support.celery_procs import REPO, celery, wait_until
from tests.support.pipeline import invoice_ids_in_files, last_polled, make_due, onboard, worker_env
from tests.support.sshd import Sshd

KEY = "e2e-webhook-key-" + "w" * 72


@pytest.fixture
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=7, tenants=1, bills=40) as running:
        yield running


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def xero_calls(sandbox: XeroSandbox) -> dict[str, int]:
    """Accounting API calls by endpoint (token grants are the identity server's, not the budget's)."""
    return {name: sum(codes.values()) for name, codes in sandbox.stats()["calls_by_endpoint"].items()
            if not name.startswith(("/connect", "/identity", "/connections"))}


def test_a_bill_changed_in_xero_reaches_the_folder_within_seconds_with_the_calls_of_a_normal_delta_poll(
    sandbox: XeroSandbox, services: Services, sshd: Sshd, import_dir: Path, pg_schema: str, redis_url: str,
    tmp_path: Path,
) -> None:
    tenant_id = onboard(services, sandbox, sshd.target(import_dir), interval=3600)
    env = {**worker_env(services, pg_url_for(pg_schema), redis_url, sandbox, tmp_path),
           "CONNECTOR_XERO_WEBHOOK_KEY": KEY, "CONNECTOR_WEBHOOK_COALESCE_SECONDS": "0.5"}
    port = free_port()
    logs = tmp_path / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    receiver_log = (logs / "receiver.log").open("wb")
    receiver = subprocess.Popen(
        [sys.executable, "-m", "connector.webhooks", "serve", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
        env={**os.environ, **env}, cwd=REPO, stdout=receiver_log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(url + "/readyz"), 30, "the receiver to be ready")
        with celery("worker", env, logs) as worker, celery("beat", env, logs) as beat:
            wait_until(lambda: summarise(services.ledger).settled, 120, "the first cycle to settle", (worker, beat))
            first_files = set(invoice_ids_in_files(import_dir))
            assert sandbox.webhooks.configure(url + WEBHOOK_PATH, KEY)["intent_to_receive"] is True

            polled = last_polled(services, tenant_id)
            sandbox.state.stats.reset()
            started = time.monotonic()
            [added] = sandbox.update(tenant_id, add=1)["added"]
            wait_until(lambda: added in invoice_ids_in_files(import_dir), 60, "the new bill in the folder",
                       (worker, beat))
            latency = time.monotonic() - started
            wait_until(lambda: summarise(services.ledger).settled, 30, "the cycle to settle", (worker, beat))
            webhook_cycle = xero_calls(sandbox)
            assert last_polled(services, tenant_id) != polled

            # The same tenant polled on its cadence, with nothing new: a normal delta poll.
            sandbox.state.stats.reset()
            polled = last_polled(services, tenant_id)
            make_due(services, tenant_id)
            wait_until(lambda: last_polled(services, tenant_id) != polled, 60, "a cadence poll", (worker, beat))
            wait_until(lambda: summarise(services.ledger).settled, 30, "the poll to settle", (worker, beat))
            delta_poll = xero_calls(sandbox)

            # A supplier credit note: its CREDITNOTE event alone wakes the poll, which reads credit notes.
            sandbox.state.stats.reset()
            started = time.monotonic()
            credit = sandbox.add_credit_note(tenant_id, added, fraction="0.25", allocate=False)["CreditNoteID"]
            wait_until(lambda: credit in invoice_ids_in_files(import_dir), 60, "the credit note in the folder",
                       (worker, beat))
            credit_latency = time.monotonic() - started
            wait_until(lambda: summarise(services.ledger).settled, 30, "the cycle to settle", (worker, beat))
            credit_cycle = xero_calls(sandbox)
    finally:
        os.killpg(receiver.pid, signal.SIGTERM)
        receiver.wait(timeout=30)
        receiver_log.close()

    print(f"\nWEBHOOK_TO_FOLDER_SECONDS={latency:.2f} webhook cycle calls={webhook_cycle} delta poll={delta_poll}")
    assert added not in first_files
    assert latency < 15, f"a webhook took {latency:.1f}s to bring the bill to the folder"
    assert webhook_cycle == delta_poll, "a webhook cycle costs the Xero calls of a normal delta poll"
    assert invoice_ids_in_files(import_dir).count(added) == 1
    print(f"CREDIT_NOTE_WEBHOOK_TO_FOLDER_SECONDS={credit_latency:.2f} calls={credit_cycle}")
    assert credit_latency < 15, f"a credit note's webhook took {credit_latency:.1f}s to bring it to the folder"
    assert credit_cycle == {**delta_poll, "GET /api.xro/2.0/CreditNotes": 1}, "and one CreditNotes read more"
    assert invoice_ids_in_files(import_dir).count(credit) == 1


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False
