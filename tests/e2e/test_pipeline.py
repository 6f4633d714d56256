"""End to end on real parts: the Xero sandbox, PostgreSQL, Redis, real Celery worker and beat processes,
and a real OpenSSH sshd. Every eligible bill and supplier credit note lands in a file exactly once, with
its audit trail; a credit note applied to a bill not yet delivered follows it in a later file
of the cycle that delivers the bill."""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from connector.domain.credit_notes import REOPENED_BY_DELIVERY
from connector.domain.states import BillState
from connector.reporting import summarise
from connector.services.context import Services
from connector.store.models import Batch, Bill, BillTransition
from sandbox.xero import XeroSandbox
from tests.conftest import pg_url_for
from tests.support.celery_procs import celery, wait_until
from tests.support.pipeline import invoice_ids_in_files, last_polled, make_due, onboard, worker_env
from tests.support.sshd import Sshd


def document_types(folder: Path, names: set[str]) -> list[str]:
    """The DocumentType of every row of the named files."""
    found: list[str] = []
    for name in sorted(names):
        found += [row["DocumentType"] for row in csv.DictReader(io.StringIO((folder / name).read_text(
            encoding="utf-8"), newline=""))]
    return found


@pytest.fixture
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=7, tenants=1, bills=60) as running:
        yield running


def test_seeded_bills_and_credit_notes_reach_the_sftp_server_exactly_once_and_a_third_cycle_sends_nothing(
    sandbox: XeroSandbox, services: Services, sshd: Sshd, import_dir: Path, pg_schema: str, redis_url: str,
    tmp_path: Path,
) -> None:
    tenant_id = onboard(services, sandbox, sshd.target(import_dir), cap=20)
    key = sandbox.answer_key(tenant_id)
    likely_clean = [b.invoice_id for b in sandbox.dataset.tenant(tenant_id).bills
                    if b.status == "AUTHORISED" and len(key.get(b.invoice_id, [])) == 1][:5]
    for bill_id in likely_clean:  # credits applied to bills the first cycle will deliver: they must wait
        sandbox.add_credit_note(tenant_id, bill_id, fraction="0.25")
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
        second_poll = last_polled(services, tenant_id)

        make_due(services, tenant_id)
        wait_until(lambda: last_polled(services, tenant_id) != second_poll, 60, "a third poll", (worker, beat))
        wait_until(lambda: summarise(services.ledger).settled, 60, "the third cycle to settle", (worker, beat))
        third = summarise(services.ledger)

    # The first cycle delivers the bills, the credit notes whose bills Stampli had and, in later files of
    # the same cycle, the credit notes that waited for a bill it delivered (re-opened by that delivery);
    # the second only what was left waiting for the next poll; the third nothing.
    assert first.files
    assert all(state == "DELIVERED" for _, _, state in second.files)
    assert second.files[:len(first.files)] == first.files
    assert third.files == second.files, "the third cycle made a new file"
    delivered = third.by_state[BillState.DELIVERED]
    assert delivered > 0
    in_files = invoice_ids_in_files(import_dir)
    assert len(in_files) == delivered
    duplicates = [i for i, n in Counter(in_files).items() if n > 1]
    assert duplicates == [], "a bill or credit note was delivered twice"
    assert not list(import_dir.glob("*.part"))

    with services.ledger.transaction() as session:
        delivered_ids = set(session.scalars(select(Bill.invoice_id).where(Bill.state == BillState.DELIVERED)))
        credit_ids = set(session.scalars(select(Bill.invoice_id).where(Bill.document_type == "CREDIT_NOTE")))
        assert delivered_ids == set(in_files)
        waited = {t.invoice_id for t in session.scalars(select(BillTransition).where(
            BillTransition.from_state == BillState.HELD, BillTransition.to_state == BillState.DISCOVERED))
            if (t.reason or "").startswith(REOPENED_BY_DELIVERY)}
        trail = Counter(
            (t.invoice_id, t.to_state) for t in session.scalars(select(BillTransition))
            if t.invoice_id in delivered_ids
        )
    assert waited, "no credit note waited for its bill"
    assert waited <= delivered_ids, "a waiting credit note did not follow its bill"
    assert waited <= credit_ids
    assert delivered_ids & credit_ids - waited, "no credit note went in the first cycle"
    later_files = {name for name, _, _ in second.files[len(first.files):]}
    for invoice_id in delivered_ids:
        discovered = 2 if invoice_id in waited else 1  # held waiting, then re-opened once its bill went
        assert trail[(invoice_id, BillState.DISCOVERED)] == discovered, invoice_id
        for state in (BillState.READY, BillState.BATCHED, BillState.DELIVERED):
            assert trail[(invoice_id, state)] == 1, (invoice_id, state)
    assert set(document_types(import_dir, later_files)) <= {"CREDIT_NOTE"}
    expected_ready = {i for i, pos in sandbox.answer_key(tenant_id).items() if pos} & delivered_ids
    assert expected_ready, "no bill with a known PO was delivered"


@pytest.fixture
def larger_sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=7, tenants=1, bills=1000) as running:
        yield running


def test_a_large_first_sync_delivers_full_files_while_its_bills_are_still_mapping_each_bill_once(
    larger_sandbox: XeroSandbox, services: Services, sshd: Sshd, import_dir: Path, pg_schema: str, redis_url: str,
    tmp_path: Path,
) -> None:
    """Files are asked for every FULL_FILE_ASK_EVERY bills mapped, so the first files reach Stampli before
    the last bill of the first sync is mapped, instead of every file after it; no bill goes twice."""
    onboard(services, larger_sandbox, sshd.target(import_dir), cap=50)
    env = worker_env(services, pg_url_for(pg_schema), redis_url, larger_sandbox, tmp_path)
    for name in ("CONNECTOR_SWEEP_INTERVAL_SECONDS", "CONNECTOR_SWEEP_STALE_SECONDS"):
        env.pop(name)  # the operator's defaults: the sweeper's look for READY bills in no file is not what sends them
    with celery("worker", env, tmp_path / "logs") as worker, celery("beat", env, tmp_path / "logs") as beat:
        wait_until(lambda: summarise(services.ledger).settled, 300, "the first sync to settle", (worker, beat))

    with services.ledger.transaction() as session:
        bills = select(Bill.invoice_id).where(Bill.document_type == "BILL").scalar_subquery()
        last_mapped = session.scalar(select(func.max(BillTransition.at)).where(
            BillTransition.from_state == BillState.DISCOVERED, BillTransition.invoice_id.in_(bills)))
        delivered_before = session.scalar(select(func.count()).select_from(Batch).where(
            Batch.kind == "bills", Batch.delivered_at < last_mapped))
        delivered_ids = set(session.scalars(select(Bill.invoice_id).where(Bill.state == BillState.DELIVERED)))
    assert delivered_before, "no file reached Stampli before the last bill was mapped"
    in_files = invoice_ids_in_files(import_dir)
    assert [i for i, n in Counter(in_files).items() if n > 1] == [], "a bill was delivered twice"
    assert set(in_files) == delivered_ids
    assert len(delivered_ids) > 500
