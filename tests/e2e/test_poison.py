"""A poison message on real parts: a bill whose mapping kills its worker process every time (as the OOM
killer would on a huge bill). With late acks the broker hands it back after each death; the connector
counts the runs and holds the bill after three, while the tenant's other bills go on to Stampli."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from connector.domain.states import BillState
from connector.reporting import summarise
from connector.services.context import Services
from connector.services.map import BILL_HELD_CRASHED_WORKER
from connector.store.models import Bill, OperationalEvent
from sandbox.xero import XeroSandbox
from tests.conftest import pg_url_for
from tests.support.celery_procs import celery, wait_until
from tests.support.pipeline import invoice_ids_in_files, onboard, worker_env
from tests.support.sshd import Sshd

WORKER_DIED = "exited with 'exitcode 137'"  # logged once for each pool process that died mid-task


@pytest.fixture
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=29, tenants=1, bills=20) as running:
        yield running


def state_of(services: Services, invoice_id: str) -> str | None:
    with services.ledger.transaction() as session:
        return session.scalar(select(Bill.state).where(Bill.invoice_id == invoice_id))


def test_a_bill_that_kills_its_worker_is_held_after_three_runs_and_the_others_are_delivered(
    sandbox: XeroSandbox, services: Services, sshd: Sshd, import_dir: Path, pg_schema: str, redis_url: str,
    tmp_path: Path,
) -> None:
    onboard(services, sandbox, sshd.target(import_dir), cap=50)
    poison = next(b.invoice_id for b in sandbox.dataset.tenants[0].bills if b.status == "AUTHORISED")
    env = worker_env(services, pg_url_for(pg_schema), redis_url, sandbox, tmp_path)
    armed = {**env, "CONNECTOR_FAILPOINTS": f"map.decide.{poison}=exit*"}  # the process dies, as if killed
    logs = tmp_path / "logs"
    with celery("worker", armed, logs) as worker, celery("beat", env, logs) as beat:
        wait_until(lambda: state_of(services, poison) == BillState.HELD, 90, "the poison bill to be held",
                   (worker, beat), state=lambda: (state_of(services, poison), worker.output().count(WORKER_DIED)))
        wait_until(lambda: summarise(services.ledger).settled, 90, "the other bills to settle", (worker, beat),
                   state=lambda: summarise(services.ledger).by_state)
        # A duplicate of the message (the first sweep asks for everything) may die after the hold.
        wait_until(lambda: worker.output().count(WORKER_DIED) >= 3, 30, "the third run to die", (worker,))
        crashes = worker.output().count(WORKER_DIED)

    with services.ledger.transaction() as session:
        held = session.scalars(select(Bill).where(Bill.invoice_id == poison)).one()
        others = list(session.scalars(select(Bill).where(Bill.invoice_id != poison)))
        announced = list(session.scalars(select(OperationalEvent.message)
                                         .where(OperationalEvent.kind == BILL_HELD_CRASHED_WORKER)))
    assert held.reasons == [{"code": "crashed_worker", "runs": 3}]
    assert crashes == 3, "three runs, each ending with its worker process"
    [announcement] = announced
    assert poison in announcement
    assert all(b.reasons != held.reasons for b in others)
    delivered = {b.invoice_id for b in others if b.state == BillState.DELIVERED}
    assert delivered, "the tenant's other bills were not held up"
    in_files = invoice_ids_in_files(import_dir)
    assert sorted(in_files) == sorted(delivered)
    assert poison not in in_files
