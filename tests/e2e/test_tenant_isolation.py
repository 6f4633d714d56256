"""One slow or failing tenant never delays another's cycle, on real processes as an operator runs them: a
poll worker at concurrency 2 and beat, over Redis and PostgreSQL. One tenant's Xero calls hang past the
request timeout, another's fail with 500 every time; the healthy tenants' polls still end within seconds
of falling due, cycle after cycle, while the two misbehaving tenants keep failing and trying again. (A
hung call is given up after one timeout, connector.errors.XeroTimedOut, so a hung tenant holds a poll
process for one timeout per try: see tests/integration/test_xero_sync.py.)"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select, update

from connector.onboarding import add_grant
from connector.secret import Secret
from connector.services.context import Services
from connector.store.models import Tenant, utcnow
from connector.store.tenants import add_tenant
from sandbox.xero import XeroSandbox
from tests.conftest import pg_url_for
from tests.support.celery_procs import CeleryProcess, celery, wait_until
from tests.support.pipeline import worker_env

TENANTS = 6
TIMEOUT = 2  # CONNECTOR_XERO_TIMEOUT_SECONDS: a hung call is given up after this
ON_TIME = 6.0  # seconds from falling due to the poll's end, for every healthy tenant
CYCLES = 3


@pytest.fixture
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=61, tenants=TENANTS, bills=0) as running:
        yield running


def onboard_all(services: Services, sandbox: XeroSandbox) -> list[str]:
    consent = sandbox.consent()
    grant = add_grant(services.ledger, services.vault, client_id=str(consent["client_id"]),
                      client_secret=Secret(str(consent["client_secret"])),
                      refresh_token=Secret(str(consent["refresh_token"])))
    with services.ledger.transaction() as session:
        for n, tenant_id in enumerate(sandbox.tenant_ids):
            add_tenant(session, tenant_id=tenant_id, name=f"Org {n}", short_name=f"t{n}", grant_id=grant,
                       sftp_target_id=None, poll_interval_seconds=900, max_bills_per_file=500)
    return list(sandbox.tenant_ids)


def make_all_due(services: Services) -> datetime:
    with services.ledger.transaction() as session:
        now = utcnow()
        session.execute(update(Tenant).values(next_poll_at=now))
    return now


def polled_since(services: Services, tenant_ids: list[str], since: datetime) -> dict[str, datetime]:
    with services.ledger.transaction() as session:
        rows = session.execute(select(Tenant.id, Tenant.last_polled_at).where(Tenant.id.in_(tenant_ids))).tuples()
        return {t: at for t, at in rows if at is not None and at >= since}


def slowest_healthy_poll(services: Services, healthy: list[str], processes: tuple[CeleryProcess, ...],
                         cycle: int) -> float:
    """Make every tenant due at once; seconds from then to the end of the last healthy tenant's poll."""
    due_at = make_all_due(services)
    wait_until(lambda: len(polled_since(services, healthy, due_at)) == len(healthy), 120,
               f"cycle {cycle}: every healthy tenant's poll", processes,
               state=lambda: polled_since(services, healthy, due_at))
    slowest = max((at - due_at).total_seconds() for at in polled_since(services, healthy, due_at).values())
    return slowest


def test_tenants_whose_calls_hang_or_fail_never_delay_the_other_tenants_polls(
    sandbox: XeroSandbox, services: Services, pg_schema: str, redis_url: str, tmp_path: Path,
) -> None:
    hanging, failing, *healthy = onboard_all(services, sandbox)
    bad = [hanging, failing]
    sandbox.faults.configure(latency_ms=60_000, tenant=hanging)
    sandbox.faults.fail_next("/api.xro/2.0/", 1_000_000, 500, tenant=failing)
    env = {**worker_env(services, pg_url_for(pg_schema), redis_url, sandbox, tmp_path),
           "CONNECTOR_XERO_TIMEOUT_SECONDS": str(TIMEOUT), "CONNECTOR_POLL_LEASE_SECONDS": "20"}
    logs = tmp_path / "logs"
    started = utcnow()
    with celery("beat", env, logs) as beat, celery("worker", env, logs, queues=("poll",)) as worker:
        slowest_healthy_poll(services, healthy, (beat, worker), -1)  # workers up, first syncs done: not timed
        slowest = []
        for cycle in range(CYCLES):
            slowest.append(slowest_healthy_poll(services, healthy, (beat, worker), cycle))
            time.sleep(ON_TIME)  # the misbehaving tenants keep failing and trying again in between
    assert max(slowest) <= ON_TIME, f"the last healthy poll of each cycle ended {slowest} s after falling due"
    assert polled_since(services, bad, started) == {}, "the misbehaving tenants never got through"
