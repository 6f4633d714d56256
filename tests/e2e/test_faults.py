"""Faults injected into a running cycle on real parts. Whatever breaks, every eligible bill ends up
delivered exactly once: the ledger and the sweeper finish what the broker and the workers dropped."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from connector.domain.states import BillState
from connector.limits import TIME_LIMITS
from connector.reporting import summarise
from connector.services.context import Services
from sandbox.sftp import BundledSftpServer
from sandbox.xero import XeroSandbox
from tests.conftest import pg_url_for
from tests.support.celery_procs import celery, wait_until
from tests.support.pipeline import delivered_ids, invoice_ids_in_files, onboard, run_cycle, waits_after_429, worker_env
from tests.support.services import make_services
from tests.support.sshd import Sshd

SEED, BILLS = 23, 60


@pytest.fixture(scope="module")
def expected(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """The bills a clean cycle delivers, from an in-process run on its own sandbox and ledger."""
    home = tmp_path_factory.mktemp("reference")
    with XeroSandbox(seed=SEED, tenants=1, bills=BILLS) as sandbox, \
            BundledSftpServer(home / "sftp", "ref", "ref-password", None) as server:
        server.ensure_dir("/import")
        urls = sandbox.consent()["urls"]
        services = make_services(f"sqlite:///{home / 'ref.db'}", home, extra_env={
            "CONNECTOR_XERO_TOKEN_URL": urls["token"], "CONNECTOR_XERO_API_URL": urls["api"]})
        from connector.secret import Secret
        from connector.sftp import SftpTarget

        target = SftpTarget(host="127.0.0.1", port=server.port, username="ref", import_dir="/import",
                            host_key=server.host_key, password=Secret("ref-password"))
        run_cycle(services, onboard(services, sandbox, target))
        ids = delivered_ids(services)
        services.close()
    assert ids
    return ids


@pytest.fixture
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=SEED, tenants=1, bills=BILLS) as running:
        yield running


@pytest.fixture
def wired(sandbox: XeroSandbox, services: Services, sshd: Sshd, import_dir: Path, pg_schema: str,
          redis_url: str, tmp_path: Path) -> dict[str, str]:
    onboard(services, sandbox, sshd.target(import_dir), cap=20)
    env = worker_env(services, pg_url_for(pg_schema), redis_url, sandbox, tmp_path)
    env.update(CONNECTOR_DELIVERY_LEASE_SECONDS="15", CONNECTOR_SFTP_TIME_LIMIT_SECONDS="5",
               CONNECTOR_SFTP_TIMEOUT_SECONDS="2", CONNECTOR_XERO_TIMEOUT_SECONDS="3",
               CONNECTOR_POLL_LEASE_SECONDS="15")  # a poll killed before its last read is taken again soon
    return env


def assert_exactly_once(services: Services, import_dir: Path, expected: set[str]) -> None:
    summary = summarise(services.ledger)
    assert summary.settled, summary.by_state
    in_files = invoice_ids_in_files(import_dir)
    assert [i for i, n in Counter(in_files).items() if n > 1] == [], "a bill was delivered twice"
    assert set(in_files) == expected == delivered_ids(services)
    assert not list(import_dir.glob("*.part"))


def settled(services: Services) -> bool:
    return summarise(services.ledger).settled


def test_a_worker_killed_mid_cycle_is_replaced_and_nothing_is_lost_or_doubled(
    wired: dict[str, str], services: Services, import_dir: Path, expected: set[str], tmp_path: Path,
) -> None:
    logs = tmp_path / "logs"
    with celery("beat", wired, logs) as beat:
        with celery("worker", wired, logs) as first:
            wait_until(lambda: summarise(services.ledger).by_state[BillState.DISCOVERED] > 0
                       or summarise(services.ledger).by_state[BillState.READY] > 0, 60, "mapping to start",
                       (first, beat))
            first.kill()
        with celery("worker", wired, logs) as second:
            # A mapping that died with its worker is asked for again once the map time limit has passed, and
            # a poll killed before its last read (credit notes come after the bills) once its lease lapsed.
            wait_until(lambda: settled(services) and delivered_ids(services) >= expected, TIME_LIMITS["map"] + 120,
                       "recovery after the kill", (second, beat))
    assert_exactly_once(services, import_dir, expected)


def test_the_broker_losing_every_message_is_repaired_by_the_sweeper(
    wired: dict[str, str], services: Services, import_dir: Path, expected: set[str], redis_url: str,
    tmp_path: Path,
) -> None:
    logs = tmp_path / "logs"
    with celery("worker", wired, logs) as worker, celery("beat", wired, logs) as beat:
        wait_until(lambda: summarise(services.ledger).seen > 0, 60, "the first poll", (worker, beat))
        redis.Redis.from_url(redis_url).flushdb()  # what a Redis restart without persistence leaves
        wait_until(lambda: settled(services), 90, "recovery after the broker lost its data", (worker, beat),
                   state=lambda: summarise(services.ledger).by_state)
    assert_exactly_once(services, import_dir, expected)


def test_sftp_down_then_back_delivers_each_file_once(
    wired: dict[str, str], services: Services, import_dir: Path, expected: set[str], sshd: Sshd, tmp_path: Path,
) -> None:
    sshd.stop()
    logs = tmp_path / "logs"
    with celery("worker", wired, logs) as worker, celery("beat", wired, logs) as beat:
        wait_until(lambda: summarise(services.ledger).by_state[BillState.BATCHED] > 0, 60, "a batch to wait",
                   (worker, beat))
        wait_until(lambda: "next attempt in" in worker.output(), 30, "a failed delivery attempt", (worker, beat))
        sshd.start()
        wait_until(lambda: settled(services), 120, "delivery after SFTP came back", (worker, beat))
    assert_exactly_once(services, import_dir, expected)


def test_xero_errors_and_rate_limits_are_waited_out(
    wired: dict[str, str], services: Services, import_dir: Path, expected: set[str], sandbox: XeroSandbox,
    tmp_path: Path,
) -> None:
    sandbox.faults.configure(error_rate=0.3, error_statuses=[500, 503])
    sandbox.faults.fail_next("/api.xro/2.0/Invoices", 2, 429, retry_after=2, problem="minute")
    logs = tmp_path / "logs"
    with celery("worker", wired, logs) as worker, celery("beat", wired, logs) as beat:
        wait_until(lambda: settled(services), 150, "the cycle despite Xero's errors", (worker, beat),
                   state=lambda: (summarise(services.ledger).by_state, sandbox.stats()["calls_by_endpoint"]))
    assert_exactly_once(services, import_dir, expected)
    invoices = sandbox.stats()["calls_by_endpoint"]["GET /api.xro/2.0/Invoices"]
    assert invoices.get("429") == 2, f"both forced 429s must have reached the connector: {invoices}"
    assert sandbox.stats()["faults_injected"] > 0, "the 500/503 faults must have fired"
    waits = waits_after_429(sandbox, "GET /api.xro/2.0/Invoices")
    assert len(waits) == 2
    assert min(waits) >= 2.0, f"Retry-After (2 s) was not waited: {waits}"
