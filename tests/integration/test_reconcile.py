"""Reconciliation against the sandbox: edits the deltas did not see, and bills the ledger never got."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import delete, func, select, update

from connector.cli import cli
from connector.domain.states import BillState
from connector.services import reconcile as reconciliation
from connector.services.context import Services
from connector.services.reconcile import reconcile
from connector.store.models import Bill, BillTransition
from sandbox.xero import XeroSandbox
from sandbox.xero.model import Allocation, CreditNote
from tests.support.pipeline import onboard, run_cycle
from tests.support.services import point_command_at, services_for_sandbox
from tests.support.sftp_fixtures import BundledSftp


@pytest.fixture
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=42, tenants=1, bills=120) as running:
        yield running


def test_reconcile_marks_changes_the_deltas_missed_and_stores_missing_bills(
    sandbox: XeroSandbox, services: Services, bundled_sftp: BundledSftp, monkeypatch: pytest.MonkeyPatch,
) -> None:
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    run_cycle(services, tenant_id)
    with services.ledger.transaction() as session:
        delivered = list(session.scalars(select(Bill).where(Bill.state == BillState.DELIVERED,
                                                            Bill.document_type == "BILL").order_by(Bill.id)))
        edited, lost = delivered[0], delivered[1]
        # An edit that moved nothing we saw: we think we delivered an older version than Xero's.
        session.execute(update(Bill).where(Bill.id == edited.id).values(mapped_version=edited.version - 1))
        # A bill the ledger never got (e.g. an edit that did not move UpdatedDateUTC before our first read).
        session.execute(delete(BillTransition).where(BillTransition.invoice_id == lost.invoice_id))
        session.execute(delete(Bill).where(Bill.id == lost.id))
    calls_before = sandbox.stats()["calls"]
    found: list[object] = []
    report = reconcile(services, tenant_id, emit=found.append)
    assert report.delivered_checked == len(delivered) - 1
    assert [line.split()[0] for line in report.changed_after_delivery] == [edited.invoice_id]
    assert lost.invoice_id in report.missing_from_ledger
    assert len(found) == 1  # the lost bill, to be mapped again; nothing else re-opened
    assert report.calls == -(-(len(delivered) - 1) // 50) + 2  # + the eligible bills, the supplier credit notes
    assert sandbox.stats()["calls"] - calls_before == report.calls
    with services.ledger.transaction() as session:
        assert session.scalars(select(Bill.state).where(Bill.invoice_id == edited.invoice_id)).one() \
            == BillState.CHANGED_AFTER_DELIVERY
        assert session.scalars(select(Bill.state).where(Bill.invoice_id == lost.invoice_id)).one() \
            == BillState.DISCOVERED
    point_command_at(services, monkeypatch)
    for name, url in sandbox.urls.items():
        if name in ("token", "api"):
            monkeypatch.setenv(f"CONNECTOR_XERO_{name.upper()}_URL", url)
    result = CliRunner().invoke(cli, ["reconcile", "--tenant", tenant_id], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "0 changed after delivery; 0 eligible bills or credit notes the ledger lacked" in result.output



def test_reconcile_reads_delivered_credit_notes_back_and_names_each_one_changed_in_xero(
    sandbox: XeroSandbox, services: Services, bundled_sftp: BundledSftp,
) -> None:
    """A delivered credit note voided, deleted, allocated otherwise, given another total or another supplier
    in Xero, even by an edit that left its UpdatedDateUTC where it was, is CHANGED_AFTER_DELIVERY after a
    reconcile, which names it (number and id) and what changed. Credit notes are not Invoices (no `IDs=`):
    they are read in one paged CreditNotes read of the supplier credits, counted with the bills' calls."""
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    tenant = sandbox.dataset.tenant(tenant_id)
    for bill in [b for b in tenant.bills if b.status == "AUTHORISED"][:3]:
        sandbox.add_credit_note(tenant_id, bill.invoice_id, fraction="0.1", allocate=False)
    run_cycle(services, tenant_id)
    with services.ledger.transaction() as session:
        delivered = {b.invoice_id: b.invoice_number for b in session.scalars(select(Bill).where(
            Bill.state == BillState.DELIVERED, Bill.document_type == "CREDIT_NOTE"))}
    store = sandbox.state.store.tenant(tenant_id)
    assert store is not None
    notes = [n for n in store.credit_notes() if n.credit_note_id in delivered]
    assert len(notes) >= 6, "the dataset delivers enough credit notes to change five and keep one"
    voided, deleted, repriced, allocated, other_supplier, *untouched = notes
    other = next(c for c in tenant.contacts if c.is_supplier and c.contact_id != other_supplier.contact_id)
    allocation = Allocation("a1a1a1a1-0000-4000-8000-000000000001", tenant.bills[0].invoice_id,
                            Decimal("1.00"), allocated.day)
    changes: list[tuple[CreditNote, dict[str, object]]] = [
        (voided, {"status": "VOIDED"}), (deleted, {"status": "DELETED"}),
        (repriced, {"total": repriced.total + 10, "sub_total": repriced.sub_total + 10}),
        (allocated, {"allocations": (*allocated.allocations, allocation)}),
        (other_supplier, {"contact_id": other.contact_id})]
    for note, change in changes:  # edits that moved nothing a delta reads: each keeps its UpdatedDateUTC
        store.replace_credit_note(dataclasses.replace(note, **change, cache={}))  # type: ignore[arg-type]

    before = sandbox.stats()
    report = reconcile(services, tenant_id, emit=lambda _: None)
    after = sandbox.stats()
    changed = {line.split()[0]: line for line in report.changed_after_delivery}
    assert set(changed) == {note.credit_note_id for note, _ in changes}
    for note, _ in changes:
        assert f" credit note {delivered[note.credit_note_id]} " in changed[note.credit_note_id]
    assert "was voided in Xero" in changed[voided.credit_note_id]
    assert "was deleted in Xero" in changed[deleted.credit_note_id]
    assert f"total {repriced.total} → {repriced.total + 10}" in changed[repriced.credit_note_id]
    assert "allocations" in changed[allocated.credit_note_id]
    assert "supplier" in changed[other_supplier.credit_note_id]
    assert report.credit_notes_checked == len(delivered)

    def reads(stats: dict[str, Any]) -> int:
        return sum(n for name, codes in stats["calls_by_endpoint"].items() if name.endswith("/CreditNotes")
                   for n in codes.values())

    assert reads(after) - reads(before) == 1
    assert after["calls"] - before["calls"] == report.calls
    with services.ledger.transaction() as session:
        states = dict(session.execute(select(Bill.invoice_id, Bill.state).where(
            Bill.invoice_id.in_([n.credit_note_id for n in notes]))).tuples().all())
        reasons = dict(session.execute(select(BillTransition.invoice_id, BillTransition.reason).where(
            BillTransition.to_state == BillState.CHANGED_AFTER_DELIVERY)).tuples().all())
    assert {i: s for i, s in states.items() if s == BillState.CHANGED_AFTER_DELIVERY}.keys() == changed.keys()
    assert all(states[n.credit_note_id] == BillState.DELIVERED for n in untouched)
    assert (reasons[voided.credit_note_id] or "").startswith(
        f"reconciliation: credit note {delivered[voided.credit_note_id]} ")
    again = reconcile(services, tenant_id, emit=lambda _: None)
    assert again.changed_after_delivery == [], "what was marked once is not marked again"


@pytest.fixture(params=["sqlite", "postgresql"])
def either_ledger(request: pytest.FixtureRequest, sandbox: XeroSandbox, tmp_path: Path) -> Iterator[Services]:
    schema = request.getfixturevalue("pg_schema") if request.param == "postgresql" else None
    built = services_for_sandbox(sandbox, tmp_path, request.param, schema=schema)
    yield built
    built.close()


@pytest.mark.parametrize("kept", [0, 1, 4, 5])
def test_reconcile_reads_the_delivered_bills_a_chunk_at_a_time_and_checks_each_once(
    sandbox: XeroSandbox, either_ledger: Services, bundled_sftp: BundledSftp, monkeypatch: pytest.MonkeyPatch,
    kept: int,
) -> None:
    """The delivered bills are read from the ledger a chunk at a time (keyset on InvoiceID), each chunk
    read back from Xero and compared before the next is read: reconcile holds a chunk of the tenant, never
    all of it. Across the chunk's edges (none, one, a full chunk, a chunk and one) each bill is checked once
    and the one changed in the last chunk is found; credit notes, read the same way, are all checked."""
    services = either_ledger
    monkeypatch.setattr(reconciliation, "DELIVERED_CHUNK", 4)
    monkeypatch.setattr(reconciliation, "IDS_PER_CALL", 3)  # a chunk takes two calls: their edges too
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    tenant = sandbox.dataset.tenant(tenant_id)
    for bill in [b for b in tenant.bills if b.status == "AUTHORISED"][:6]:
        sandbox.add_credit_note(tenant_id, bill.invoice_id, fraction="0.1", allocate=False)
    run_cycle(services, tenant_id)
    with services.ledger.transaction() as session:
        delivered = sorted(session.scalars(select(Bill.invoice_id).where(Bill.state == BillState.DELIVERED,
                                                                         Bill.document_type == "BILL")))
        chosen = delivered[-kept:] if kept else []
        session.execute(update(Bill).where(Bill.document_type == "BILL", Bill.invoice_id.not_in(chosen))
                        .values(state=BillState.EXCLUDED))  # settled otherwise: not compared
        if chosen:  # the last bill of the last chunk was edited in a way no delta saw
            session.execute(update(Bill).where(Bill.invoice_id == chosen[-1])
                            .values(mapped_version=Bill.version - 1))
        credit_notes = session.scalar(select(func.count()).select_from(Bill).where(
            Bill.state == BillState.DELIVERED, Bill.document_type == "CREDIT_NOTE"))
    assert (credit_notes or 0) > 4, "enough delivered credit notes to cross a chunk's edge"
    steps: list[tuple[str, int]] = []
    read_ids = reconciliation.delivered_ids

    def read(session: Any, tenant: str, kind: str, *, after: str, limit: int) -> list[str]:
        found = read_ids(session, tenant, kind, after=after, limit=limit)
        steps.append((f"ledger {kind}", len(found)))
        return found

    get = reconciliation.TenantReader.get

    def xero(reader: Any, endpoint: str, params: dict[str, Any], since: Any) -> dict[str, Any]:
        if "IDs" in params:
            steps.append(("xero IDs", len(str(params["IDs"]).split(","))))
        return get(reader, endpoint, params, since)

    monkeypatch.setattr(reconciliation, "delivered_ids", read)
    monkeypatch.setattr(reconciliation.TenantReader, "get", xero)
    report = reconcile(services, tenant_id, emit=lambda _: None)
    assert report.delivered_checked == kept
    assert [line.split()[0] for line in report.changed_after_delivery] == chosen[-1:]
    assert report.credit_notes_checked == credit_notes
    bills = [step for step in steps if step[0] != "ledger CREDIT_NOTE"]
    expected: list[tuple[str, int]] = []
    for start in range(0, kept + 1, 4):  # each chunk read, then asked of Xero (3 IDs a call), then the next
        chunk = min(4, kept - start)
        expected += [("ledger BILL", chunk), *[("xero IDs", min(3, chunk - i)) for i in range(0, chunk, 3)]]
    assert bills == expected
    assert all(n <= 4 for step, n in steps if step.startswith("ledger")), steps
