"""A reconcile on a real Celery worker over Redis and PostgreSQL: one that outlasts its time budget goes on
in legs (each leg stops before its next Xero call and the task sends itself again, naming the run, until
the run is whole); one whose pool process is killed mid-run (the OOM killer takes the child, not the
worker) goes on at once with its message, which the worker puts back (task_reject_on_worker_lost): the
run is held by the leg that died, and the message delivered again must not take itself for another
reconcile and do nothing, leaving the run to the next daily one."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from sqlalchemy import select

from connector.domain.states import BillState
from connector.services.context import Services
from connector.store.models import Bill, ReconcileRun
from connector.store.reconciliations import RUN_LEASE_SECONDS, last_reconciles
from sandbox.xero import XeroSandbox
from tests.conftest import pg_url_for
from tests.support.celery_procs import celery, wait_until
from tests.support.pipeline import onboard, run_cycle, worker_env
from tests.support.services import services_for_sandbox
from tests.support.sftp_fixtures import BundledSftp


@pytest.fixture
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=43, tenants=1, bills=120) as running:
        yield running


@pytest.fixture
def services(sandbox: XeroSandbox, pg_schema: str, tmp_path: Path) -> Iterator[Services]:
    """The test's own services, pointed at the sandbox: the first sync runs in the test, the reconcile in
    the worker."""
    built = services_for_sandbox(sandbox, tmp_path, "postgresql", schema=pg_schema)
    yield built
    built.close()


def synced_tenant(sandbox: XeroSandbox, services: Services, bundled_sftp: BundledSftp, pg_schema: str,
                  redis_url: str, tmp_path: Path) -> tuple[str, int, dict[str, Any]]:
    """A tenant after its first cycle: (its id, its delivered bills, a worker's environment whose bills take
    several pages, each a call)."""
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    run_cycle(services, tenant_id)
    with services.ledger.transaction() as session:
        delivered = len(session.scalars(select(Bill.invoice_id).where(
            Bill.state == BillState.DELIVERED, Bill.document_type == "BILL")).all())
    env = {**worker_env(services, pg_url_for(pg_schema), redis_url, sandbox, tmp_path),
           "CONNECTOR_XERO_PAGE_SIZE": "20"}
    return tenant_id, delivered, env


def reconciles(services: Services, tenant_id: str) -> list[Any]:
    with services.ledger.transaction() as session:
        return list(last_reconciles(session, tenant_id))


def test_a_reconcile_longer_than_its_time_budget_goes_on_in_legs_each_a_task_of_its_own(
    sandbox: XeroSandbox, services: Services, bundled_sftp: BundledSftp, pg_schema: str, redis_url: str,
    tmp_path: Path,
) -> None:
    tenant_id, delivered, env = synced_tenant(sandbox, services, bundled_sftp, pg_schema, redis_url, tmp_path)
    env["CONNECTOR_POLL_HANDOVER_SECONDS"] = "0.1"  # every leg hands over after its first call

    def reconciled() -> bool:
        return bool(reconciles(services, tenant_id))

    calls_before = sandbox.stats()["calls"]
    sandbox.faults.configure(latency_ms=150)  # each call outlasts the time budget
    with celery("worker", env, tmp_path / "logs", queues=("poll",)) as worker:
        Celery("reconcile-legs-test", broker=redis_url).send_task("connector.reconcile_tenant", args=[tenant_id],
                                                                  queue="poll")
        wait_until(reconciled, 90, "the reconcile to finish in legs", (worker,))
        legs = sum(1 for line in worker.output().splitlines()
                   if "Task connector.reconcile_tenant[" in line and line.endswith("received"))  # a task a leg
        handed_over = worker.output().count("handed over after")
    with services.ledger.transaction() as session:
        last = last_reconciles(session, tenant_id)[0]
        assert session.get(ReconcileRun, tenant_id) is None, "the run is over"
    assert last.ok
    assert last.found["delivered_checked"] == delivered
    assert last.found["calls"] == sandbox.stats()["calls"] - calls_before, "each call made once, all counted"
    assert legs >= 3, "the run went on in legs, each a task of its own"
    assert handed_over == legs - 1


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def test_a_reconcile_whose_pool_process_was_killed_goes_on_at_once_with_the_message_delivered_again(
    sandbox: XeroSandbox, services: Services, bundled_sftp: BundledSftp, pg_schema: str, redis_url: str,
    tmp_path: Path,
) -> None:
    tenant_id, delivered, env = synced_tenant(sandbox, services, bundled_sftp, pg_schema, redis_url, tmp_path)

    def reconciled() -> bool:
        return bool(reconciles(services, tenant_id))

    def held() -> bool:
        with services.ledger.transaction() as session:
            run = session.get(ReconcileRun, tenant_id)
            return run is not None and run.lease_owner is not None and run.phase != ""

    calls_before = sandbox.stats()["calls"]
    sandbox.faults.configure(latency_ms=1500)  # the run lasts several seconds: the kill lands in its middle
    with celery("worker", env, tmp_path / "logs", "-c", "1", queues=("poll",)) as worker:
        Celery("reconcile-killed-test", broker=redis_url).send_task("connector.reconcile_tenant",
                                                                    args=[tenant_id], queue="poll")
        wait_until(lambda: held() and sandbox.stats()["calls"] - calls_before >= 2, 60,
                   "the reconcile to be under way", (worker,))
        [child] = children_of(worker.process.pid)
        os.kill(child, signal.SIGKILL)  # the pool process only, as the OOM killer would
        killed_at = time.monotonic()
        sandbox.faults.configure(latency_ms=0)
        wait_until(reconciled, 60, "the reconcile to go on with the message delivered again", (worker,))
        waited = time.monotonic() - killed_at
    assert waited < RUN_LEASE_SECONDS / 10, f"the killed reconcile went on only after {waited:.0f}s"
    with services.ledger.transaction() as session:
        last = last_reconciles(session, tenant_id)[0]
        assert session.get(ReconcileRun, tenant_id) is None, "the run is over"
    assert last.ok
    assert last.found["delivered_checked"] == delivered
