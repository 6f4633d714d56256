"""A bill file that waits for an earlier master-data file is woken when that file lands; if the wake-up is
lost (the worker that delivered the earlier file was killed between its rename and sending the wake-up),
the waiting file still looks again by itself within seconds, not at the sweeper's next look; and if its
own re-look is lost too (the worker holding it was killed, or Redis emptied), the ledger says it is due
and the sweeper sends it.

Real parts: PostgreSQL, Redis, real Celery workers on the sftp queue (and a beat with the sweeper on a
poll worker where the test says so), sshd."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery
from sqlalchemy import select

from connector.services import batch, deliver
from connector.services.context import Services
from connector.services.messages import DeliverBatch
from connector.store.models import Batch
from sandbox.xero import XeroSandbox
from tests.conftest import pg_url_for
from tests.support.celery_procs import celery, start_celery, wait_until
from tests.support.pipeline import onboard, poll_and_map, with_master_data, worker_env
from tests.support.services import services_for_sandbox
from tests.support.sshd import Sshd


@pytest.fixture
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=11, tenants=1, bills=6) as running:
        yield running


@pytest.fixture
def services(sandbox: XeroSandbox, pg_schema: str, tmp_path: Path) -> Iterator[Services]:
    """The test's own cycle runs in process against the sandbox; the worker shares its ledger."""
    built = services_for_sandbox(sandbox, tmp_path, "postgresql", schema=pg_schema)
    yield built
    built.close()


def batch_state(services: Services, batch_id: int) -> str:
    with services.ledger.transaction() as session:
        return str(session.scalar(select(Batch.state).where(Batch.id == batch_id)))


def test_a_waiting_bill_file_goes_by_itself_when_the_wake_up_from_its_master_data_file_is_lost(
    sandbox: XeroSandbox, services: Services, sshd: Sshd, import_dir: Path, pg_schema: str, redis_url: str,
    tmp_path: Path,
) -> None:
    tenant_id = onboard(services, sandbox, sshd.target(import_dir))
    with_master_data(services, tenant_id)
    poll_and_map(services, tenant_id)
    staged = [m.batch_id for m in batch.assemble_batches(services, tenant_id) if isinstance(m, DeliverBatch)]
    *master_files, bill_file = staged
    assert master_files, "the tenant's master data makes files before the bill file"

    env = worker_env(services, pg_url_for(pg_schema), redis_url, sandbox, tmp_path)
    sender = Celery("waiting-files-test", broker=redis_url)
    with celery("worker", env, tmp_path / "logs", queues=("sftp",)) as worker:
        sender.send_task("connector.deliver_batch", args=[bill_file], queue="sftp")
        wait_until(lambda: "waits for" in worker.output(), 30, "the bill file to wait", (worker,))
        for master_file in master_files:  # delivered here, and their wake-ups dropped (never sent)
            assert deliver.deliver_batch(services, master_file).state == "DELIVERED"
        wait_until(lambda: batch_state(services, bill_file) == "DELIVERED", 20,
                   "the waiting bill file to go without its wake-up and without a sweeper", (worker,))
    with services.ledger.transaction() as session:
        name = session.scalar(select(Batch.name).where(Batch.id == bill_file))
    assert (import_dir / str(name)).is_file()


def test_a_waiting_bill_file_whose_wake_ups_are_all_lost_is_sent_by_the_sweeper_once_its_master_data_landed(
    sandbox: XeroSandbox, services: Services, sshd: Sshd, import_dir: Path, pg_schema: str, redis_url: str,
    tmp_path: Path,
) -> None:
    """The chaos run's stall: a waiting file is put off for WAIT_SECONDS (5 minutes) and counts on messages
    to be woken sooner. Its own re-look is held by the sftp worker until due (a countdown), so a SIGKILLed
    worker takes it along (Redis gives it back only after the visibility timeout, 2 hours); the wake-up
    from the file it waited for is lost with a Redis flush. The sweeper must then see it due."""
    tenant_id = onboard(services, sandbox, sshd.target(import_dir))
    with_master_data(services, tenant_id)
    poll_and_map(services, tenant_id)
    staged = [m.batch_id for m in batch.assemble_batches(services, tenant_id) if isinstance(m, DeliverBatch)]
    *master_files, bill_file = staged

    env = worker_env(services, pg_url_for(pg_schema), redis_url, sandbox, tmp_path)
    logs = tmp_path / "logs"
    sender = Celery("waiting-files-test", broker=redis_url)
    first = start_celery("worker", env, logs, queues=("sftp",))
    try:
        sender.send_task("connector.deliver_batch", args=[bill_file], queue="sftp")
        wait_until(lambda: "succeeded" in first.output() and "waits for" in first.output(), 30,
                   "the bill file to wait and ask to look again", (first,))
    finally:
        first.kill()  # its re-look dies with it
    for master_file in master_files:  # delivered here, and their wake-ups dropped (never sent)
        assert deliver.deliver_batch(services, master_file).state == "DELIVERED"
    with celery("worker", env, logs, queues=("sftp",)) as sftp, \
            celery("worker", env, logs, queues=("poll",)) as sweeper, celery("beat", env, logs) as beat:
        wait_until(lambda: batch_state(services, bill_file) == "DELIVERED", 30,
                   "the sweeper to send the bill file whose master data was delivered", (sftp, sweeper, beat),
                   state=lambda: when_due(services, bill_file))


def when_due(services: Services, batch_id: int) -> str:
    with services.ledger.transaction() as session:
        state, due, why = session.execute(select(Batch.state, Batch.next_attempt_at, Batch.last_error)
                                          .where(Batch.id == batch_id)).one()
    return f"{state}, next attempt at {due}: {why}"
