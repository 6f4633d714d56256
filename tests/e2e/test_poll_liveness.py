"""A poll worker killed (SIGKILL) during a tenant's first sync, on real Celery processes over Redis and
PostgreSQL: its message stays unacknowledged for the broker's visibility timeout and the tenant's next
cadence is 15 minutes away, yet the poll resumes as soon as its lease lapses and every bill arrives."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from connector.services.context import Services
from connector.store.models import Bill, Tenant
from sandbox.xero import XeroSandbox
from tests.conftest import pg_url_for
from tests.support.celery_procs import celery, wait_until
from tests.support.pipeline import onboard, worker_env
from tests.support.sftp_fixtures import BundledSftp

INTERVAL = 900  # the default cadence: what a killed poll waited before
LEASE = 12  # above one Xero request with its inline tries (2 s timeout)


@pytest.fixture
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=37, tenants=1, bills=200) as running:
        yield running


def bills_in_ledger(services: Services) -> int:
    """Bills only: supplier credit notes are rows of the same table (document_type CREDIT_NOTE)."""
    with services.ledger.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(Bill).where(Bill.document_type == "BILL")) or 0)


def poll_state(services: Services, tenant_id: str) -> tuple[object, ...]:
    with services.ledger.transaction() as session:
        tenant = session.get_one(Tenant, tenant_id)
        return (bills_in_ledger(services), tenant.poll_lease_until, tenant.poll_runs, tenant.poll_parked_reason)


def test_a_poll_worker_killed_during_a_first_sync_resumes_within_a_lease_not_a_cadence(
    sandbox: XeroSandbox, services: Services, bundled_sftp: BundledSftp, pg_schema: str, redis_url: str,
    tmp_path: Path,
) -> None:
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    total = len(sandbox.dataset.tenant(tenant_id).bills)
    with services.ledger.transaction() as session:
        assert session.get_one(Tenant, tenant_id).poll_interval_seconds == INTERVAL
    env = {**worker_env(services, pg_url_for(pg_schema), redis_url, sandbox, tmp_path),
           "CONNECTOR_XERO_PAGE_SIZE": "20", "CONNECTOR_XERO_TIMEOUT_SECONDS": "2",
           "CONNECTOR_POLL_LEASE_SECONDS": str(LEASE)}
    logs = tmp_path / "logs"
    sandbox.faults.configure(latency_ms=250)  # pages trickle in, so the kill lands in the middle of the sync
    with celery("beat", env, logs) as beat:
        with celery("worker", env, logs) as first:
            wait_until(lambda: bills_in_ledger(services) >= 20, 60, "the first pages", (first, beat))
            sandbox.faults.configure(latency_ms=10_000)  # the next page hangs in flight: the poll is mid-run
            time.sleep(0.5)
            first.kill()
        killed_at = time.monotonic()
        assert bills_in_ledger(services) < total, "the first sync finished before the kill"
        sandbox.faults.configure(latency_ms=0)
        with celery("worker", env, logs) as second:
            wait_until(lambda: poll_state(services, tenant_id) == (total, None, 0, None), 90,
                       "the killed poll to resume and finish", (second, beat),
                       state=lambda: poll_state(services, tenant_id))
        waited = time.monotonic() - killed_at
    assert waited < INTERVAL / 10, f"the killed poll resumed only after {waited:.0f}s"
