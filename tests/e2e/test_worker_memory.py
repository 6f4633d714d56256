"""A worker's memory does not grow with the size of a tenant: a task keeps none of the messages it sends.

A poll sends one map message per new bill of its tenant, and the sweeper one per bill it asks for again
(every unfinished bill after a broker loss). Celery remembers each message a task sends in the task's
request (an AsyncResult of about 1 KB in `request.children`, for result chains this product never uses)
until the task ends, so a first poll of 100,000 bills held 100,000 of them: its worker grew by about
100 MiB."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery

from connector.broker_epoch import REDIS_KEY
from connector.services.context import Services
from sandbox.xero import XeroSandbox
from tests.conftest import pg_url_for
from tests.support.celery_procs import celery, wait_until
from tests.support.pipeline import onboard, worker_env
from tests.support.sftp_fixtures import BundledSftp


@pytest.fixture
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=41, tenants=1, bills=120) as running:
        yield running


def test_a_poll_and_a_sweep_keep_none_of_the_messages_they_send(
    sandbox: XeroSandbox, services: Services, bundled_sftp: BundledSftp, pg_schema: str, redis_url: str,
    tmp_path: Path,
) -> None:
    onboard(services, sandbox, bundled_sftp.target())
    bills = len(sandbox.dataset.tenants[0].bills)
    env = {**worker_env(services, pg_url_for(pg_schema), redis_url, sandbox, tmp_path),
           "CONNECTOR_XERO_PAGE_SIZE": "40", "CONNECTOR_SWEEP_INTERVAL_SECONDS": "3600"}
    broker = redis.Redis.from_url(redis_url)
    logs = tmp_path / "logs"
    with celery("beat", env, logs) as beat, \
            celery("worker", env, logs, "-I", "tests.support.sent_trail", queues=("poll",)) as worker:
        # No map worker: the poll's map messages wait in the broker, one per bill.
        wait_until(lambda: broker.llen("map") >= bills, 120, "the poll's map messages", (worker, beat))
        wait_until(lambda: broker.get("test:ran:connector.poll_tenant"), 30, "the poll's end", (worker, beat))
        broker.delete("map", REDIS_KEY)  # the broker lost its messages: the sweep asks again
        Celery("worker-memory-test", broker=redis_url).send_task("connector.sweep", queue="poll")
        wait_until(lambda: broker.llen("map") >= bills, 120, "the sweep's map messages", (worker, beat))
        wait_until(lambda: broker.get("test:ran:connector.sweep"), 30, "the sweep's end", (worker, beat))
    held = [int(broker.get(f"test:trail:connector.{task}") or 0) for task in ("poll_tenant", "sweep")]
    assert held == [0, 0], "messages held by the poll and by the sweep until they ended"
