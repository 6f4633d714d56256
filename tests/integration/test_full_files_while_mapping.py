"""A large first sync makes and delivers its full files while its bills are still mapping, instead of every
file after the last bill: every FULL_FILE_ASK_EVERY-th mapping asks for the files already full, and the
last one for the rest. Each bill still lands in exactly one file, and a tenant sending master data has
full files made only of the bills READY before its master-data files last began reading the ledger (so
each of them comes after a file carrying its vendor, POs and accounts); the others wait."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from connector.domain.masterdata import Kind
from connector.domain.states import BillState
from connector.services import batch, deliver, map, poll
from connector.services.context import Services
from connector.services.messages import AssembleBatch, DeliverBatch, MapInvoice, Message
from connector.store import masterdata as masterdata_store
from connector.store.models import Batch, Bill, BillTransition
from sandbox.xero import XeroSandbox
from tests.support.pipeline import onboard, with_master_data
from tests.support.sftp_fixtures import BundledSftp

CAP = 5


@pytest.fixture(scope="module")
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=11, tenants=1, bills=40) as running:
        yield running


def polled(services: Services, tenant_id: str) -> list[MapInvoice]:
    asked: list[Message] = []
    poll.poll_tenant(services, tenant_id, emit=asked.append)
    return [m for m in asked if isinstance(m, MapInvoice)]


def states(services: Services) -> Counter[str]:
    with services.ledger.transaction() as session:
        return Counter(session.scalars(select(Bill.state)))


def files(services: Services) -> list[tuple[str, int]]:
    with services.ledger.transaction() as session:
        return [(kind, count) for kind, count in session.execute(
            select(Batch.kind, Batch.bill_count).order_by(Batch.sequence))]


def test_what_a_mapping_asks_of_batching_depends_only_on_the_bills_left_to_map() -> None:
    every = batch.FULL_FILE_ASK_EVERY
    assert batch.asks_after_mapping("t", 0) == [AssembleBatch("t")]
    assert batch.asks_after_mapping("t", every) == [AssembleBatch("t", full_files=True)]
    assert batch.asks_after_mapping("t", 3 * every) == [AssembleBatch("t", full_files=True)]
    assert batch.asks_after_mapping("t", every + 1) == []
    assert batch.asks_after_mapping("t", 1) == []


def test_full_files_are_made_while_bills_are_still_mapping_and_every_bill_lands_in_one_file(
    services_on_both_databases: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    services = services_on_both_databases
    monkeypatch.setattr(batch, "FULL_FILE_ASK_EVERY", 4)
    tenant_id = onboard(services, sandbox, bundled_sftp.target(), cap=CAP)
    maps = polled(services, tenant_id)
    made_while_mapping: list[DeliverBatch] = []
    last_asks: list[Message] = []
    for n, message in enumerate(maps, start=1):
        for ask in map.map_invoice(services, message.tenant_id, message.invoice_id, message.version):
            assert isinstance(ask, AssembleBatch)
            if not ask.full_files:
                last_asks.append(ask)
                continue
            assert n < len(maps), "the last mapping asks for every file, not for full ones only"
            made = batch.assemble_batches(services, tenant_id, full_files=True)
            made_while_mapping += [m for m in made if isinstance(m, DeliverBatch)]
            for delivery in made:  # delivered while the other bills still map
                assert isinstance(delivery, DeliverBatch)
                assert deliver.deliver_batch(services, delivery.batch_id).state == "DELIVERED"
    assert made_while_mapping, "files were made before the last bill was mapped"
    assert [count for _, count in files(services)] == [CAP] * len(made_while_mapping), "only full files"
    assert last_asks == [AssembleBatch(tenant_id)]

    for delivery in batch.assemble_batches(services, tenant_id):
        assert isinstance(delivery, DeliverBatch)
        deliver.deliver_batch(services, delivery.batch_id)
    counts = [count for _, count in files(services)]
    assert all(count == CAP for count in counts[:-1])
    assert 0 < counts[-1] <= CAP
    left = states(services)
    assert left[BillState.READY] == 0
    assert left[BillState.BATCHED] == 0
    assert left[BillState.DELIVERED] == sum(counts)
    with services.ledger.transaction() as session:
        batched = Counter(session.scalars(select(BillTransition.invoice_id).where(
            BillTransition.to_state == BillState.BATCHED)))
    assert set(batched.values()) == {1}, "each bill put in one file once"


def test_a_full_files_ask_of_a_tenant_sending_master_data_leaves_its_bills_for_the_last_mappings_assemble(
    services_on_both_databases: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    services = services_on_both_databases
    tenant_id = onboard(services, sandbox, bundled_sftp.target(), cap=CAP)
    with_master_data(services, tenant_id)
    for message in polled(services, tenant_id):
        map.map_invoice(services, message.tenant_id, message.invoice_id, message.version)
    assert states(services)[BillState.READY] > CAP

    assert batch.assemble_batches(services, tenant_id, full_files=True) == []
    assert files(services) == []
    batch.assemble_batches(services, tenant_id)
    kinds = [kind for kind, _ in files(services)]
    assert "bills" in kinds
    assert kinds.index("bills") > max(i for i, kind in enumerate(kinds) if kind != "bills"), "master data first"


def bill_files(services: Services) -> list[set[str]]:
    with services.ledger.transaction() as session:
        made = session.scalars(select(Batch.id).where(Batch.kind == "bills").order_by(Batch.sequence)).all()
        return [set(session.scalars(select(BillTransition.invoice_id).where(
            BillTransition.batch_id == batch_id, BillTransition.to_state == BillState.BATCHED))) for batch_id in made]


def test_a_tenant_sending_master_data_has_full_files_made_while_mapping_of_the_bills_its_master_data_covers(
    services_on_both_databases: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    services = services_on_both_databases
    tenant_id = onboard(services, sandbox, bundled_sftp.target(), cap=CAP)
    with_master_data(services, tenant_id)
    maps = polled(services, tenant_id)
    early, late = maps[:len(maps) // 2], maps[len(maps) // 2:]
    for message in early:
        map.map_invoice(services, message.tenant_id, message.invoice_id, message.version)
    with services.ledger.transaction() as session:
        ready_early = set(session.scalars(select(Bill.invoice_id).where(Bill.state == BillState.READY)))
    assert len(ready_early) >= CAP

    batch.assemble_batches(services, tenant_id, bills=False)  # the poll's ask: master-data files only
    master_files = len(files(services))
    assert master_files > 0
    for message in late:
        map.map_invoice(services, message.tenant_id, message.invoice_id, message.version)

    made = batch.assemble_batches(services, tenant_id, full_files=True)
    assert len(made) == len(ready_early) // CAP, "full files of the bills READY before the master data was read"
    assert len(files(services)) == master_files + len(made), "no master-data file made by a full-files ask"
    assert all(kind == "bills" and count == CAP for kind, count in files(services)[master_files:])
    carried = set().union(*bill_files(services))
    assert carried <= ready_early, "a bill READY after the master-data files were read waits"

    batch.assemble_batches(services, tenant_id)  # the last mapping's: master data first, then every bill
    assert states(services)[BillState.READY] == 0


def test_a_kind_turned_on_keeps_a_master_data_tenants_bills_until_a_file_of_it_is_made(
    services_on_both_databases: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    services = services_on_both_databases
    tenant_id = onboard(services, sandbox, bundled_sftp.target(), cap=CAP)
    with services.ledger.transaction() as session:
        masterdata_store.set_kind(session, tenant_id, Kind.VENDORS, enabled=True)
    maps = polled(services, tenant_id)
    for message in maps:
        map.map_invoice(services, message.tenant_id, message.invoice_id, message.version)
    batch.assemble_batches(services, tenant_id, bills=False)
    with services.ledger.transaction() as session:
        masterdata_store.set_kind(session, tenant_id, Kind.PURCHASE_ORDERS, enabled=True)

    assert batch.assemble_batches(services, tenant_id, full_files=True) == [], "no PO file made yet"
    batch.assemble_batches(services, tenant_id, bills=False)
    assert batch.assemble_batches(services, tenant_id, full_files=True) != []
    kinds = [kind for kind, _ in files(services)]
    assert kinds.index("bills") > kinds.index("purchase_orders")


def test_a_files_bills_move_with_their_audit_rows_as_one_at_a_time_did(
    services_on_both_databases: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    """Each bill of a file is BATCHED then DELIVERED with the file's id and name in its audit row, and its
    row version moves each time (so a poll or mapping racing the move loses and runs again)."""
    services = services_on_both_databases
    tenant_id = onboard(services, sandbox, bundled_sftp.target(), cap=CAP)
    for message in polled(services, tenant_id):
        map.map_invoice(services, message.tenant_id, message.invoice_id, message.version)
    with services.ledger.transaction() as session:
        before = {i: version for i, version in session.execute(select(Bill.invoice_id, Bill.row_version).where(
            Bill.state == BillState.READY))}
    [first, *_] = [m for m in batch.assemble_batches(services, tenant_id) if isinstance(m, DeliverBatch)]
    assert deliver.deliver_batch(services, first.batch_id).state == "DELIVERED"
    with services.ledger.transaction() as session:
        name = session.get_one(Batch, first.batch_id).name
        carried = {b.invoice_id: b for b in session.scalars(select(Bill).where(Bill.batch_id == first.batch_id))}
        moves = session.execute(select(BillTransition.invoice_id, BillTransition.from_state, BillTransition.to_state,
                                       BillTransition.batch_id, BillTransition.file_name, BillTransition.actor)
                                .where(BillTransition.invoice_id.in_(carried),
                                       BillTransition.to_state.in_([BillState.BATCHED, BillState.DELIVERED]))
                                .order_by(BillTransition.id)).all()
    assert len(carried) == CAP
    assert all(b.state == BillState.DELIVERED for b in carried.values())
    assert all(b.row_version == before[i] + 3 for i, b in carried.items()), "claimed, batched, delivered"
    assert sorted(moves) == sorted(
        [(i, BillState.READY, BillState.BATCHED, first.batch_id, name, "connector") for i in carried]
        + [(i, BillState.BATCHED, BillState.DELIVERED, first.batch_id, name, "connector") for i in carried])
