"""End to end with real worker and beat processes, PostgreSQL, Redis and OpenSSH: the suppliers' documents
land once each inside their batch's ZIP with the sandbox's exact bytes, and a document the sandbox fails
to serve holds only its own bill, with the reason."""

from __future__ import annotations

import hashlib
import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from connector.config.loader import MappingSetData
from connector.domain.states import BillState
from connector.reporting import summarise
from connector.services.context import Services
from connector.services.mappings import current, import_mapping_set
from connector.store.models import Bill
from sandbox.xero import XeroSandbox
from sandbox.xero.attachments import content
from tests.conftest import pg_url_for
from tests.support.celery_procs import celery, wait_until
from tests.support.pipeline import onboard, sandbox_documents, worker_env
from tests.support.sshd import Sshd


@pytest.fixture
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=7, tenants=1, bills=60) as running:
        yield running


def test_documents_land_once_in_their_batch_zip_and_a_failing_one_holds_only_its_bill(
    sandbox: XeroSandbox, services: Services, sshd: Sshd, import_dir: Path, pg_schema: str, redis_url: str,
    tmp_path: Path,
) -> None:
    tenant_id = onboard(services, sandbox, sshd.target(import_dir), cap=20)
    with services.ledger.transaction() as session:
        _, in_force = current(session, tenant_id)
    import_mapping_set(services.ledger, tenant_id, MappingSetData(
        settings={**in_force.settings, "attachments": {"mode": "all"}}, gl=in_force.gl,
        tracking=in_force.tracking), actor="test")
    key = sandbox.answer_key(tenant_id)
    bills = {b.invoice_id: b for b in sandbox.dataset.tenant(tenant_id).bills}
    victim = next(b for b in bills.values() if b.attachments and b.status == "AUTHORISED"
                  and len(key.get(b.invoice_id, [])) == 1)
    sandbox.faults.fail_next(f"/api.xro/2.0/Invoices/{victim.invoice_id}/Attachments/"
                             f"{victim.attachments[0].attachment_id}", 1000, 503)
    env = worker_env(services, pg_url_for(pg_schema), redis_url, sandbox, tmp_path)
    with celery("worker", env, tmp_path / "logs") as worker, celery("beat", env, tmp_path / "logs") as beat:
        wait_until(lambda: summarise(services.ledger).settled, 150, "the first cycle to settle", (worker, beat))

    with services.ledger.transaction() as session:
        ledger = {b.invoice_id: (str(b.state), list(b.reasons)) for b in session.scalars(select(Bill))}
    state, reasons = ledger[victim.invoice_id]
    assert state == BillState.HELD
    assert [r["code"] for r in reasons] == ["attachment_unavailable"]
    assert "HTTP 503" in reasons[0]["problem"]

    documents = sandbox_documents(sandbox, tenant_id)  # bills' and credit notes' alike
    delivered = {i for i, (s, _) in ledger.items() if s == BillState.DELIVERED and i in documents}
    carrying = {i for i in delivered if documents[i]}
    assert carrying
    archives = sorted(import_dir.glob("*.zip"))
    assert archives
    assert not list(import_dir.glob("*.part"))
    seen: Counter[tuple[str, str]] = Counter()
    for path in archives:
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if name.startswith("documents/"):
                    owner = name.split("/")[1]
                    digest = hashlib.sha256(archive.read(name)).hexdigest()
                    assert digest in {hashlib.sha256(content(a)).hexdigest() for a in documents[owner]}
                    seen[(owner, digest)] += 1
    assert set(seen.values()) == {1}, "a document was delivered twice"
    assert sum(seen.values()) == sum(len(documents[i]) for i in carrying)
    assert victim.invoice_id not in {n.split("/")[1] for p in archives for n in zipfile.ZipFile(p).namelist()
                                     if n.startswith("documents/")}


def test_a_delivery_killed_between_its_zip_rename_and_its_record_still_sends_each_document_once(
    sandbox: XeroSandbox, services: Services, sshd: Sshd, import_dir: Path, pg_schema: str, redis_url: str,
    tmp_path: Path,
) -> None:
    tenant_id = onboard(services, sandbox, sshd.target(import_dir), cap=20)
    with services.ledger.transaction() as session:
        _, in_force = current(session, tenant_id)
    import_mapping_set(services.ledger, tenant_id, MappingSetData(
        settings={**in_force.settings, "attachments": {"mode": "all"}}, gl=in_force.gl,
        tracking=in_force.tracking), actor="test")
    env = worker_env(services, pg_url_for(pg_schema), redis_url, sandbox, tmp_path)
    env.update(CONNECTOR_DELIVERY_LEASE_SECONDS="15", CONNECTOR_SFTP_TIME_LIMIT_SECONDS="5",
               CONNECTOR_SFTP_TIMEOUT_SECONDS="2")
    logs = tmp_path / "logs"

    def a_zip_landed() -> bool:
        return any(import_dir.glob("*.zip"))

    with celery("worker", env, logs, queues=("poll", "map", "batch")) as worker, celery("beat", env, logs) as beat:
        with celery("worker", env, logs, queues=("sftp",),
                    env_override={"CONNECTOR_FAILPOINTS": "deliver.after_rename"}) as armed:
            wait_until(a_zip_landed, 90, "a ZIP renamed into place by a worker that then dies", (worker, beat))
        with celery("worker", env, logs, queues=("sftp",)) as sftp:
            wait_until(lambda: summarise(services.ledger).settled, 150, "recovery after the kill",
                       (worker, beat, sftp))
    assert armed.role
    documents = sandbox_documents(sandbox, tenant_id)
    with services.ledger.transaction() as session:
        delivered = set(session.scalars(select(Bill.invoice_id).where(Bill.state == BillState.DELIVERED)))
    seen: Counter[tuple[str, str]] = Counter()
    for path in sorted(import_dir.glob("*.zip")):
        with zipfile.ZipFile(path) as archive:
            assert archive.testzip() is None
            for name in archive.namelist():
                if name.startswith("documents/"):
                    seen[(name.split("/")[1], hashlib.sha256(archive.read(name)).hexdigest())] += 1
    assert seen
    assert set(seen.values()) == {1}, "a document was delivered twice"
    assert {(i, hashlib.sha256(content(a)).hexdigest()) for i in delivered if i in documents
            for a in documents[i]} == set(seen)
    assert not list(import_dir.glob("*.part"))
