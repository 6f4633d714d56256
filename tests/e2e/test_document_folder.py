"""End to end with real worker and beat processes, PostgreSQL, Redis and OpenSSH: with the template's
`documents: {layout: folder}`, each supplier document lands once as its own file in a folder named after
the batch, beside the data file, with the sandbox's exact bytes; the data file names each bill's files
relative to itself, and its rename is the batch's commit point: a worker killed mid-upload leaves no data
file in the folder, and the redelivery ends with each document once and the data file last."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from connector.domain.states import BillState
from connector.reporting import summarise
from connector.services.context import Services
from connector.store.models import Bill
from sandbox.xero import XeroSandbox
from sandbox.xero.attachments import content
from tests.conftest import pg_url_for
from tests.support.celery_procs import celery, wait_until
from tests.support.pipeline import delivered_folder, onboard, sandbox_documents, with_documents, worker_env
from tests.support.sshd import Sshd

#: Six bills, four or more of them going with documents (a PDF beside a delivery-note photo, a file named
#: `..\..\etc\passwd ...pdf`).
SEED, BILLS = 11, 6


@pytest.fixture
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=SEED, tenants=1, bills=BILLS) as running:
        yield running


def delivered_bills(services: Services) -> set[str]:
    with services.ledger.transaction() as session:
        return set(session.scalars(select(Bill.invoice_id).where(Bill.state == BillState.DELIVERED)))


def assert_each_document_once(sandbox: XeroSandbox, tenant_id: str, delivered: set[str], import_dir: Path) -> None:
    """Bills' and supplier credit notes' documents alike: each once, named relative to its data file."""
    documents = sandbox_documents(sandbox, tenant_id)
    named, stored, data_files = delivered_folder(import_dir)
    assert data_files
    assert not list(import_dir.rglob("*.part")), "a partial upload was left behind"
    assert not list(import_dir.glob("*.zip"))
    carrying = {i for i in delivered if documents.get(i)}
    assert len(carrying) >= 4, "too few delivered bills with documents to prove anything"
    credit_notes = {n.credit_note_id for n in sandbox.dataset.tenant(tenant_id).credit_notes}
    assert carrying & credit_notes, "no delivered credit note with documents"
    seen: Counter[tuple[str, str]] = Counter()
    for invoice_id in carrying:
        expected = documents[invoice_id]
        data_file, names = named[invoice_id]
        assert len(names) == len(expected), invoice_id
        for name, attachment in zip(names, expected, strict=True):
            assert name.startswith(f"{data_file.stem}/{invoice_id}/"), "named relative to its data file"
            assert hashlib.sha256(stored[name]).hexdigest() == hashlib.sha256(content(attachment)).hexdigest()
            seen[(invoice_id, hashlib.sha256(stored[name]).hexdigest())] += 1
    assert len(stored) == sum(len(documents[i]) for i in carrying), "a document went twice, or a stray"
    assert len(set(stored)) == len(stored)
    assert all(len(set(names)) == len(names) for _, names in named.values()), "two files under one name"
    assert all(".." not in part for name in stored for part in name.split("/")[1:])
    for path in data_files:  # the commit point comes last: every document is in place before its data file
        folder = import_dir / path.stem
        if folder.is_dir():
            newest = max(p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file())
            assert path.stat().st_mtime_ns >= newest


def test_each_document_lands_once_in_the_batchs_folder_beside_its_data_file_with_the_sandboxs_bytes(
    sandbox: XeroSandbox, services: Services, sshd: Sshd, import_dir: Path, pg_schema: str, redis_url: str,
    tmp_path: Path,
) -> None:
    tenant_id = onboard(services, sandbox, sshd.target(import_dir))
    with_documents(services, tenant_id, "folder")
    env = worker_env(services, pg_url_for(pg_schema), redis_url, sandbox, tmp_path)
    with celery("worker", env, tmp_path / "logs") as worker, celery("beat", env, tmp_path / "logs") as beat:
        wait_until(lambda: summarise(services.ledger).settled, 60, "the first cycle to settle", (worker, beat))
    assert_each_document_once(sandbox, tenant_id, delivered_bills(services), import_dir)


def test_a_worker_killed_mid_upload_leaves_no_data_file_and_the_redelivery_sends_each_document_once(
    sandbox: XeroSandbox, services: Services, sshd: Sshd, import_dir: Path, pg_schema: str, redis_url: str,
    tmp_path: Path,
) -> None:
    tenant_id = onboard(services, sandbox, sshd.target(import_dir))
    with_documents(services, tenant_id, "folder")
    env = worker_env(services, pg_url_for(pg_schema), redis_url, sandbox, tmp_path)
    env.update(CONNECTOR_DELIVERY_LEASE_SECONDS="11.5", CONNECTOR_SFTP_TIME_LIMIT_SECONDS="4",
               CONNECTOR_SFTP_TIMEOUT_SECONDS="1")  # a short lease: the redelivery comes soon after the kill
    logs = tmp_path / "logs"
    # The sftp worker dies as its second document is written as `.part`, just before that one's rename.
    armed_points = {"CONNECTOR_FAILPOINTS": "deliver.document_before_rename=exit@2"}
    with celery("worker", env, logs, queues=("poll", "map", "batch")) as worker, celery("beat", env, logs) as beat:
        with celery("worker", env, logs, queues=("sftp",), env_override=armed_points) as armed:
            wait_until(lambda: "failpoint deliver.document_before_rename" in armed.output(), 40,
                       "the sftp worker to die mid-upload", (worker, beat))
            armed.kill()  # its pool already lost the child; the master would only take the redelivery
        parts = list(import_dir.rglob("*.part"))
        assert parts, "killed with a document half uploaded"
        assert all(p.parent != import_dir for p in parts)
        assert not list(import_dir.glob("*.csv")), "Stampli saw a bill whose document was still uploading"
        assert len([p for p in import_dir.rglob("*") if p.is_file() and not p.name.endswith(".part")]) == 1
        with celery("worker", env, logs, queues=("sftp",)) as sftp:
            wait_until(lambda: summarise(services.ledger).settled, 60, "the redelivery after the kill",
                       (worker, beat, sftp))
    assert_each_document_once(sandbox, tenant_id, delivered_bills(services), import_dir)
