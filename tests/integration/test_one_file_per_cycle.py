"""One bill file per cycle, even when the tenant sends master data: the poll's own request for a batch (made
so a cycle with no bill to map still sends its master-data changes) makes master-data files only, and the
bills go in one file once the last of them is mapped. Workers run messages in any order; here the poll's
request is handled while half the bills are mapped, as a busy worker pool does."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connector.domain.masterdata import Kind
from connector.services import batch, map, poll
from connector.services.context import Services
from connector.services.messages import AssembleBatch, DeliverBatch, MapInvoice, Message
from connector.store.batches import batch as stored_batch
from sandbox.xero import XeroSandbox
from tests.support.pipeline import onboard, with_master_data
from tests.support.sftp_fixtures import BundledSftp


@pytest.fixture(scope="module")
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=11, tenants=1, bills=40) as running:
        yield running


def kinds_made(services: Services, messages: list[Message]) -> list[str]:
    with services.ledger.transaction() as session:
        return [stored_batch(session, m.batch_id).kind for m in messages if isinstance(m, DeliverBatch)]


def test_the_polls_request_for_a_batch_while_bills_are_still_mapping_makes_no_bill_file(
    services_on_both_databases: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    services = services_on_both_databases
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    with_master_data(services, tenant_id)
    asked: list[Message] = []
    poll.poll_tenant(services, tenant_id, emit=asked.append)
    maps = [m for m in asked if isinstance(m, MapInvoice)]
    [polls_request] = [m for m in asked if isinstance(m, AssembleBatch)]
    assert len(maps) > 10

    last_asks: list[Message] = []
    for message in maps[: len(maps) // 2]:
        last_asks += map.map_invoice(services, message.tenant_id, message.invoice_id, message.version)
    made_early = kinds_made(services, batch.assemble_batches(services, polls_request.tenant_id,
                                                                bills=polls_request.bills))
    for message in maps[len(maps) // 2:]:
        last_asks += map.map_invoice(services, message.tenant_id, message.invoice_id, message.version)

    assert made_early, "master data goes at once"
    assert Kind.BILLS not in made_early, "bills wait for the last of their cycle to be mapped"
    assert last_asks.count(AssembleBatch(tenant_id)) == 1, "the last bill mapped asks for the batch"
    made_last = kinds_made(services, batch.assemble_batches(services, tenant_id))
    assert made_last == [Kind.BILLS], "every bill of the cycle in one file"


def test_an_assemble_cut_short_has_already_asked_for_the_files_it_made(
    services_on_both_databases: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each file's delivery is asked for as soon as it is staged: an assemble that stops after its second
    file (a lost race, a full disk, a killed worker) leaves neither file to the sweeper's next look."""
    from connector import failpoints
    from connector.store.models import Batch

    services = services_on_both_databases
    tenant_id = onboard(services, sandbox, bundled_sftp.target(), cap=5)
    for message in (m for m in run_poll(services, tenant_id) if isinstance(m, MapInvoice)):
        map.map_invoice(services, message.tenant_id, message.invoice_id, message.version)
    monkeypatch.setattr(failpoints, "_fired", set())
    monkeypatch.setattr(failpoints, "_reached", {})
    monkeypatch.setenv(failpoints.ENV, "batch.after_staged=raise@2")
    asked: list[Message] = []
    with pytest.raises(failpoints.FailpointHit):
        batch.assemble_batches(services, tenant_id, emit=asked.append)
    with services.ledger.transaction() as session:
        staged = [b.id for b in session.query(Batch).filter(Batch.state == "STAGED").order_by(Batch.id)]
    assert len(staged) == 2
    assert asked == [DeliverBatch(batch_id) for batch_id in staged]


def run_poll(services: Services, tenant_id: str) -> list[Message]:
    asked: list[Message] = []
    poll.poll_tenant(services, tenant_id, emit=asked.append)
    return asked
