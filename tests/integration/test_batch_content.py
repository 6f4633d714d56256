"""A batch's stored bytes read back in pieces (so a worker never pays the driver's six-fold cost of a large
bytea read whole) are exactly the bytes stored, on both databases, at and around the piece boundaries."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

import pytest
from sqlalchemy import update

from connector.services.context import Services
from connector.store import batches
from connector.store.batches import CONTENT_PIECE
from connector.store.models import Batch
from sandbox.xero import XeroSandbox
from tests.support.pipeline import staged_batch
from tests.support.sftp_fixtures import BundledSftp


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
