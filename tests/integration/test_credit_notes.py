"""Supplier credit notes from Xero to Stampli: read in the poll's delta (supplier credits only) on a cadence
of their own, and at once when Xero announces one (a CREDITNOTE webhook, or a bill whose AmountCredited
moved), so an idle cycle is two calls; stored and mapped by the bills' rules, delivered once each in the
tenant's file with their document type and negative amounts; a credit applied to a bill Stampli does not
have yet waits for it (or goes flagged, per tenant) and follows it in a later file of the cycle that
delivers the bill."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from connector.config.loader import MappingSetData
from connector.domain.states import BillState
from connector.domain.webhooks import EventCategory, WebhookEvent, WebhookPayload
from connector.errors import XeroUnavailable
from connector.secret import Secret
from connector.services import map, poll, reconcile
from connector.services.context import Services
from connector.services.mappings import current, import_mapping_set
from connector.services.messages import MapInvoice
from connector.sftp import SftpTarget
from connector.store.models import Bill, BillTransition
from connector.store.webhooks import Inbox
from sandbox.xero import XeroSandbox
from sandbox.xero.model import Payment
from tests.support.delivery import Clock
from tests.support.pipeline import invoice_ids_in_files, onboard, run_cycle
from tests.support.sftp_fixtures import BundledSftp

NO_SFTP = SftpTarget(host="127.0.0.1", port=22, username="x", import_dir="/x", host_key="", password=Secret("p"))
CREDIT_NOTE_INTERVAL = 3600  # CONNECTOR_CREDIT_NOTE_INTERVAL_SECONDS's default
POLL_INTERVAL = 900  # the tenants' cadence here


@pytest.fixture
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=11, tenants=1, bills=120) as running:
        yield running


def documents(services: Services) -> dict[str, Bill]:
    with services.ledger.transaction() as session:
        found = {b.invoice_id: b for b in session.scalars(select(Bill))}
        session.expunge_all()
    return found


def rows_by_id(folder: Path) -> dict[str, list[dict[str, str]]]:
    found: dict[str, list[dict[str, str]]] = {}
    for path in sorted(folder.glob("*.csv")):
        for row in csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"), newline="")):
            found.setdefault(row["XeroInvoiceID"], []).append({**row, "file": path.name})
    return found


def calls_by_endpoint(sandbox: XeroSandbox) -> dict[str, int]:
    return {name.rsplit("/", 1)[-1]: sum(codes.values()) for name, codes in sandbox.stats()["calls_by_endpoint"].items()
            if "/api.xro/" in name}


def test_a_poll_reads_supplier_credit_notes_only_and_an_idle_cycle_costs_two_calls(
    services: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    """A tenant's first poll reads its supplier credit notes; an idle cycle after it reads only bills and
    POs: credit notes have a cadence of their own (an hour by default)."""
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    tenant = sandbox.dataset.tenant(tenant_id)
    report = poll.poll_tenant(services, tenant_id, emit=lambda _: None)
    supplier = {n.credit_note_id for n in tenant.credit_notes if n.type == "ACCPAYCREDIT"}
    assert report.credit_notes_seen == len(supplier) > 0
    stored = {i: b for i, b in documents(services).items() if b.document_type == "CREDIT_NOTE"}
    assert set(stored) == supplier  # sales credit notes (ACCRECCREDIT) are never read
    numbers = {n.credit_note_id: n.number for n in tenant.credit_notes}
    assert all(b.invoice_number == numbers[i] and b.state == BillState.DISCOVERED for i, b in stored.items())

    sandbox.advance(120)
    idle, spent = polled_with_calls(services, sandbox, tenant_id)
    assert spent == {"Invoices": 1, "PurchaseOrders": 1}
    assert idle.bills_changed == 0


def polled_with_calls(services: Services, sandbox: XeroSandbox, tenant_id: str) -> tuple[poll.PollReport,
                                                                                         dict[str, int]]:
    """One poll, and the Xero calls it made by endpoint."""
    before = calls_by_endpoint(sandbox)
    report = poll.poll_tenant(services, tenant_id, emit=lambda _: None)
    after = calls_by_endpoint(sandbox)
    return report, {name: after[name] - before.get(name, 0) for name in after if after[name] != before.get(name, 0)}


def test_credit_notes_are_read_again_once_their_own_cadence_has_come(
    services: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    """The credit-note cadence (CONNECTOR_CREDIT_NOTE_INTERVAL_SECONDS) is the backstop for a credit note
    Xero announced neither by webhook nor on a bill: it is read within that interval."""
    clock = services.clock = Clock()
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    poll.poll_tenant(services, tenant_id, emit=lambda _: None)
    bill_id = next(b.invoice_id for b in sandbox.dataset.tenant(tenant_id).bills if b.status == "AUTHORISED")
    added = sandbox.add_credit_note(tenant_id, bill_id, fraction="0.1", allocate=False)  # the bill stays as it is
    clock.advance(CREDIT_NOTE_INTERVAL - POLL_INTERVAL)  # the poll 45 minutes on: not yet
    _, spent = polled_with_calls(services, sandbox, tenant_id)
    assert "CreditNotes" not in spent
    assert added["CreditNoteID"] not in documents(services)

    clock.advance(POLL_INTERVAL - 30)  # the poll nearest the hour, if half a minute early
    report, spent = polled_with_calls(services, sandbox, tenant_id)
    assert spent == {"Invoices": 1, "PurchaseOrders": 1, "CreditNotes": 1}
    assert report.credit_notes_seen >= 1
    assert added["CreditNoteID"] in documents(services)


def credit_note_webhook(tenant_id: str, note_id: str) -> WebhookPayload:
    event = WebhookEvent(tenant_id=tenant_id, category=EventCategory.CREDITNOTE, event_type="CREATE",
                         resource_id=note_id, event_date="2026-03-02T09:30:17.000")
    return WebhookPayload((event,), 1, 1)


def test_a_credit_note_xero_announces_by_webhook_is_read_by_the_poll_the_webhook_wakes(
    services_on_both_databases: Services, sandbox: XeroSandbox,
) -> None:
    """A CREDITNOTE event makes the tenant's next poll read credit notes, whatever their cadence says
    (on PostgreSQL the receiver's one-statement path, on SQLite the general one)."""
    services = services_on_both_databases
    tenant_id = onboard(services, sandbox, NO_SFTP)
    poll.poll_tenant(services, tenant_id, emit=lambda _: None)
    bill_id = next(b.invoice_id for b in sandbox.dataset.tenant(tenant_id).bills if b.status == "AUTHORISED")
    added = sandbox.add_credit_note(tenant_id, bill_id, fraction="0.1", allocate=False)
    body = f"credit note {added['CreditNoteID']}"
    accepted = Inbox(services.ledger).accept(
        body=body, body_sha256=hashlib.sha256(body.encode()).hexdigest(), note=None, window=timedelta(seconds=2),
        payload=credit_note_webhook(tenant_id, added["CreditNoteID"]), now=services.clock())
    assert [t for t, _ in accepted.wakes] == [tenant_id]

    _, spent = polled_with_calls(services, sandbox, tenant_id)
    assert spent.get("CreditNotes") == 1
    assert added["CreditNoteID"] in documents(services)
    _, spent = polled_with_calls(services, sandbox, tenant_id)
    assert "CreditNotes" not in spent, "the webhook's ask was answered once"


def test_a_bill_whose_credit_allocation_changed_in_the_delta_brings_the_credit_notes_in_the_same_poll(
    services: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    """Without a webhook, a credit note applied to a bill still arrives at once: Xero moves the bill's
    AmountCredited (and stamps it), the poll sees that in the bills' delta and reads credit notes too."""
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    poll.poll_tenant(services, tenant_id, emit=lambda _: None)
    bill_id = next(b.invoice_id for b in sandbox.dataset.tenant(tenant_id).bills if b.status == "AUTHORISED")
    added = sandbox.add_credit_note(tenant_id, bill_id, fraction="0.25")

    report, spent = polled_with_calls(services, sandbox, tenant_id)
    assert spent == {"Invoices": 1, "PurchaseOrders": 1, "CreditNotes": 1}
    assert report.bills_changed == 1
    assert added["CreditNoteID"] in documents(services)


def test_a_credit_allocation_seen_on_a_bill_still_brings_the_credit_notes_when_the_poll_fails_after_the_bill(
    services: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    """The bill that showed the allocation is committed before the credit notes are read; if that read
    fails (Xero down, a timeout, a killed worker), the retry no longer sees the bill move, so the ask is
    kept in the ledger with the bill's page and the retry reads the credit notes."""
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    poll.poll_tenant(services, tenant_id, emit=lambda _: None)
    bill_id = next(b.invoice_id for b in sandbox.dataset.tenant(tenant_id).bills if b.status == "AUTHORISED")
    added = sandbox.add_credit_note(tenant_id, bill_id, fraction="0.25")
    sandbox.faults.fail_next("/api.xro/2.0/CreditNotes", 3, 503)
    with pytest.raises(XeroUnavailable):
        poll.poll_tenant(services, tenant_id, emit=lambda _: None)
    assert added["CreditNoteID"] not in documents(services)

    _, spent = polled_with_calls(services, sandbox, tenant_id)
    assert spent.get("CreditNotes") == 1
    assert added["CreditNoteID"] in documents(services)
    _, spent = polled_with_calls(services, sandbox, tenant_id)
    assert "CreditNotes" not in spent, "the ask was answered once"


def test_credit_notes_land_once_negative_and_those_waiting_for_their_bill_follow_it_in_the_same_cycle(
    services: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    tenant = sandbox.dataset.tenant(tenant_id)
    folder = bundled_sftp.server.local_path(bundled_sftp.import_dir)
    run_cycle(services, tenant_id)
    first = documents(services)
    credits = {i: b for i, b in first.items() if b.document_type == "CREDIT_NOTE"}
    waiting = {i for i, b in credits.items() if b.state == BillState.HELD
               and any(r["code"] == "allocated_bill_not_delivered" for r in b.reasons)}
    assert waiting, "the dataset has credits applied to bills not delivered in the same cycle"
    assert any(b.state == BillState.DELIVERED for b in credits.values())
    excluded = {i for i, b in credits.items() if b.state == BillState.EXCLUDED}
    statuses = {n.credit_note_id: n.status for n in tenant.credit_notes}
    assert {statuses[i] for i in excluded} <= {"DRAFT", "VOIDED"}

    rows = rows_by_id(folder)
    for note in tenant.credit_notes:
        if first.get(note.credit_note_id) is None or first[note.credit_note_id].state != BillState.DELIVERED:
            continue
        lines = rows[note.credit_note_id]
        assert {r["DocumentType"] for r in lines} == {"CREDIT_NOTE"}
        assert {r["Total"] for r in lines} == {f"-{note.total}"}
        assert [r["LineAmount"] for r in lines] == [f"-{li.line_amount}" for li in note.lines]
        assert lines[0]["AppliedToXeroInvoiceIDs"] == ";".join(a.invoice_id for a in note.allocations)
        assert lines[0]["AppliedAmounts"] == ";".join(str(a.amount) for a in note.allocations)
    assert all(r["DocumentType"] == "BILL" for i, found in rows.items() if first[i].document_type == "BILL"
               for r in found)

    # A credit whose bills were all delivered in this cycle did not wait for the next poll: their file's
    # delivery re-opened it (audited, naming the file) and it went in a later file of the same cycle.
    allocated = {n.credit_note_id: {a.invoice_id for a in n.allocations} for n in tenant.credit_notes}
    reopened = reopened_by_a_delivery(services)
    assert reopened, "some credit waits for a bill delivered in the same cycle"
    rows = rows_by_id(folder)
    for note_id, file_name in reopened.items():
        assert first[note_id].state == BillState.DELIVERED, first[note_id].reasons
        assert all(rows[bill][0]["file"] < rows[note_id][0]["file"] for bill in allocated[note_id]), note_id
        assert file_name in {rows[bill][0]["file"] for bill in allocated[note_id]}
    for note_id in waiting:  # those still waiting wait for a bill Stampli does not have
        assert any(first.get(bill) is None or first[bill].state != BillState.DELIVERED
                   for bill in allocated[note_id]), note_id

    run_cycle(services, tenant_id)
    second = documents(services)
    for note_id in waiting:
        assert second[note_id].state == BillState.HELD
    in_files = invoice_ids_in_files(folder)
    assert len(in_files) == len(set(in_files)), "a document was delivered twice"
    delivered = {i for i, b in second.items() if b.state == BillState.DELIVERED}
    assert set(in_files) == delivered


def reopened_by_a_delivery(services: Services) -> dict[str, str]:
    """Each credit note a file's delivery re-opened → that file's name (from the audit)."""
    with services.ledger.transaction() as session:
        moves = session.scalars(select(BillTransition).where(BillTransition.from_state == BillState.HELD,
                                                             BillTransition.to_state == BillState.DISCOVERED))
        return {t.invoice_id: str(t.reason).rsplit("file ", 1)[1] for t in moves
                if t.reason and t.reason.startswith("re-opened: the bills it is allocated to were delivered")}


def test_a_tenant_may_send_a_credit_for_an_undelivered_bill_flagged_instead_of_waiting(
    services: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    with services.ledger.transaction() as session:
        _, in_force = current(session, tenant_id)
    settings = {**in_force.settings, "policies": {**in_force.settings.get("policies", {}),
                                                  "allocation": "deliver_flagged"}}
    import_mapping_set(services.ledger, tenant_id, MappingSetData(settings=settings, gl=in_force.gl,
                                                                  tracking=in_force.tracking), actor="test")
    run_cycle(services, tenant_id)
    found = documents(services)
    flagged = {i for i, b in found.items() if b.document_type == "CREDIT_NOTE" and b.state == BillState.DELIVERED
               and any(r["code"] == "allocated_bill_not_delivered" for r in b.reasons)}
    assert flagged
    rows = rows_by_id(bundled_sftp.server.local_path(bundled_sftp.import_dir))
    for note_id in flagged:
        assert rows[note_id][0]["OnHold"] == "Y"
        assert "which Stampli does not have yet" in rows[note_id][0]["HoldReasons"]


def test_a_credit_note_added_in_xero_for_a_delivered_bill_goes_in_the_next_file_once(
    services: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    run_cycle(services, tenant_id)
    bill_id = next(i for i, b in documents(services).items()
                   if b.document_type == "BILL" and b.state == BillState.DELIVERED)
    added = sandbox.add_credit_note(tenant_id, bill_id, fraction="0.5")
    run_cycle(services, tenant_id)
    run_cycle(services, tenant_id)
    note = documents(services)[added["CreditNoteID"]]
    assert note.state == BillState.DELIVERED, note.reasons
    rows = rows_by_id(bundled_sftp.server.local_path(bundled_sftp.import_dir))[added["CreditNoteID"]]
    assert len({r["file"] for r in rows}) == 1
    assert rows[0]["Total"] == f"-{added['Total']}"
    assert rows[0]["AppliedToXeroInvoiceIDs"] == bill_id


def test_a_credit_applied_in_full_to_a_bill_stampli_will_never_have_is_excluded_not_held_for_ever(
    services: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    """A bill credited in full before it went to Stampli is PAID in Xero, so it is never sent (eligible:
    AUTHORISED); its credit note, PAID too, has nothing left for Stampli to apply. In a first sync of an
    organisation with years of history there are many: none may wait for ever in the holds for a bill that
    will never come. A credit still waiting when its bill is decided EXCLUDED (mapped first, as a map
    worker may) is looked at again by the next poll."""
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    key = sandbox.answer_key(tenant_id)
    one_line = [b.invoice_id for b in sandbox.dataset.tenant(tenant_id).bills  # one line: credited in full
                if b.status == "AUTHORISED" and len(b.lines) == 1]
    first = next(i for i in one_line if len(key.get(i, [])) == 1)

    def credit_in_full(invoice_id: str) -> str:
        note = sandbox.add_credit_note(tenant_id, invoice_id, fraction="1", allocate=False)["CreditNoteID"]
        applied = sandbox.allocate_credit_note(tenant_id, note, invoice_id)
        assert (applied["RemainingCredit"], applied["AmountDue"]) == ("0.00", "0.00")
        return str(note)

    in_full = credit_in_full(first)
    run_cycle(services, tenant_id)
    found = documents(services)
    assert found[first].state == BillState.EXCLUDED
    assert found[first].xero_status == "PAID"
    assert found[in_full].state == BillState.EXCLUDED, found[in_full].reasons
    assert [r["code"] for r in found[in_full].reasons] == ["allocated_bills_excluded"]
    assert in_full not in invoice_ids_in_files(bundled_sftp.server.local_path(bundled_sftp.import_dir))

    # Mapped before its bill (held so far) was decided: it waits, and the next poll sees the bill EXCLUDED.
    second = next(i for i in one_line if found[i].state == BillState.HELD)
    sandbox.advance(5)
    later = credit_in_full(second)
    queue: list[Any] = []
    poll.poll_tenant(services, tenant_id, emit=queue.append)
    notes = [m for m in queue if isinstance(m, MapInvoice) and m.invoice_id == later]
    bills = [m for m in queue if isinstance(m, MapInvoice) and m.invoice_id == second]
    for message in [*notes, *bills]:
        map.map_invoice(services, message.tenant_id, message.invoice_id, message.version)
    waiting = documents(services)
    assert waiting[second].state == BillState.EXCLUDED
    assert waiting[later].state == BillState.HELD
    run_cycle(services, tenant_id)
    assert documents(services)[later].state == BillState.EXCLUDED
    assert later not in invoice_ids_in_files(bundled_sftp.server.local_path(bundled_sftp.import_dir))

    # The tenant sends PAID bills from now on: the bill goes, and its credit note is mapped again with it.
    with services.ledger.transaction() as session:
        _, in_force = current(session, tenant_id)
    import_mapping_set(services.ledger, tenant_id, MappingSetData(
        settings={**in_force.settings, "eligible_statuses": ["AUTHORISED", "PAID"]}, gl=in_force.gl,
        tracking=in_force.tracking), actor="test")
    reopened = documents(services)
    assert reopened[first].state == BillState.DISCOVERED
    assert reopened[in_full].state == BillState.DISCOVERED, "excluded for ever with the bill that now goes"


def test_a_bill_credited_in_full_after_delivery_and_so_paid_stays_delivered_and_its_credit_note_follows(
    services: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    """Credits covering the whole bill make Xero mark it PAID at once (FullyPaidOnDate too) with nothing
    paid: settled by the credit note Stampli receives, as a partial credit is (test_settled_after_delivery),
    not a change for a clerk to look at, in the poll and in a reconcile alike."""
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    run_cycle(services, tenant_id)
    store = sandbox.state.store.tenant(tenant_id)
    assert store is not None
    found = documents(services)
    credited = next(i for i, b in found.items() if b.state == BillState.DELIVERED and b.document_type == "BILL"
                    and len(store.find_invoices(i)[0].lines) == 1 and not store.find_invoices(i)[0].credits)
    note = str(sandbox.add_credit_note(tenant_id, credited, fraction="1", allocate=False)["CreditNoteID"])
    assert sandbox.allocate_credit_note(tenant_id, note, credited)["AmountDue"] == "0.00"
    assert store.find_invoices(credited)[0].status == "PAID"
    sandbox.advance(1)

    run_cycle(services, tenant_id)
    assert documents(services)[credited].state == BillState.DELIVERED
    assert documents(services)[credited].xero_status == "PAID", "the ledger shows the bill's status in Xero"
    assert documents(services)[note].state == BillState.DELIVERED, "the credit reaches Stampli"
    report = reconcile.reconcile(services, tenant_id, emit=lambda message: None)
    assert not [line for line in report.changed_after_delivery if line.startswith(credited)]
    assert documents(services)[credited].state == BillState.DELIVERED


def test_a_credit_excluded_with_its_bill_follows_the_bill_when_xero_lets_the_bill_go_later(
    services: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    """A bill paid in part and credited for the rest is PAID in Xero, so never sent, and its credit note,
    applied in full to it, is EXCLUDED with it. When the payment is removed in Xero (a payment reversed)
    the bill is AUTHORISED again and goes to Stampli with nothing else changed: its credit note must follow
    it as a waiting one does, or Stampli pays the gross bill while Xero knows the credit is due."""
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    key = sandbox.answer_key(tenant_id)
    store = sandbox.state.store.tenant(tenant_id)
    assert store is not None
    bill = next(b for b in sandbox.dataset.tenant(tenant_id).bills if b.status == "AUTHORISED"
                and not b.payments and len(b.lines) == 1 and len(key.get(b.invoice_id, [])) == 1)
    note = sandbox.add_credit_note(tenant_id, bill.invoice_id, fraction="0.25", allocate=False)["CreditNoteID"]
    [unpaid] = store.find_invoices(bill.invoice_id)
    credit = next(n.total for n in store.tenant.credit_notes if n.credit_note_id == note)
    part = unpaid.total - credit
    store.replace_invoice(dataclasses.replace(unpaid, payments=(
        Payment("11111111-2222-3333-4444-555555555555", unpaid.day, part, Decimal("1"), "part"),),
        amount_paid=part, amount_due=credit, updated=sandbox.now(), cache={}))
    applied = sandbox.allocate_credit_note(tenant_id, note, bill.invoice_id)
    assert (applied["RemainingCredit"], applied["AmountDue"]) == ("0.00", "0.00")
    run_cycle(services, tenant_id)
    found = documents(services)
    assert (found[bill.invoice_id].state, found[bill.invoice_id].xero_status) == (BillState.EXCLUDED, "PAID")
    assert [r["code"] for r in found[note].reasons] == ["allocated_bills_excluded"]

    sandbox.advance(5)  # the payment is removed: the bill is AUTHORISED again, its credit still applied
    [paid] = store.find_invoices(bill.invoice_id)
    store.replace_invoice(dataclasses.replace(paid, payments=(), amount_paid=Decimal("0.00"), amount_due=part,
                                              status="AUTHORISED", fully_paid_on=None, updated=sandbox.now(),
                                              cache={}))
    for _ in range(2):
        run_cycle(services, tenant_id)
    found = documents(services)
    assert found[bill.invoice_id].state == BillState.DELIVERED, found[bill.invoice_id].reasons
    assert found[note].state == BillState.DELIVERED, found[note].reasons
    rows = rows_by_id(bundled_sftp.server.local_path(bundled_sftp.import_dir))
    assert (len(rows[bill.invoice_id]), len(rows[note])) == (1, 1), "each delivered once"
    assert rows[note][0]["file"] >= rows[bill.invoice_id][0]["file"], "the credit follows its bill"
