"""An assemble that keeps losing the race for a file (other assembles of the tenant taking the sequence number
or the same bills, as early full-file assembles do beside the last mapping's) gives up as a retryable error,
so its task tries again in a second instead of failing and leaving the READY bills to the sweeper's stale
look minutes later; and nothing it tried is left half made."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from connector.domain.states import BillState
from connector.errors import RetryableError
from connector.services import batch
from connector.services.context import Services
from connector.services.messages import DeliverBatch
from connector.store.models import Batch, Bill
from sandbox.xero import XeroSandbox
from tests.support.pipeline import onboard, poll_and_map
from tests.support.sftp_fixtures import BundledSftp


@pytest.fixture
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=7, tenants=1, bills=5) as running:
        yield running


def test_an_assemble_that_keeps_losing_the_race_is_retried_and_leaves_its_bills_ready(
    services_on_both_databases: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    services = services_on_both_databases
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    poll_and_map(services, tenant_id)
    real_claim = batch._claim_one
    tries = 0

    def always_beaten(*args: object, **kwargs: object) -> int | None:
        nonlocal tries
        tries += 1
        raise batch._LostRace()

    monkeypatch.setattr(batch, "_claim_one", always_beaten)
    with pytest.raises(RetryableError):
        batch.assemble_batches(services, tenant_id)
    assert tries == batch.MAX_SEQUENCE_RACES + 1
    with services.ledger.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Batch)) == 0
        ready = session.scalar(select(func.count()).select_from(Bill).where(Bill.state == BillState.READY))
    assert ready
    monkeypatch.setattr(batch, "_claim_one", real_claim)
    sent = batch.assemble_batches(services, tenant_id)  # the retry
    assert [type(m) for m in sent] == [DeliverBatch]
