"""End to end on real parts: the Xero sandbox, PostgreSQL, Redis, real Celery worker and beat processes,
and a real OpenSSH sshd. Every eligible bill lands in a file exactly once, with its audit trail."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from connector.domain.states import BillState
from connector.reporting import summarise
from connector.services.context import Services
from connector.store.models import Bill, BillTransition
from sandbox.xero import XeroSandbox
from tests.conftest import pg_url_for
from tests.support.celery_procs import celery, wait_until
from tests.support.pipeline import invoice_ids_in_files, last_polled, make_due, onboard, worker_env
from tests.support.sshd import Sshd


@pytest.fixture
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=7, tenants=1, bills=60) as running:
        yield running


def test_seeded_bills_reach_the_sftp_server_exactly_once_and_a_second_cycle_sends_nothing(
    sandbox: XeroSandbox, services: Services, sshd: Sshd, import_dir: Path, pg_schema: str, redis_url: str,
    tmp_path: Path,
) -> None:
    tenant_id = onboard(services, sandbox, sshd.target(import_dir), cap=20)
    env = worker_env(services, pg_url_for(pg_schema), redis_url, sandbox, tmp_path)
    probes = tmp_path / "probes"
    env["CONNECTOR_PROBE_DIR"] = str(probes)
    with celery("worker", env, tmp_path / "logs") as worker, celery("beat", env, tmp_path / "logs") as beat:
        wait_until(lambda: summarise(services.ledger).settled, 120, "the first cycle to settle", (worker, beat))
        assert (probes / "celery-ready").exists()
        touched = (probes / "celery-alive").stat().st_mtime
        wait_until(lambda: (probes / "celery-alive").stat().st_mtime > touched, 10, "a heartbeat", (worker,))
        first = summarise(services.ledger)
        first_poll = last_polled(services, tenant_id)

        make_due(services, tenant_id)
        wait_until(lambda: last_polled(services, tenant_id) != first_poll, 60, "a second poll", (worker, beat))
        wait_until(lambda: summarise(services.ledger).settled, 60, "the second cycle to settle", (worker, beat))
        second = summarise(services.ledger)

    delivered = first.by_state[BillState.DELIVERED]
    assert delivered > 0
    assert first.files
    assert all(state == "DELIVERED" for _, _, state in first.files)
    in_files = invoice_ids_in_files(import_dir)
    assert len(in_files) == delivered
    duplicates = [i for i, n in Counter(in_files).items() if n > 1]
    assert duplicates == [], "a bill was delivered twice"
    assert second.files == first.files, "the second cycle made a new file"
    assert sorted(invoice_ids_in_files(import_dir)) == sorted(in_files)
    assert not list(import_dir.glob("*.part"))

    with services.ledger.transaction() as session:
        delivered_ids = set(session.scalars(select(Bill.invoice_id).where(Bill.state == BillState.DELIVERED)))
        assert delivered_ids == set(in_files)
        trail = Counter(
            (t.invoice_id, t.to_state) for t in session.scalars(select(BillTransition))
            if t.invoice_id in delivered_ids
        )
    for invoice_id in delivered_ids:
        for state in (BillState.DISCOVERED, BillState.READY, BillState.BATCHED, BillState.DELIVERED):
            assert trail[(invoice_id, state)] == 1, (invoice_id, state)
    expected_ready = {i for i, pos in sandbox.answer_key(tenant_id).items() if pos} & delivered_ids
    assert expected_ready, "no bill with a known PO was delivered"
