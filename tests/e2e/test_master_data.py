"""Master data end to end on real parts (the Xero sandbox, PostgreSQL, Redis, real Celery worker and beat,
OpenSSH sshd): after onboarding one file per kind lands before the first bill file, a PO edited in Xero is
sent again with its change and nothing else is, and a re-run sends nothing."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from connector.domain.delivery import AttemptOutcome
from connector.domain.masterdata import MASTER_KINDS
from connector.reporting import summarise
from connector.services.context import Services
from connector.store.models import Batch, DeliveryAttempt, MasterDataTransition
from sandbox.xero import XeroSandbox
from tests.conftest import pg_url_for
from tests.support.celery_procs import CeleryProcess, celery, wait_until
from tests.support.pipeline import last_polled, make_due, onboard, with_master_data, worker_env
from tests.support.sshd import Sshd


@pytest.fixture
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=9, tenants=1, bills=30) as running:
        yield running


def files(services: Services) -> list[tuple[int, str, str, str, int]]:
    with services.ledger.transaction() as session:
        return [(b.sequence, b.kind, b.name, b.state, b.bill_count)
                for b in session.scalars(select(Batch).order_by(Batch.sequence))]


def assembles_done(worker: CeleryProcess) -> int:
    """How many assemble_batch tasks the worker has finished (its log says each)."""
    return len(re.findall(r"Task connector\.assemble_batch\[[0-9a-f-]+\] succeeded", worker.output()))


def all_delivered(services: Services) -> bool:
    made = files(services)
    return bool(made) and all(state == "DELIVERED" for *_, state, _ in made) and summarise(services.ledger).settled


def test_master_data_lands_before_the_first_bill_file_then_only_what_changed(
    sandbox: XeroSandbox, services: Services, sshd: Sshd, import_dir: Path, pg_schema: str, redis_url: str,
    tmp_path: Path,
) -> None:
    tenant_id = onboard(services, sandbox, sshd.target(import_dir))
    with_master_data(services, tenant_id)
    env = worker_env(services, pg_url_for(pg_schema), redis_url, sandbox, tmp_path)
    with celery("worker", env, tmp_path / "logs") as worker, celery("beat", env, tmp_path / "logs") as beat:
        wait_until(lambda: all_delivered(services), 120, "the first cycle to settle", (worker, beat))
        first = files(services)
        order = next(po for po in sandbox.dataset.tenant(tenant_id).purchase_orders if po.number == "PO-0001")
        sandbox.edit_purchase_order(tenant_id, order.purchase_order_id, status="BILLED")
        polled = last_polled(services, tenant_id)
        make_due(services, tenant_id)
        wait_until(lambda: any(kind == "purchase_orders" for _, kind, *_ in files(services)[len(first):])
                   and all_delivered(services), 60, "the edited PO to be delivered", (worker, beat))
        edited = files(services)
        polled = last_polled(services, tenant_id)
        assembled = assembles_done(worker)
        make_due(services, tenant_id)  # a re-run: nothing changed in Xero
        wait_until(lambda: last_polled(services, tenant_id) != polled, 60, "another poll", (worker, beat))
        wait_until(lambda: assembles_done(worker) > assembled, 60, "the assemble the poll asked for", (worker, beat))
        wait_until(lambda: all_delivered(services), 60, "the cycle to settle", (worker, beat))
        final = files(services)

    kinds = [kind for _, kind, *_ in first]
    assert kinds[:4] == list(MASTER_KINDS)
    assert kinds[4:]
    assert set(kinds[4:]) == {"bills"}
    landed = {name: (import_dir / name).stat().st_mtime_ns for _, _, name, *_ in first}
    first_bill = min(landed[name] for _, kind, name, *_ in first if kind == "bills")
    assert all(landed[name] <= first_bill for _, kind, name, *_ in first if kind != "bills")
    with services.ledger.transaction() as session:
        delivered_at = dict(session.execute(select(Batch.name, Batch.delivered_at)).all())
    assert max(delivered_at[n] for _, k, n, *_ in first if k != "bills") <= min(
        delivered_at[n] for _, k, n, *_ in first if k == "bills")
    assert final == edited, "a re-run sent something"
    # (the second cycle also sends the credit notes that waited for a bill of the first: bill files)
    [(_, kind, name, _, records)] = [f for f in final[len(first):] if f[1] != "bills"]
    assert (kind, records) == ("purchase_orders", 1)
    rows = list(csv.DictReader(io.StringIO((import_dir / name).read_text(encoding="utf-8"), newline="")))
    assert {(row["XeroPurchaseOrderID"], row["Status"]) for row in rows} == {(order.purchase_order_id, "BILLED")}
    assert len(rows) == len(order.lines)
    assert not list(import_dir.glob("*.part"))


def test_a_worker_killed_between_a_master_data_rename_and_its_record_still_sends_each_record_once(
    sandbox: XeroSandbox, services: Services, sshd: Sshd, import_dir: Path, pg_schema: str, redis_url: str,
    tmp_path: Path,
) -> None:
    tenant_id = onboard(services, sandbox, sshd.target(import_dir))
    with_master_data(services, tenant_id)
    env = worker_env(services, pg_url_for(pg_schema), redis_url, sandbox, tmp_path)
    env.update(CONNECTOR_DELIVERY_LEASE_SECONDS="15", CONNECTOR_SFTP_TIME_LIMIT_SECONDS="5",
               CONNECTOR_SFTP_TIMEOUT_SECONDS="2")
    logs = tmp_path / "logs"

    def killed_file() -> str | None:
        """The file whose delivery died after its rename (any kind: vendors, accounts and dimensions race)."""
        with services.ledger.transaction() as session:
            return session.scalar(select(Batch.name).join(DeliveryAttempt, DeliveryAttempt.batch_id == Batch.id)
                                  .where(DeliveryAttempt.outcome == AttemptOutcome.COMMITTING).limit(1))

    def committing() -> bool:
        return killed_file() is not None

    def died_at_failpoint(armed: CeleryProcess) -> bool:
        return "failpoint deliver.after_rename: the process dies here" in armed.output()

    with celery("worker", env, logs, queues=("poll", "map", "batch")) as worker, celery("beat", env, logs) as beat:
        with celery("worker", env, logs, queues=("sftp",),
                    env_override={"CONNECTOR_FAILPOINTS": "deliver.after_rename"}) as armed:
            # The failpoint's own line, not the COMMITTING record: that is written at the fence, before the
            # rename, so seeing it says nothing about whether the file is in place yet.
            wait_until(lambda: died_at_failpoint(armed) and committing(), 60,
                       "a delivery to die between its rename and its record", (worker, beat))
            armed.shut_down()  # the other child's delivery in flight finishes (or dies at the failpoint too)
        killed = killed_file()
        assert killed is not None
        assert (import_dir / killed).exists(), "the killed delivery's file was renamed into place"
        with celery("worker", env, logs, queues=("sftp",)) as sftp:
            wait_until(lambda: all_delivered(services), 120, "recovery after the kill", (worker, beat, sftp))
    assert armed.role
    made = files(services)
    assert [kind for _, kind, *_ in made][:4] == list(MASTER_KINDS)
    vendor_rows = [row for _, kind, name, *_ in made if kind == "vendors"
                   for row in csv.DictReader(io.StringIO((import_dir / name).read_text(encoding="utf-8"), newline=""))]
    ids = [row["XeroVendorID"] for row in vendor_rows]
    assert len(ids) == len(set(ids)) > 0, "a vendor was sent twice"
    with services.ledger.transaction() as session:
        trail = Counter((t.record_key, t.to_state) for t in session.scalars(select(MasterDataTransition)))
    for vendor in ids:
        assert (trail[(vendor, "BATCHED")], trail[(vendor, "DELIVERED")]) == (1, 1), vendor
    assert not list(import_dir.glob("*.part"))
