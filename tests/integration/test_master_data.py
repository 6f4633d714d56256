"""Master data to Stampli through the services (no Celery), against the Xero sandbox and the bundled SFTP
server: one file per kind before the first bill file, only what changed afterwards, nothing on a re-run,
the order kept when a master-data file waits, and not one Xero call more."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from connector.domain.delivery import BatchState
from connector.domain.masterdata import MASTER_KINDS, EarlierFile, Kind
from connector.errors import LedgerContention
from connector.services import batch, deliver
from connector.services.context import Services
from connector.services.masterdata import resend
from connector.services.messages import DeliverBatch
from connector.store import masterdata as store
from connector.store.db import Session
from connector.store.models import Batch, Bill, MasterDataRecord
from sandbox.xero import XeroSandbox
from tests.support.pipeline import onboard, poll_and_map, run_cycle, with_master_data
from tests.support.services import services_for_sandbox
from tests.support.sftp_fixtures import BundledSftp


@pytest.fixture
def sandbox() -> Iterator[XeroSandbox]:
    """One per test: with credit notes a poll makes one call more, and a shared sandbox's minute of 60
    calls ran out across the module's tests."""
    with XeroSandbox(seed=12, tenants=1, bills=40) as running:
        yield running


def files(services: Services) -> list[Batch]:
    with services.ledger.transaction() as session:
        found = list(session.scalars(select(Batch).order_by(Batch.sequence)))
        session.expunge_all()
        return found


def rows(folder: Path, name: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO((folder / name).read_text(encoding="utf-8"), newline="")))


def test_after_onboarding_one_file_per_kind_lands_before_the_first_bill_file_and_a_rerun_sends_nothing(
    services: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    with_master_data(services, tenant_id)
    run_cycle(services, tenant_id)
    made = files(services)
    assert [f.kind for f in made[:4]] == list(MASTER_KINDS)
    assert {f.kind for f in made[4:]} == {"bills"}
    assert made[4:], "the cycle delivered bills too"
    assert all(f.state == BatchState.DELIVERED for f in made)
    delivered_order = sorted(made, key=lambda f: (f.delivered_at, f.sequence))
    assert [f.kind for f in delivered_order][:4] == list(MASTER_KINDS)
    folder = bundled_sftp.server.local_path(bundled_sftp.import_dir)
    vendors = {r["XeroVendorID"] for r in rows(folder, made[0].name)}
    orders = {r["XeroPurchaseOrderID"] for r in rows(folder, made[3].name)}
    accounts = {r["AccountCode"] for r in rows(folder, made[1].name)}
    for bill_file in made[4:]:
        for row in rows(folder, bill_file.name):
            assert row["VendorID"] in vendors  # Stampli knows every vendor a bill names
            assert not row["XeroAccountCode"] or row["XeroAccountCode"] in accounts
            assert set(filter(None, row["XeroPurchaseOrderIDs"].split(";"))) <= orders
    # every record once, its audit says so
    first_vendor = sorted(vendors)[0]
    with services.ledger.transaction() as session:
        assert [t.to_state for t in store.history(session, tenant_id, Kind.VENDORS, first_vendor)] == [
            "BATCHED", "DELIVERED"]

    run_cycle(services, tenant_id)
    # a re-run sends nothing but the credit notes that waited for a bill of the first cycle
    later = files(services)[len(made):]
    assert {f.kind for f in later} <= {"bills"}
    with services.ledger.transaction() as session:
        kinds = set(session.scalars(select(Bill.document_type).where(Bill.batch_id.in_([f.id for f in later]))))
    assert kinds <= {"CREDIT_NOTE"}, "a re-run sent a bill"


def test_a_po_edited_in_xero_is_sent_again_with_its_change_and_nothing_else_is(
    services: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    with_master_data(services, tenant_id)
    run_cycle(services, tenant_id)
    before = len(files(services))
    folder = bundled_sftp.server.local_path(bundled_sftp.import_dir)
    order = next(po for po in sandbox.dataset.tenant(tenant_id).purchase_orders
                 if po.status == "AUTHORISED" and po.number == "PO-0024")
    sandbox.edit_purchase_order(tenant_id, order.purchase_order_id, status="BILLED")
    other = next(po for po in sandbox.dataset.tenant(tenant_id).purchase_orders if po.number == "PO-0013")
    sandbox.edit_purchase_order(tenant_id, other.purchase_order_id, delivery_instructions="Gate 4")  # not sent
    run_cycle(services, tenant_id)
    [new] = [f for f in files(services)[before:] if f.kind != "bills"]  # (and credits that waited for a bill)
    assert (new.kind, new.state, new.bill_count) == ("purchase_orders", BatchState.DELIVERED, 1)
    [row] = rows(folder, new.name)
    assert (row["XeroPurchaseOrderID"], row["Status"], row["Open"]) == (order.purchase_order_id, "BILLED", "N")


def test_a_bill_file_waits_for_the_master_data_made_before_it_and_goes_once_that_is_delivered(
    services: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    with_master_data(services, tenant_id)
    poll_and_map(services, tenant_id)
    messages = batch.assemble_batches(services, tenant_id)
    ids = [m.batch_id for m in messages if isinstance(m, DeliverBatch)]
    made = files(services)
    assert [f.kind for f in made][:4] == list(MASTER_KINDS)
    bill_file = made[-1]
    assert bill_file.kind == "bills"
    waiting = deliver.deliver_batch(services, bill_file.id)  # its master data is not delivered yet
    assert waiting.state == BatchState.STAGED
    assert waiting.uploaded is False
    assert waiting.waits_for == tuple(f.name for f in made[:4])
    folder = bundled_sftp.server.local_path(bundled_sftp.import_dir)
    assert not (folder / bill_file.name).exists()
    [purchase_orders] = [f for f in made if f.kind == "purchase_orders"]
    assert deliver.deliver_batch(services, purchase_orders.id).waits_for  # a PO file waits for its vendors too
    follow_ups = []
    for batch_id in ids[:3]:
        follow_ups += deliver.deliver_batch(services, batch_id).follow_ups
    assert DeliverBatch(purchase_orders.id) in follow_ups
    report = deliver.deliver_batch(services, purchase_orders.id)
    assert DeliverBatch(bill_file.id) in report.follow_ups  # the last file it waited for asks for it
    assert deliver.deliver_batch(services, bill_file.id).uploaded
    assert (folder / bill_file.name).exists()


def test_resend_makes_a_full_file_of_the_kind(services: Services, sandbox: XeroSandbox,
                                              bundled_sftp: BundledSftp) -> None:
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    with_master_data(services, tenant_id)
    run_cycle(services, tenant_id)
    first = next(f for f in files(services) if f.kind == "vendors")
    [message] = resend(services, Kind.VENDORS, [tenant_id], actor="test")
    assert isinstance(message, DeliverBatch)
    assert deliver.deliver_batch(services, message.batch_id).uploaded
    again = files(services)[-1]
    assert (again.kind, again.bill_count) == ("vendors", first.bill_count)
    assert again.name != first.name


def test_master_data_costs_not_one_xero_call_more(sandbox: XeroSandbox, bundled_sftp: BundledSftp,
                                                  tmp_path: Path) -> None:
    calls = []
    for on in (False, True):
        services = services_for_sandbox(sandbox, tmp_path / str(on), "sqlite")
        try:
            tenant_id = onboard(services, sandbox, bundled_sftp.target())
            if on:
                with_master_data(services, tenant_id)
            before = sandbox.stats()["calls_by_endpoint"]
            run_cycle(services, tenant_id)
            run_cycle(services, tenant_id)
            after = sandbox.stats()["calls_by_endpoint"]
            calls.append({name: sum(after[name].values()) - sum(before.get(name, {}).values()) for name in after})
            assert any(f.kind != "bills" for f in files(services)) is on
        finally:
            services.close()
    assert sum(calls[0].values()) > 0
    assert calls[0] == calls[1]


def test_the_operator_sees_per_kind_what_was_sent_and_what_waits(
    services: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp, tmp_path: Path,
) -> None:
    from click.testing import CliRunner

    from connector.cli import cli

    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    env = {
        "CONNECTOR_DATABASE_URL": services.settings.database_url,
        "CONNECTOR_FERNET_KEYS": ",".join(k.reveal() for k in services.settings.fernet_keys),
        "CONNECTOR_STAGING_DIR": str(services.settings.staging_dir), "CONNECTOR_BROKER_DIR": str(tmp_path / "b")}

    def run(*args: str) -> str:
        result = CliRunner().invoke(cli, list(args), env=env)
        assert result.exit_code == 0, result.output
        return result.output

    assert "tenant" in run("masterdata", "set", tenant_id, "--on", "all", "--off", "dimensions")
    with services.ledger.transaction() as session:
        assert store.enabled_kinds(session, tenant_id) == [Kind.VENDORS, Kind.GL_ACCOUNTS, Kind.PURCHASE_ORDERS]
    run_cycle(services, tenant_id)
    document = json.loads(run("status", "--json", "--tenant", tenant_id))
    by_kind = {row["kind"]: row for row in document["master_data"]}
    assert set(by_kind) == {"vendors", "gl_accounts", "purchase_orders"}
    for row in by_kind.values():
        assert row["last_sent"]["records"] == row["records_sent"] > 0
        assert (row["waiting"], row["pending"]) == ([], 0)
    order = next(po for po in sandbox.dataset.tenant(tenant_id).purchase_orders if po.number == "PO-0002")
    sandbox.edit_purchase_order(tenant_id, order.purchase_order_id, status="DELETED")
    poll_and_map(services, tenant_id)  # read, not yet in a file
    text = run("status", "--tenant", tenant_id)
    assert f"MASTERDATA {tenant_id} purchase_orders: last sent" in text
    assert "1 records for the next file" in text
    history = json.loads(run("masterdata", "history", "--tenant", tenant_id, "--kind", "purchase_orders",
                             "--key", order.purchase_order_id, "--json"))
    assert [h["state"] for h in history] == ["BATCHED", "DELIVERED"]
    assert "1 full gl_accounts file(s)" in run("masterdata", "resend", "--kind", "gl_accounts", "--tenant", tenant_id)
    assert files(services)[-1].state == BatchState.DELIVERED  # run here: no broker configured
    refused = CliRunner().invoke(cli, ["replay", "--file", files(services)[-1].name], env=env)
    assert refused.exit_code == 4, refused.output
    assert "masterdata resend" in refused.output
    bad = tmp_path / "vendors.yaml"
    bad.write_text("format: csv\ncolumns:\n  - {name: A, source: invoice_id}\n", encoding="utf-8")
    wrong = CliRunner().invoke(cli, ["masterdata", "set", tenant_id, "--template", f"vendors={bad}"], env=env)
    assert wrong.exit_code == 2, wrong.output
    assert "record: is 'bills'" in wrong.output


def test_a_bill_ready_after_the_master_data_was_read_waits_for_the_next_assemble(
    services: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    """Two assembles may overlap a poll: a bill that became READY while this one's master-data files were
    being made may name a vendor none of them carries, so it goes in the next assemble's bill file, after
    that assemble's master data."""
    from datetime import timedelta

    from sqlalchemy import update

    from connector.domain.states import BillState
    from connector.store.models import Bill, utcnow

    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    with_master_data(services, tenant_id)
    poll_and_map(services, tenant_id)
    with services.ledger.transaction() as session:
        session.execute(update(Bill).where(Bill.state == BillState.READY)
                        .values(state_changed_at=utcnow() + timedelta(hours=1)))  # READY "after" the cutoff
    batch.assemble_batches(services, tenant_id)
    assert [f.kind for f in files(services)] == list(MASTER_KINDS)
    with services.ledger.transaction() as session:
        session.execute(update(Bill).where(Bill.state == BillState.READY)
                        .values(state_changed_at=utcnow() - timedelta(seconds=1)))
    batch.assemble_batches(services, tenant_id)
    assert [f.kind for f in files(services)][4:] == ["bills"]


def test_when_a_master_data_file_fails_what_depends_on_it_waits_until_it_is_replayed(
    services: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp, tmp_path: Path,
) -> None:
    from click.testing import CliRunner
    from sqlalchemy import update

    from connector.cli import cli

    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    with_master_data(services, tenant_id)
    poll_and_map(services, tenant_id)
    messages = batch.assemble_batches(services, tenant_id)
    vendors = files(services)[0]
    with services.ledger.transaction() as session:  # as a refused login or a full disk would leave it
        session.execute(update(Batch).where(Batch.id == vendors.id).values(state=BatchState.FAILED,
                                                                            last_error="SftpAuthFailed: refused"))
    reports = {m.batch_id: deliver.deliver_batch(services, m.batch_id) for m in messages
               if isinstance(m, DeliverBatch) and m.batch_id != vendors.id}
    states = {f.kind: f.state for f in files(services)}
    assert states == {"vendors": BatchState.FAILED, "gl_accounts": BatchState.DELIVERED,
                      "dimensions": BatchState.DELIVERED, "purchase_orders": BatchState.STAGED,
                      "bills": BatchState.STAGED}
    assert all(vendors.name in r.waits_for for r in reports.values() if r.state == BatchState.STAGED)
    env = {"CONNECTOR_DATABASE_URL": services.settings.database_url,
           "CONNECTOR_FERNET_KEYS": ",".join(k.reveal() for k in services.settings.fernet_keys),
           "CONNECTOR_STAGING_DIR": str(services.settings.staging_dir), "CONNECTOR_BROKER_DIR": str(tmp_path / "b")}
    status = CliRunner().invoke(cli, ["status"], env=env)
    assert f"waits for the earlier master-data file {vendors.name} (FAILED)" in status.output
    replayed = CliRunner().invoke(cli, ["replay", "--file", vendors.name], env=env)
    assert replayed.exit_code == 0, replayed.output
    assert "files that waited for it: done here" in replayed.output
    assert {f.state for f in files(services)} == {BatchState.DELIVERED}
    with services.ledger.transaction() as session:
        [first_vendor, *_] = sorted(k for (k,) in session.execute(
            select(MasterDataRecord.record_key).where(MasterDataRecord.kind == "vendors")))
        trail = [t.to_state for t in store.history(session, tenant_id, Kind.VENDORS, first_vendor)]
    assert trail == ["BATCHED", "BATCHED", "DELIVERED"]  # put in the file, replayed, delivered


def test_master_data_files_hold_at_most_the_tenants_cap_of_records_and_a_full_resend_too(
    services: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The kind's records are read once for all its files (reading them costs as much as the tenant has)."""
    from connector.services import masterdata

    tenant_id = onboard(services, sandbox, bundled_sftp.target(), cap=4)
    with services.ledger.transaction() as session:
        store.set_kind(session, tenant_id, Kind.VENDORS, enabled=True)
    poll_and_map(services, tenant_id)
    reads: list[Kind] = []
    real_records_of = masterdata.records_of
    monkeypatch.setattr(masterdata, "records_of", lambda s, t, kind, sent: reads.append(kind) or real_records_of(
        s, t, kind, sent))

    masterdata.assemble_master_data(services, tenant_id)
    assert reads == [Kind.VENDORS], "one read of the vendors for every file of them"
    with services.ledger.transaction() as session:
        vendors = len(store.sent_fingerprints(session, tenant_id, Kind.VENDORS))
    made = [f for f in files(services) if f.kind == "vendors"]
    assert vendors > 4
    assert [f.bill_count for f in made] == [4] * (vendors // 4) + ([vendors % 4] if vendors % 4 else [])
    resend(services, Kind.VENDORS, [tenant_id], actor="test")  # full: every vendor again, still 4 a file
    again = [f for f in files(services) if f.kind == "vendors"][len(made):]
    assert [f.bill_count for f in again] == [f.bill_count for f in made]


def test_a_record_the_template_cannot_carry_is_named_in_status_with_its_column(
    services: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    from connector.services.masterdata import assemble_master_data
    from connector.services.status_report import master_data_status

    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    template = ("version: 1\nname: strict-vendors\nrecord: vendors\nformat: csv\nrow_shape: bill\n"
                "columns:\n  - {name: XeroVendorID, source: vendor_id, required: true}\n"
                "  - {name: MergedInto, source: merged_to, required: true}\n")
    with services.ledger.transaction() as session:
        store.set_kind(session, tenant_id, Kind.VENDORS, enabled=True, template=template)
    poll_and_map(services, tenant_id)
    assemble_master_data(services, tenant_id)
    with services.ledger.transaction() as session:
        not_merged = {c["ContactID"]: c["Name"] for c in store.contacts(session, tenant_id)
                      if c.get("IsSupplier") and not c.get("MergedToContactID")}
        [row] = master_data_status(session, tenant_id)
    assert not_merged, "the sandbox has suppliers merged into none"
    assert {h["key"]: h["label"] for h in row["held"]} == not_merged
    assert all("column 'MergedInto' (source merged_to)" in h["problem"] for h in row["held"])


def test_a_tracking_option_deleted_in_xero_is_sent_as_deleted_once(
    services: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    from connector.services.masterdata import assemble_master_data
    from connector.store.models import TrackingCategoryRow

    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    with services.ledger.transaction() as session:
        store.set_kind(session, tenant_id, Kind.DIMENSIONS, enabled=True)
    poll_and_map(services, tenant_id)
    for first in assemble_master_data(services, tenant_id):
        assert isinstance(first, DeliverBatch)
        deliver.deliver_batch(services, first.batch_id, task_id="test")
    with services.ledger.transaction() as session:
        sent = store.sent_fingerprints(session, tenant_id, Kind.DIMENSIONS)
        category = next(c for c in session.scalars(select(TrackingCategoryRow).where(
            TrackingCategoryRow.tenant_id == tenant_id)) if any(o["id"] in sent for o in c.options))
        gone = next(o for o in category.options if o["id"] in sent)
        category.options = [o for o in category.options if o["id"] != gone["id"]]  # Xero lists it no more
    [message] = assemble_master_data(services, tenant_id)
    assert isinstance(message, DeliverBatch)
    [made] = [f for f in files(services) if f.id == message.batch_id]
    deliver.deliver_batch(services, made.id, task_id="test")
    [row] = rows(bundled_sftp.server.local_path(bundled_sftp.import_dir), made.name)
    assert (row["XeroTrackingOptionID"], row["Status"]) == (gone["id"], "DELETED")
    assert assemble_master_data(services, tenant_id) == []  # sent once


def test_putting_records_in_a_file_costs_the_same_statements_for_any_number_of_them_and_a_stale_claim_fails(
    services_on_both_databases: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    from sqlalchemy import event

    from connector.domain.masterdata import MasterRecord

    services = services_on_both_databases
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    with services.ledger.transaction() as session:
        store.set_kind(session, tenant_id, Kind.VENDORS, enabled=True)
    poll_and_map(services, tenant_id)
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement.lower())

    event.listen(services.ledger.engine, "before_cursor_execute", seen)
    try:
        for full in (False, True):  # the first file inserts every record, a full resend replaces every one
            statements.clear()
            [message] = resend(services, Kind.VENDORS, [tenant_id], actor="test") if full else \
                batch.assemble_batches(services, tenant_id)[:1]
            assert isinstance(message, DeliverBatch)
            assert files(services)[-1].bill_count > 20
            touching = [s for s in statements if "master_data_records" in s and not s.startswith("select")]
            assert len(touching) <= 2, touching
    finally:
        event.remove(services.ledger.engine, "before_cursor_execute", seen)
    with services.ledger.transaction() as session:  # a worker that read the fingerprints before that resend
        sent = store.sent_fingerprints(session, tenant_id, Kind.VENDORS)
        key = sorted(sent)[0]
        stale = {key: "the fingerprint before another worker's file"}
        changed = MasterRecord(Kind.VENDORS, key, "changed", {"vendor_id": key, "name": "changed"})
        later = session.get(Batch, files(services)[-1].id)
        assert later is not None
        with pytest.raises(store.LostRecordRace):
            store.claim_records(session, later, [changed], stale)


def test_an_assemble_that_keeps_losing_a_kind_to_another_worker_sends_what_it_made_and_is_tried_again(
    services: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another worker winning a kind's records again and again is contention, not a bug: the assemble stops
    with a retryable error (the task tries again shortly) after sending the files it already made, and the
    bills wait READY for that retry; nothing is lost and no file is made twice."""
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    with_master_data(services, tenant_id)
    poll_and_map(services, tenant_id)
    real = store.claim_records

    def another_worker_always_wins(session: Any, batch_row: Batch, *args: Any, **kwargs: Any) -> None:
        if batch_row.kind == Kind.GL_ACCOUNTS:
            raise store.LostRecordRace(f"{batch_row.kind} records of file {batch_row.name} went to another file")
        real(session, batch_row, *args, **kwargs)

    monkeypatch.setattr(store, "claim_records", another_worker_always_wins)
    sent: list[object] = []
    with pytest.raises(LedgerContention):
        batch.assemble_batches(services, tenant_id, emit=sent.append)
    [vendors] = files(services)
    assert vendors.kind == Kind.VENDORS
    assert sent == [DeliverBatch(vendors.id)], "the file made before the contention is on its way"
    with services.ledger.transaction() as session:
        assert set(session.scalars(select(Bill.state).where(Bill.document_type == "BILL"))) >= {"READY"}
        assert session.scalar(select(Bill.id).where(Bill.state == "BATCHED")) is None

    monkeypatch.setattr(store, "claim_records", real)  # the other worker is done: the task's retry
    batch.assemble_batches(services, tenant_id, emit=sent.append)
    made = files(services)
    assert [f.kind for f in made[:4]] == [Kind.VENDORS, *[k for k in MASTER_KINDS if k != Kind.VENDORS]]
    assert {f.kind for f in made[4:]} == {"bills"}
    assert [m.batch_id for m in sent if isinstance(m, DeliverBatch)] == [f.id for f in made]


def test_a_bill_file_whose_master_data_lands_while_it_looks_goes_instead_of_being_put_off(
    services_on_both_databases: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bill file's look reads its earlier files, the PO file not delivered yet; another sftp worker
    delivers that file before the look puts the bill file off, and its wake-up finds nothing put off yet.
    Put off for WAIT_SECONDS, the bill file would count on the two messages to go sooner (the delivery's
    wake-up, its own re-look), and the sweeper sends only due files: with both lost (Redis emptied, the
    worker holding the re-look killed) it sat for minutes after what it waited for had landed."""
    services = services_on_both_databases
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    with_master_data(services, tenant_id)
    poll_and_map(services, tenant_id)
    batch.assemble_batches(services, tenant_id)
    *master_files, bill_file = files(services)
    [purchase_orders] = [f for f in master_files if f.kind == "purchase_orders"]
    for earlier in master_files:
        if earlier.id != purchase_orders.id:
            assert deliver.deliver_batch(services, earlier.id).state == BatchState.DELIVERED
    real = store.earlier_files
    landed: list[str] = []

    def the_po_file_lands_meanwhile(session: Session, looking: Batch) -> list[EarlierFile]:
        found = real(session, looking)
        if looking.id == bill_file.id and not landed:  # another worker's delivery, committed on its own
            landed.append(deliver.deliver_batch(services, purchase_orders.id).state)
        return found

    monkeypatch.setattr(store, "earlier_files", the_po_file_lands_meanwhile)
    report = deliver.deliver_batch(services, bill_file.id)
    assert landed == [BatchState.DELIVERED]
    folder = bundled_sftp.server.local_path(bundled_sftp.import_dir)
    assert (report.state, report.waits_for) == (BatchState.DELIVERED, ())
    assert (folder / bill_file.name).exists()
