"""A batch's stored bytes read back in pieces (so a worker never pays the driver's six-fold cost of a large
bytea read whole) are exactly the bytes stored, on both databases, at and around the piece boundaries; and
a delivery stages and uploads a file as large as the document budget in those pieces, never holding it
whole, byte for byte the file stored."""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update

from connector.services import deliver
from connector.services.context import Services
from connector.stampli import SIDECAR_SUFFIX
from connector.store import batches
from connector.store.batches import CONTENT_PIECE
from connector.store.models import Batch
from sandbox.xero import XeroSandbox
from tests.support.pipeline import staged_batch
from tests.support.sftp_fixtures import BundledSftp
from tests.support.sshd import Sshd


@pytest.fixture
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=7, tenants=1, bills=5) as running:
        yield running


@pytest.mark.parametrize("size", [0, 1, CONTENT_PIECE - 1, CONTENT_PIECE, CONTENT_PIECE + 1, 3 * CONTENT_PIECE + 7])
def test_a_batchs_bytes_read_in_pieces_are_the_bytes_stored(
    services_on_both_databases: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp, size: int,
) -> None:
    services = services_on_both_databases
    batch_id, _ = staged_batch(services, sandbox, bundled_sftp.target())
    content = os.urandom(size)
    with services.ledger.transaction() as session:
        session.execute(update(Batch).where(Batch.id == batch_id).values(content=content))
    with services.ledger.transaction() as session:
        read = batches.content_of(session, batch_id)
    assert hashlib.sha256(read).hexdigest() == hashlib.sha256(content).hexdigest()
    assert len(read) == size


def test_a_file_as_large_as_the_document_budget_is_staged_and_uploaded_in_pieces_never_held_whole(
    services_on_both_databases: Services, sandbox: XeroSandbox, sshd: Sshd, import_dir: Path,
) -> None:
    services = services_on_both_databases
    batch_id, name = staged_batch(services, sandbox, sshd.target(import_dir))
    content = os.urandom(services.settings.max_file_document_bytes)  # a ZIP of documents at the budget
    sha256 = hashlib.sha256(content).hexdigest()
    with services.ledger.transaction() as session:
        session.execute(update(Batch).where(Batch.id == batch_id).values(content=content, sha256=sha256,
                                                                          sidecar=True))
    tracemalloc.start()
    try:
        report = deliver.deliver_batch(services, batch_id)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (report.state, report.uploaded) == ("DELIVERED", True)
    sent = import_dir / name
    assert hashlib.sha256(sent.read_bytes()).hexdigest() == sha256
    assert (import_dir / (name + SIDECAR_SUFFIX)).read_text() == f"{sha256}  {name}\n"
    [staged] = services.settings.staging_dir.glob(f"*/{name}")
    assert hashlib.sha256(staged.read_bytes()).hexdigest() == sha256
    # A few pieces of 1 MiB at a time (4.4 MiB measured), never the file: 32 MiB when it was read whole.
    assert peak < len(content) / 2, f"the delivery held {peak / 2**20:.1f} MiB at its peak for a 16 MiB file"
