"""Two workers interleaved at the worst moment, on SQLite and PostgreSQL. The interleaving is forced by
running the second worker's whole step inside the first one's open transaction."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from connector.domain.delivery import AttemptOutcome, Commit, Failure
from connector.domain.states import BatchState, BillState
from connector.errors import SftpRejected
from connector.services import batch, deliver, map, poll
from connector.services.context import Services
from connector.services.messages import MapInvoice, Message
from connector.services.replay import ReplayRefused, replay_invoice
from connector.store import audit, deliveries
from connector.store.models import Batch, Bill, DeliveryAttempt, SftpTargetRow
from sandbox.xero import XeroSandbox
from tests.support.pipeline import invoice_ids_in_files, onboard, poll_and_map, replace_gl_mappings, staged_batch
from tests.support.sftp_fixtures import BundledSftp


@pytest.fixture
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=11, tenants=1, bills=40) as running:
        yield running


@pytest.fixture
def services(services_on_both_databases: Services) -> Services:
    return services_on_both_databases


def a_bill(services: Services, state: BillState) -> Bill:
    with services.ledger.transaction() as session:
        found = session.scalars(select(Bill).where(Bill.state == state).order_by(Bill.id)).first()
        assert found is not None
        return found


def a_bill_billing_more_than_half_its_po(services: Services) -> Bill:
    """A READY bill matched to a PO whose total is under twice the bill's: its twin over-bills the PO."""
    with services.ledger.transaction() as session:
        for found in session.scalars(select(Bill).where(Bill.state == BillState.READY).order_by(Bill.id)):
            orders = (found.mapping or {}).get("po") or []
            if orders and Decimal(found.mapping["total"]) * 2 > sum(Decimal(po["total"]) for po in orders):
                return found
    raise AssertionError("the sandbox's data set has no READY bill billing more than half of its PO")


def bill(services: Services, invoice_id: str) -> Bill:
    with services.ledger.transaction() as session:
        return session.scalars(select(Bill).where(Bill.invoice_id == invoice_id)).one()


def newer(payload: dict[str, Any], version: int, **changes: Any) -> dict[str, Any]:
    return {**payload, **changes, "UpdatedDateUTC": f"/Date({version}+0000)/"}


def test_a_poll_racing_a_batch_claim_never_strands_the_bill_and_its_change_is_reported(
    services: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp, monkeypatch: pytest.MonkeyPatch,
) -> None:
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    poll_and_map(services, tenant_id)
    victim = a_bill(services, BillState.READY)
    claimed: list[int | None] = []
    real_record = audit.BillPage.record

    def claim_first(page: audit.BillPage, row: audit.PageBill, *args: Any, **kwargs: Any) -> None:
        if not claimed:  # the poller has read the bill; a batch worker claims it before the poll writes
            claimed.append(None)  # once: the claim moves its own bills through a page of its own
            claimed[0] = batch._claim_one(services, tenant_id)
        real_record(page, row, *args, **kwargs)

    monkeypatch.setattr(audit.BillPage, "record", claim_first)
    changed = newer(victim.payload, victim.version + 60_000)
    services.ledger.retrying(lambda s: poll.upsert_bills(s, tenant_id, [changed]))
    monkeypatch.setattr(audit.BillPage, "record", real_record)
    batch_id = claimed[0]
    assert batch_id is not None
    assert bill(services, victim.invoice_id).state == BillState.BATCHED
    deliver.deliver_batch(services, batch_id)
    assert bill(services, victim.invoice_id).state == BillState.CHANGED_AFTER_DELIVERY
    assert victim.invoice_id in invoice_ids_in_files(bundled_sftp.server.local_path(bundled_sftp.import_dir))


def test_a_poll_racing_a_mapping_wins_and_a_voided_bill_never_goes_out(
    services: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp, monkeypatch: pytest.MonkeyPatch,
) -> None:
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    poll_and_map(services, tenant_id)
    ready = a_bill(services, BillState.READY)
    [first] = services.ledger.retrying(
        lambda s: poll.upsert_bills(s, tenant_id, [newer(ready.payload, ready.version + 30_000)]))
    assert isinstance(first, MapInvoice)
    voided = newer(ready.payload, ready.version + 60_000, Status="VOIDED")
    later: list[Message] = []
    real_decide = map._decide
    # On SQLite a bill naming a PO is decided holding the one write lock (store.mapping_inputs.
    # purchase_orders_locked): the poll, in a process of its own, waits for the decision's commit and wins then.
    locks = services.ledger.engine.dialect.name == "sqlite" and bool((ready.mapping or {}).get("po"))
    polls: list[threading.Thread] = []

    def poll_commits_meanwhile(session: Any, tenant: str, row: Bill, *heads: Any) -> Any:
        outcome = real_decide(session, tenant, row, *heads)
        if not later and not polls:
            def the_poll() -> None:
                later.extend(services.ledger.retrying(lambda s: poll.upsert_bills(s, tenant_id, [voided])))
            if locks:
                polls.append(threading.Thread(target=the_poll))
                polls[0].start()
            else:
                the_poll()
        return outcome

    monkeypatch.setattr(map, "_decide", poll_commits_meanwhile)
    mapped = map.map_invoice(services, tenant_id, first.invoice_id, first.version)
    for thread in polls:
        thread.join()
    assert locks or mapped == []
    monkeypatch.setattr(map, "_decide", real_decide)
    for message in later:
        assert isinstance(message, MapInvoice)
        map.map_invoice(services, tenant_id, message.invoice_id, message.version)
    assert bill(services, first.invoice_id).state == BillState.EXCLUDED


def test_a_superseded_delivery_attempt_cannot_undo_the_outcome_of_the_one_that_owns_the_batch(
    services: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    batch_id, _ = staged_batch(services, sandbox, bundled_sftp.target())
    with services.ledger.transaction() as session:  # worker A took the lease long ago and went quiet
        stale = DeliveryAttempt(batch_id=batch_id, task_id="A")
        session.add(stale)
        session.flush()
        session.execute(update(Batch).where(Batch.id == batch_id).values(
            lease_owner=stale.id, lease_until=services.clock() - timedelta(seconds=1)))
        stale_id = stale.id
    assert deliver.deliver_batch(services, batch_id).state == BatchState.DELIVERED  # worker B, lease expired
    services.ledger.retrying(partial(  # A wakes up and records its failure
        deliveries.settle_attempt, batch_id=batch_id, attempt_id=stale_id, commit=Commit.NOT_REACHED,
        failure=Failure.PERMANENT, error=SftpRejected("rename refused"), remote_size=None, now=services.clock()))
    with services.ledger.transaction() as session:
        assert session.get_one(Batch, batch_id).state == BatchState.DELIVERED
        assert set(session.scalars(select(Bill.state).where(Bill.batch_id == batch_id))) == {BillState.DELIVERED}
        assert session.get_one(DeliveryAttempt, stale_id).outcome == AttemptOutcome.SUPERSEDED


def test_replay_refuses_a_batch_being_delivered_and_a_delivered_bill_without_resend(
    services: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    batch_id, _ = staged_batch(services, sandbox, bundled_sftp.target())
    some = a_bill(services, BillState.BATCHED).invoice_id
    with services.ledger.transaction() as session:
        session.execute(update(Batch).where(Batch.id == batch_id).values(
            lease_owner=999, lease_until=services.clock() + timedelta(minutes=5)))
    with pytest.raises(ReplayRefused, match="being delivered"):
        replay_invoice(services, some, actor="op")
    with services.ledger.transaction() as session:
        session.execute(update(Batch).where(Batch.id == batch_id).values(lease_owner=None, lease_until=None))
    deliver.deliver_batch(services, batch_id)
    with pytest.raises(ReplayRefused, match="--resend"):
        replay_invoice(services, some, actor="op")


def test_a_failed_file_is_replayed_as_the_same_bytes_and_a_resend_goes_alone(
    services: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    batch_id, _ = staged_batch(services, sandbox, bundled_sftp.target(import_dir="/nowhere"))
    assert deliver.deliver_batch(services, batch_id).state == BatchState.FAILED  # no such import folder
    with services.ledger.transaction() as session:  # the operator fixes the target's folder
        session.execute(update(SftpTargetRow).values(import_dir=bundled_sftp.import_dir))
        original = session.get_one(Batch, batch_id)
        name, sha = original.name, original.sha256
    some = a_bill(services, BillState.FAILED).invoice_id
    assert replay_invoice(services, some, actor="op").state == BatchState.DELIVERED
    folder = bundled_sftp.server.local_path(bundled_sftp.import_dir)
    assert [p.name for p in folder.glob("*.csv")] == [name]
    assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == sha
    resent = replay_invoice(services, some, actor="op", resend=True)
    assert resent.state == BatchState.DELIVERED
    with services.ledger.transaction() as session:
        assert session.get_one(Batch, resent.batch_id).bill_count == 1
    assert invoice_ids_in_files(folder).count(some) == 2


def held_for(services: Services, code: str) -> Bill:
    with services.ledger.transaction() as session:
        for held in session.scalars(select(Bill).where(Bill.state == BillState.HELD).order_by(Bill.id)):
            if any(r["code"] == code for r in held.reasons):
                return held
    raise AssertionError(f"no bill held for {code}")


def test_a_bill_held_for_an_unknown_po_is_re_evaluated_when_the_po_arrives(
    services: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    poll_and_map(services, tenant_id)
    held = held_for(services, "unknown_po")
    late_po = {"PurchaseOrderID": "po-late", "PurchaseOrderNumber": held.invoice_number, "Status": "AUTHORISED",
               "Contact": held.payload["Contact"], "Total": held.payload["Total"],
               "UpdatedDateUTC": "/Date(1900000000000+0000)/"}
    messages = services.ledger.retrying(lambda s: poll.upsert_purchase_orders(s, tenant_id, [late_po]))
    assert held.invoice_id in [m.invoice_id for m in messages]  # type: ignore[union-attr]
    for message in messages:
        assert isinstance(message, MapInvoice)
        map.map_invoice(services, tenant_id, message.invoice_id, message.version)
    assert bill(services, held.invoice_id).state != BillState.HELD or all(
        r["code"] != "unknown_po" for r in bill(services, held.invoice_id).reasons)


def test_bills_held_for_an_unmapped_account_come_back_when_the_gl_map_is_replaced(
    services: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    from connector.services.sweep import sweep

    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    poll_and_map(services, tenant_id)
    with services.ledger.transaction() as session:  # an account of a READY bill loses its mapping
        ready = next(b for b in session.scalars(select(Bill).where(Bill.state == BillState.READY).order_by(Bill.id))
                     if b.payload["LineItems"] and b.payload["LineItems"][0].get("AccountCode"))
        code = ready.payload["LineItems"][0]["AccountCode"]
        session.execute(update(Bill).where(Bill.id == ready.id).values(state=BillState.DISCOVERED))
    tenant = sandbox.dataset.tenant(tenant_id)
    full = {a.code: f"GL-{a.code}" for a in tenant.accounts if a.status == "ACTIVE"}
    replace_gl_mappings(services, tenant_id, {k: v for k, v in full.items() if k != code})
    map.map_invoice(services, tenant_id, ready.invoice_id, ready.version)
    assert bill(services, ready.invoice_id).state == BillState.HELD
    assert replace_gl_mappings(services, tenant_id, full) >= 1
    assert bill(services, ready.invoice_id).state == BillState.DISCOVERED
    with services.ledger.transaction() as session:  # the sweeper maps it once it is stale
        session.execute(update(Bill).values(state_changed_at=services.clock() - timedelta(hours=1)))
    for message in sweep(services):
        if isinstance(message, MapInvoice):
            map.map_invoice(services, message.tenant_id, message.invoice_id, message.version)
    assert bill(services, ready.invoice_id).state == BillState.READY


def test_two_bills_against_one_po_mapped_at_once_cannot_both_bill_it_in_full(
    sandbox: XeroSandbox, bundled_sftp: BundledSftp, pg_schema: str, tmp_path: Path,
) -> None:
    """On PostgreSQL the PO rows are locked while a bill is mapped. (The embedded SQLite mode has no row
    locks; it relies on its one worker process.)"""
    import threading

    from tests.support.services import services_for_sandbox

    services = services_for_sandbox(sandbox, tmp_path, "postgresql", schema=pg_schema)

    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    poll_and_map(services, tenant_id)
    ready = a_bill_billing_more_than_half_its_po(services)  # so that two of it always over-bill the PO
    po_total = sum(Decimal(po["total"]) for po in ready.mapping["po"])
    twin = {**ready.payload, "InvoiceID": "twin-0000-0000-0000-000000000001",
            "UpdatedDateUTC": "/Date(1900000000000+0000)/"}
    again = {**ready.payload, "UpdatedDateUTC": f"/Date({ready.version + 1000}+0000)/"}
    messages = services.ledger.retrying(lambda s: poll.upsert_bills(s, tenant_id, [again, twin]))
    assert len(messages) == 2
    barrier = threading.Barrier(2)

    def map_one(message: Message) -> None:
        assert isinstance(message, MapInvoice)
        barrier.wait()
        map.map_invoice(services, tenant_id, message.invoice_id, message.version)

    threads = [threading.Thread(target=map_one, args=(m,)) for m in messages]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with services.ledger.transaction() as session:
        states = [session.scalars(select(Bill.state).where(Bill.invoice_id == m.invoice_id)).one()  # type: ignore[union-attr]
                  for m in messages]
    services.close()
    assert Decimal(ready.mapping["total"]) * 2 > po_total
    assert sorted(states) == [BillState.HELD, BillState.READY]


def twins_against_one_po(services: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
                         monkeypatch: pytest.MonkeyPatch,
                         ) -> tuple[str, list[MapInvoice], threading.Event, threading.Event]:
    """A READY bill billing more than half its PO, edited in Xero, and a twin billing the same PO: their two
    map messages (tenant, messages, written, release). The thread named "first" holds its decision written
    but not committed (`written` set) until `release`."""
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    poll_and_map(services, tenant_id)
    ready = a_bill_billing_more_than_half_its_po(services)
    first = {**ready.payload, "UpdatedDateUTC": f"/Date({ready.version + 1000}+0000)/"}
    second = {**ready.payload, "InvoiceID": "twin-0000-0000-0000-000000000002",
              "UpdatedDateUTC": "/Date(1900000000000+0000)/"}
    messages = [m for m in services.ledger.retrying(lambda s: poll.upsert_bills(s, tenant_id, [first, second]))
                if isinstance(m, MapInvoice)]
    assert [m.invoice_id for m in messages] == [ready.invoice_id, second["InvoiceID"]]
    written, release = threading.Event(), threading.Event()
    asks = map.asks_after_mapping

    def held_open(tenant: str, left: int) -> list[Message]:
        if threading.current_thread().name == "first":
            written.set()
            assert release.wait(30)
        return asks(tenant, left)

    monkeypatch.setattr(map, "asks_after_mapping", held_open)
    return tenant_id, messages, written, release


def test_a_bill_that_waited_for_its_pos_lock_sees_the_bill_mapped_against_the_po_meanwhile(
    sandbox: XeroSandbox, bundled_sftp: BundledSftp, pg_schema: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The worst moment, forced on PostgreSQL: the second bill's mapping reads its PO and what is billed
    against it while the first one's decision is written but not committed. The read waits for the PO's
    lock, and what it then decides on must count the first bill (a read as of the statement's start would
    not, and both would go)."""

    from sqlalchemy import text

    from tests.support.services import services_for_sandbox

    services = services_for_sandbox(sandbox, tmp_path, "postgresql", schema=pg_schema)
    tenant_id, messages, written, release = twins_against_one_po(services, sandbox, bundled_sftp, monkeypatch)
    backend: list[int] = []

    def map_one(message: MapInvoice) -> None:
        if threading.current_thread().name == "second":  # the connection its decision's transaction runs on
            backend.append(services.ledger.kept().retrying(
                lambda s: int(s.connection().execute(text("SELECT pg_backend_pid()")).scalar_one())))
            assert written.wait(30)
        map.map_invoice(services, tenant_id, message.invoice_id, message.version)

    threads = [threading.Thread(target=map_one, args=(m,), name=name)
               for m, name in zip(messages, ("first", "second"), strict=True)]
    for thread in threads:
        thread.start()
    try:
        assert written.wait(30)
        for _ in range(300):  # until the second mapping waits for the PO's lock
            with services.ledger.transaction() as session:
                if backend and session.scalar(text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid"),
                                              {"pid": backend[0]}) == "Lock":
                    break
            threading.Event().wait(0.05)
        else:
            raise AssertionError("the second mapping never waited for the PO's lock")
    finally:
        release.set()
        for thread in threads:
            thread.join()
    states = [bill(services, m.invoice_id).state for m in messages]
    services.close()
    assert states == [BillState.READY, BillState.HELD]


def test_on_sqlite_a_bill_mapped_while_another_against_its_po_is_being_written_sees_it(
    sandbox: XeroSandbox, bundled_sftp: BundledSftp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SQLite has no row locks, and its driver begins a transaction only at the first write, so a bill's
    PO and what is billed against it were read outside any: two map worker processes on one SQLite file
    (the embedded mode runs the workers' usual pool) could each read the PO before the other's decision
    committed, and both bills went. The worst moment, forced: the second bill is decided while the first
    one's decision is written but not committed; it must count the first bill."""

    from tests.support.services import services_for_sandbox

    services = services_for_sandbox(sandbox, tmp_path, "sqlite")
    tenant_id, messages, written, release = twins_against_one_po(services, sandbox, bundled_sftp, monkeypatch)
    decide = map._decide

    def decided_after_the_first_write(*args: Any, **kwargs: Any) -> Any:  # its run counted, before its decision
        if threading.current_thread().name == "second":
            assert written.wait(30)
        return decide(*args, **kwargs)

    monkeypatch.setattr(map, "_decide", decided_after_the_first_write)
    second_counted = threading.Event()
    count = map._count_and_read

    def counted(*args: Any, **kwargs: Any) -> Any:
        found = count(*args, **kwargs)
        if threading.current_thread().name == "second":
            second_counted.set()
        return found

    monkeypatch.setattr(map, "_count_and_read", counted)

    def map_one(message: MapInvoice) -> None:
        if threading.current_thread().name == "first":
            assert second_counted.wait(30)  # both runs counted before either decides
        map.map_invoice(services, tenant_id, message.invoice_id, message.version)

    threads = [threading.Thread(target=map_one, args=(m,), name=name)
               for m, name in zip(messages, ("first", "second"), strict=True)]
    for thread in threads:
        thread.start()
    try:
        assert written.wait(30)
        threading.Event().wait(2)  # the second mapping reads and decides meanwhile, or waits for the writer
    finally:
        release.set()
        for thread in threads:
            thread.join()
    states = [bill(services, m.invoice_id).state for m in messages]
    services.close()
    assert states == [BillState.READY, BillState.HELD]
