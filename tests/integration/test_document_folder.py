"""The `folder` layout in process (bundled SFTP server): which document goes where is fixed when the batch
is rendered, a foreign file under one of its names is never overwritten (the batch fails before its data
file goes), and a replay sends the same bytes under the same names; `bills show` names each document's
path beside the data file."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from connector.domain.states import BatchState, BillState
from connector.services import batch, deliver
from connector.services.context import Services
from connector.services.history import bill_views, replay_file
from connector.store.models import Batch, BatchDocument
from sandbox.xero import XeroSandbox
from sandbox.xero.attachments import content
from tests.support.pipeline import (
    delivered_folder,
    delivered_ids,
    onboard,
    poll_and_map,
    sandbox_documents,
    with_documents,
)
from tests.support.sftp_fixtures import BundledSftp


@pytest.fixture
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=11, tenants=1, bills=6) as running:
        yield running


def test_a_foreign_file_under_a_documents_name_fails_the_batch_before_its_data_file_and_a_replay_sends_the_same(
    services: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    with_documents(services, tenant_id, "folder")
    poll_and_map(services, tenant_id)
    messages = batch.assemble_batches(services, tenant_id)
    with services.ledger.transaction() as session:
        [file] = session.scalars(select(Batch).where(Batch.kind == "bills")).all()
        placed = [(d.path, d.invoice_id, d.sha256) for d in session.scalars(
            select(BatchDocument).where(BatchDocument.batch_id == file.id).order_by(BatchDocument.position))]
        name, batch_id = file.name, file.id
    assert len(placed) >= 5
    folder = name.rsplit(".", 1)[0]
    assert all(path.startswith(f"{folder}/{invoice_id}/") for path, invoice_id, _ in placed)

    import_dir = bundled_sftp.server.local_path(bundled_sftp.import_dir)
    foreign = import_dir / placed[-1][0]
    foreign.parent.mkdir(parents=True)
    foreign.write_bytes(b"someone else's file")
    for message in messages:  # master-data files first, then the bills' file
        deliver.deliver_batch(services, message.batch_id)  # type: ignore[attr-defined]
    with services.ledger.transaction() as session:
        failed = session.get_one(Batch, batch_id)
        assert failed.state == BatchState.FAILED
        assert "never overwritten" in (failed.last_error or "")
    assert not (import_dir / name).exists(), "the data file went while a document of it could not"
    assert foreign.read_bytes() == b"someone else's file"

    foreign.unlink()  # the receiver removed it; a person replays the file
    report = replay_file(services, name, actor="ops")
    assert report.state == BatchState.DELIVERED
    documents = sandbox_documents(sandbox, tenant_id)  # bills' and credit notes' alike
    named, stored, data_files = delivered_folder(import_dir)
    assert [p.name for p in data_files] == [name]
    assert sorted(stored) == sorted(path for path, _, _ in placed), "the same names as rendered"
    for path, invoice_id, sha256 in placed:
        assert hashlib.sha256(stored[path]).hexdigest() == sha256
        assert path in named[invoice_id][1]
        assert sha256 in {hashlib.sha256(content(a)).hexdigest() for a in documents[invoice_id]}
    assert not list(Path(import_dir).rglob("*.part"))

    invoice_id = placed[0][1]
    assert invoice_id in delivered_ids(services)
    [view] = bill_views(services.ledger, invoice_id)
    assert view["state"] == BillState.DELIVERED
    assert [(d["path"], d["file"]) for d in view["documents"]] == [
        (path, name) for path, owner, _ in placed if owner == invoice_id]
