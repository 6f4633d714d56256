"""The supplier's documents go with their bills: fetched once each (AttachmentID and sha256 in the ledger),
only for bills that will be delivered and have them, in the tenant's mode (off, PDFs, all; a size cap),
and delivered in one ZIP with the data file, whose Documents column names each bill's files; a document
Xero does not serve holds only its own bill, and the next poll tries again."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import zipfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import func, select, update

from connector.config.loader import MappingSetData
from connector.domain.states import BillState
from connector.errors import XeroRateLimited
from connector.services import batch, deliver, map, poll
from connector.services.context import Services
from connector.services.history import bill_views
from connector.services.holds import release
from connector.services.mappings import current, import_mapping_set
from connector.services.messages import AssembleBatch, DeliverBatch
from connector.services.status_report import status_report
from connector.services.sync_now import reopened_work
from connector.store.models import AttachmentRow, Bill
from connector.xero.budget import Limits, LocalLeases, RateBudget
from connector.xero.client import XeroApi
from sandbox.xero import XeroSandbox
from sandbox.xero.attachments import content
from tests.support.delivery import Clock
from tests.support.pipeline import onboard, poll_and_map, run_cycle
from tests.support.sftp_fixtures import BundledSftp

LIST = "GET /api.xro/2.0/Invoices/{id}/Attachments"
FILE = "GET /api.xro/2.0/Invoices/{id}/Attachments/{id}"
CREDIT_NOTE_LIST = "GET /api.xro/2.0/CreditNotes/{id}/Attachments"
CREDIT_NOTE_FILE = "GET /api.xro/2.0/CreditNotes/{id}/Attachments/{id}"


@pytest.fixture
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=11, tenants=1, bills=80) as running:
        yield running


def with_attachments(services: Services, tenant_id: str, **setting: Any) -> None:
    with services.ledger.transaction() as session:
        _, in_force = current(session, tenant_id)
    settings = {**in_force.settings, "attachments": setting}
    import_mapping_set(services.ledger, tenant_id, MappingSetData(settings=settings, gl=in_force.gl,
                                                                  tracking=in_force.tracking), actor="test")


def calls(sandbox: XeroSandbox) -> dict[str, int]:
    return {name: sum(codes.values()) for name, codes in sandbox.stats()["calls_by_endpoint"].items()}


def states(services: Services) -> dict[str, Bill]:
    with services.ledger.transaction() as session:
        found = {b.invoice_id: b for b in session.scalars(select(Bill))}
        session.expunge_all()
    return found


def delivered_documents(folder: Path) -> tuple[dict[str, list[str]], dict[str, bytes], list[str]]:
    """Per bill, the Documents column; every document's bytes by its name in its ZIP; the files found."""
    named: dict[str, list[str]] = {}
    stored: dict[str, bytes] = {}
    found = sorted(p.name for p in folder.iterdir() if not p.name.endswith(".part"))
    for path in sorted(folder.iterdir()):
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as archive:
                [data_name] = [n for n in archive.namelist() if not n.startswith("documents/")]
                assert data_name == path.stem + ".csv"
                text = archive.read(data_name).decode("utf-8")
                stored.update({n: archive.read(n) for n in archive.namelist() if n.startswith("documents/")})
        elif path.suffix == ".csv":
            text = path.read_text(encoding="utf-8")
        else:
            continue
        for row in csv.DictReader(io.StringIO(text, newline="")):
            named[row["XeroInvoiceID"]] = [n for n in row["Documents"].split(";") if n]
    return named, stored, found


def test_documents_land_once_beside_their_bills_with_the_sandboxs_bytes(
    services: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    with_attachments(services, tenant_id, mode="all")
    bills = {b.invoice_id: b for b in sandbox.dataset.tenant(tenant_id).bills}
    before = calls(sandbox)
    run_cycle(services, tenant_id)
    spent = {k: v - before.get(k, 0) for k, v in calls(sandbox).items()}
    folder = bundled_sftp.server.local_path(bundled_sftp.import_dir)
    named, stored, files = delivered_documents(folder)
    ledger = states(services)
    delivered = {i for i, b in ledger.items() if b.state == BillState.DELIVERED and b.document_type == "BILL"}
    carrying = {i for i in delivered if bills[i].attachments}
    assert carrying, "no delivered bill had documents"
    assert any(name.endswith(".zip") for name in files)
    for invoice_id in delivered:
        expected = bills[invoice_id].attachments
        assert len(named[invoice_id]) == len(expected), invoice_id
        for name, attachment in zip(named[invoice_id], expected, strict=True):
            assert name.startswith(f"documents/{invoice_id}/")
            assert hashlib.sha256(stored[name]).hexdigest() == hashlib.sha256(content(attachment)).hexdigest()
    bills_stored = [n for n in stored if n.split("/")[1] in bills]  # credit notes' documents go too (below)
    assert len(bills_stored) == sum(len(bills[i].attachments) for i in carrying)
    # Only bills that went were looked at: one list call each, one call per file, none for the rest.
    assert spent.get(LIST, 0) == len(carrying)
    assert spent.get(FILE, 0) == len(bills_stored)
    with services.ledger.transaction() as session:
        kept = session.scalar(select(func.count()).select_from(AttachmentRow))
    assert kept == len(stored)

    again = calls(sandbox)
    run_cycle(services, tenant_id)
    assert {k: v - again.get(k, 0) for k, v in calls(sandbox).items() if "Attachments" in k and v != again.get(k, 0)
            } == {}, "an idle cycle fetched a document"


def test_a_supplier_credit_notes_documents_go_with_it_as_a_bills_do(
    services: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    """Under the same tenant policy: listed (`CreditNotes/{id}/Attachments`) only for a credit note Xero
    says has documents and that goes, each file fetched once, and delivered in its file's ZIP, named in
    its Documents column, with the sandbox's bytes."""
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    with_attachments(services, tenant_id, mode="all")
    notes = {n.credit_note_id: n for n in sandbox.dataset.tenant(tenant_id).credit_notes}
    before = calls(sandbox)
    run_cycle(services, tenant_id)
    spent = {k: v - before.get(k, 0) for k, v in calls(sandbox).items()}
    named, stored, _ = delivered_documents(bundled_sftp.server.local_path(bundled_sftp.import_dir))
    ledger = states(services)
    delivered = {i for i, b in ledger.items() if b.state == BillState.DELIVERED and b.document_type == "CREDIT_NOTE"}
    carrying = {i for i in delivered if notes[i].attachments}
    assert carrying, "no delivered credit note had documents"
    for credit_note_id in delivered:
        expected = notes[credit_note_id].attachments
        assert len(named[credit_note_id]) == len(expected), credit_note_id
        for name, attachment in zip(named[credit_note_id], expected, strict=True):
            assert name.startswith(f"documents/{credit_note_id}/")
            assert hashlib.sha256(stored[name]).hexdigest() == hashlib.sha256(content(attachment)).hexdigest()
    assert spent.get(CREDIT_NOTE_LIST, 0) == len(carrying)
    assert spent.get(CREDIT_NOTE_FILE, 0) == sum(len(notes[i].attachments) for i in carrying)
    not_sent = {i for i, n in notes.items() if n.attachments and i not in delivered}
    assert not any(name.split("/")[1] in not_sent for name in stored)


def likely_delivered(sandbox: XeroSandbox, tenant_id: str) -> list[Any]:
    key = sandbox.answer_key(tenant_id)
    return [b for b in sandbox.dataset.tenant(tenant_id).bills if b.attachments and b.status == "AUTHORISED"
            and len(key.get(b.invoice_id, [])) == 1]


def test_a_document_xero_fails_to_serve_holds_only_its_bill_until_the_next_poll(
    services: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    with_attachments(services, tenant_id, mode="all")
    victim = likely_delivered(sandbox, tenant_id)[0]
    path = f"/api.xro/2.0/Invoices/{victim.invoice_id}/Attachments/{victim.attachments[0].attachment_id}"
    sandbox.faults.fail_next(path, 50, 500)
    run_cycle(services, tenant_id)
    ledger = states(services)
    held = ledger[victim.invoice_id]
    assert held.state == BillState.HELD
    assert [r["code"] for r in held.reasons] == ["attachment_unavailable"]
    assert victim.attachments[0].file_name in held.reasons[0]["name"]
    assert "HTTP 500" in held.reasons[0]["problem"]
    others = [b for b in sandbox.dataset.tenant(tenant_id).bills if b.attachments and b is not victim
              and ledger[b.invoice_id].state == BillState.DELIVERED]
    assert others, "the other bills with documents went"
    folder = bundled_sftp.server.local_path(bundled_sftp.import_dir)
    assert victim.invoice_id not in delivered_documents(folder)[0]

    sandbox.faults.clear()
    run_cycle(services, tenant_id)
    assert states(services)[victim.invoice_id].state == BillState.DELIVERED
    named, stored, _ = delivered_documents(folder)
    assert [hashlib.sha256(stored[n]).hexdigest() for n in named[victim.invoice_id]] == [
        hashlib.sha256(content(a)).hexdigest() for a in victim.attachments]


def test_pdf_mode_and_the_size_cap_choose_what_goes_and_off_costs_no_call(
    services: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    before = calls(sandbox)
    run_cycle(services, tenant_id)  # attachments off (the default): no call, plain CSV files
    assert not any("Attachments" in k for k, v in calls(sandbox).items() if v != before.get(k, 0))
    folder = bundled_sftp.server.local_path(bundled_sftp.import_dir)
    assert all(p.suffix == ".csv" for p in folder.iterdir())
    assert all(not names for names in delivered_documents(folder)[0].values())


def test_only_pdfs_under_the_cap_are_sent_in_pdf_mode(
    services: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    with_attachments(services, tenant_id, mode="pdf", max_bytes=1_000_000)
    run_cycle(services, tenant_id)
    named, stored, _ = delivered_documents(bundled_sftp.server.local_path(bundled_sftp.import_dir))
    bills = {b.invoice_id: b for b in sandbox.dataset.tenant(tenant_id).bills}
    assert stored
    for invoice_id, names in named.items():
        if invoice_id not in bills:
            continue
        expected = [a for a in bills[invoice_id].attachments
                    if a.mime_type == "application/pdf" and a.content_length <= 1_000_000]
        assert len(names) == len(expected), invoice_id
    assert all(n.lower().endswith(".pdf") for n in stored)


def test_a_document_over_the_size_cap_flags_its_bill_in_the_file_and_in_the_ledger_never_silently(
    services: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    bills = {b.invoice_id: b for b in likely_delivered(sandbox, tenant_id)}
    sizes = sorted(a.content_length for b in bills.values() for a in b.attachments)
    cap = sizes[len(sizes) // 2]
    with_attachments(services, tenant_id, mode="all", max_bytes=cap)
    run_cycle(services, tenant_id)
    folder = bundled_sftp.server.local_path(bundled_sftp.import_dir)
    named, _, _ = delivered_documents(folder)
    flags = flags_in_files(folder)
    ledger = states(services)
    over = {i: [a for a in b.attachments if a.content_length > cap] for i, b in bills.items()}
    checked = 0
    for invoice_id, too_big in over.items():
        bill = ledger[invoice_id]
        if not too_big or bill.state != BillState.DELIVERED:
            continue
        checked += 1
        codes = [r["code"] for r in bill.reasons]
        assert codes.count("attachment_over_cap") == len(too_big), invoice_id
        assert {r["name"] for r in bill.reasons if r["code"] == "attachment_over_cap"} == {a.file_name for a in too_big}
        on_hold, reasons = flags[invoice_id]
        assert on_hold == "Y"
        for attachment in too_big:
            assert f"{attachment.file_name!r}" in reasons
            assert f"not sent (over {cap} bytes): {attachment.file_name}" in named[invoice_id]
    assert checked, "no delivered bill had a document over the cap"
    left_out = status_report(services.ledger, tenant_id).documents_left_out
    flagged = {(i, r["name"], r["cap"]) for i, b in ledger.items() for r in b.reasons
               if r["code"] == "attachment_over_cap"}
    assert {(r["invoice_id"], r["name"], r["cap"]) for r in left_out} == flagged
    assert {(i, a.file_name, cap) for i, too_big in over.items() if ledger[i].state == BillState.DELIVERED
            for a in too_big} <= flagged
    for invoice_id, too_big in over.items():  # a bill with every document under the cap is not flagged
        if not too_big and ledger[invoice_id].state == BillState.DELIVERED:
            assert flags[invoice_id][0] == "N", invoice_id


def flags_in_files(folder: Path) -> dict[str, tuple[str, str]]:
    """Per bill, the file's OnHold and HoldReasons columns."""
    found: dict[str, tuple[str, str]] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as archive:
                text = archive.read(path.stem + ".csv").decode("utf-8")
        elif path.suffix == ".csv":
            text = path.read_text(encoding="utf-8")
        else:
            continue
        for row in csv.DictReader(io.StringIO(text, newline="")):
            found[row["XeroInvoiceID"]] = (row["OnHold"], row["HoldReasons"])
    return found


def with_budget(services: Services, per_minute: int) -> Services:
    """The same services with a rate budget of their own: `per_minute` calls for each tenant."""
    budget = RateBudget("memory://", LocalLeases(), Limits(per_minute=per_minute))
    return dataclasses.replace(services, xero=XeroApi(requests.Session(), services.settings.xero.api,
                                                      services.settings.xero_timeout_seconds, budget))


def attachment_calls(sandbox: XeroSandbox) -> tuple[int, int]:
    counted = calls(sandbox)
    return counted.get(LIST, 0), counted.get(FILE, 0)


def test_document_calls_are_counted_in_the_rate_budget_and_a_spent_budget_makes_the_bill_wait_not_hold(
    services: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    """A list and each file cost one call of the tenant's budget; when it is spent mid-bill no call goes to
    Xero past it, the bill stays DISCOVERED with the run not counted, and the next try fetches only what
    is still missing (each file once)."""
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    with_attachments(services, tenant_id, mode="all")
    victim = next(b for b in likely_delivered(sandbox, tenant_id) if len(b.attachments) >= 2)
    poll.poll_tenant(services, tenant_id, emit=lambda message: None)  # stored, not mapped yet
    with services.ledger.transaction() as session:
        version = session.scalars(select(Bill.version).where(Bill.invoice_id == victim.invoice_id)).one()
    before = attachment_calls(sandbox)

    tight = with_budget(services, per_minute=2)  # the list and one file
    with pytest.raises(XeroRateLimited):
        map.map_invoice(tight, tenant_id, victim.invoice_id, version)
    assert attachment_calls(sandbox) == (before[0] + 1, before[1] + 1), "a call went past the budget"
    waiting = states(services)[victim.invoice_id]
    assert waiting.state == BillState.DISCOVERED
    assert waiting.map_runs == 0, "the budget's wait counted against the bill"

    map.map_invoice(with_budget(services, per_minute=60), tenant_id, victim.invoice_id, version)
    assert states(services)[victim.invoice_id].state == BillState.READY
    assert attachment_calls(sandbox) == (before[0] + 1, before[1] + len(victim.attachments)), \
        "the list or a file fetched already was asked for again"


def test_a_bill_edited_in_xero_before_it_goes_is_listed_again_but_no_document_is_downloaded_twice(
    services: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    with_attachments(services, tenant_id, mode="all")
    victim = next(b for b in likely_delivered(sandbox, tenant_id) if len(b.attachments) >= 2)
    poll_and_map(services, tenant_id)  # READY with its documents fetched, not in a file yet
    ready = states(services)[victim.invoice_id]
    assert ready.state == BillState.READY
    before = attachment_calls(sandbox)

    sandbox.advance(5)
    store = sandbox.state.store.tenant(tenant_id)
    assert store is not None
    [invoice] = [i for i in store.invoices() if i.invoice_id == victim.invoice_id]
    store.replace_invoice(dataclasses.replace(invoice, reference="edited", updated=sandbox.now(), cache={}))
    run_cycle(services, tenant_id)

    edited = states(services)[victim.invoice_id]
    assert edited.state == BillState.DELIVERED
    assert edited.version > ready.version, "the edit was not read"
    assert attachment_calls(sandbox) == (before[0] + 1, before[1]), "listed again once; no file fetched twice"
    named, stored, _ = delivered_documents(bundled_sftp.server.local_path(bundled_sftp.import_dir))
    assert [hashlib.sha256(stored[n]).hexdigest() for n in named[victim.invoice_id]] == [
        hashlib.sha256(content(a)).hexdigest() for a in victim.attachments]


class WithoutLengths(XeroApi):
    """Xero's API as it may answer: an attachment listed without its ContentLength (optional in the spec)."""

    def get(self, token: Any, tenant_id: str, endpoint: str, params: Any, **kwargs: Any) -> dict[str, Any]:
        body = super().get(token, tenant_id, endpoint, params, **kwargs)
        if endpoint.endswith("/Attachments"):
            body = {**body, "Attachments": [{k: v for k, v in item.items() if k != "ContentLength"}
                                            for item in body["Attachments"]]}
        return body


def test_the_size_cap_holds_for_a_document_xero_lists_without_its_length(
    services: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    """The cap is judged on the bytes when the listing gives no length: the document is neither kept nor
    sent, its bill goes flagged with the real size, and it is not downloaded again."""
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    bills = {b.invoice_id: b for b in likely_delivered(sandbox, tenant_id)}
    sizes = sorted(a.content_length for b in bills.values() for a in b.attachments)
    cap = sizes[len(sizes) // 2]
    with_attachments(services, tenant_id, mode="all", max_bytes=cap)
    blind = dataclasses.replace(services, xero=WithoutLengths(
        requests.Session(), services.settings.xero.api, services.settings.xero_timeout_seconds,
        RateBudget("memory://", LocalLeases())))
    run_cycle(blind, tenant_id)

    with services.ledger.transaction() as session:
        kept = list(session.scalars(select(AttachmentRow.size)))
    assert kept
    assert max(kept) <= cap, "a document over the cap was kept"
    _, stored, _ = delivered_documents(bundled_sftp.server.local_path(bundled_sftp.import_dir))
    assert stored
    assert max(len(b) for b in stored.values()) <= cap, "a document over the cap was sent"
    ledger = states(services)
    checked = 0
    for invoice_id, bill in bills.items():
        too_big = {(a.file_name, a.content_length) for a in bill.attachments if a.content_length > cap}
        if not too_big or ledger[invoice_id].state != BillState.DELIVERED:
            continue
        checked += 1
        assert {(r["name"], r["size"]) for r in ledger[invoice_id].reasons
                if r["code"] == "attachment_over_cap"} == too_big, invoice_id
    assert checked, "no delivered bill had a document over the cap"

    before = attachment_calls(sandbox)
    for invoice_id in bills:  # mapped again at the same version: the listing says what it knows now
        with services.ledger.transaction() as session:
            session.execute(update(Bill).where(Bill.invoice_id == invoice_id).values(state=BillState.DISCOVERED))
        map.map_invoice(blind, tenant_id, invoice_id, ledger[invoice_id].version)
    assert attachment_calls(sandbox) == before, "a document over the cap was downloaded again"


def test_a_document_removed_in_xero_after_it_was_listed_is_listed_again_and_its_bill_goes_without_it(
    services: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    """The listing is kept per bill version, but Xero may drop or replace a file without a new version of
    the bill: a file Xero no longer serves (404) or serves at another length than listed makes the next
    try list the bill again, instead of asking for the same file at every poll for ever (the tries on
    their backoff: the polls here 15 minutes apart)."""
    clock = services.clock = Clock()
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    with_attachments(services, tenant_id, mode="all")
    victim = next(b for b in likely_delivered(sandbox, tenant_id) if len(b.attachments) >= 2)
    removed, kept = victim.attachments[0], victim.attachments[1:]
    path = f"/api.xro/2.0/Invoices/{victim.invoice_id}/Attachments/{removed.attachment_id}"
    sandbox.faults.fail_next(path, 50, 500)
    run_cycle(services, tenant_id)  # listed, then its file failed: held, its listing kept
    assert states(services)[victim.invoice_id].state == BillState.HELD

    sandbox.faults.clear()
    store = sandbox.state.store.tenant(tenant_id)
    assert store is not None
    [invoice] = store.find_invoices(victim.invoice_id)
    store.replace_invoice(dataclasses.replace(invoice, attachments=tuple(kept), cache={}))  # same UpdatedDateUTC
    for _ in range(3):
        clock.advance(15 * 60)
        run_cycle(services, tenant_id)
    bill = states(services)[victim.invoice_id]
    assert bill.state == BillState.DELIVERED, bill.reasons
    named, stored, _ = delivered_documents(bundled_sftp.server.local_path(bundled_sftp.import_dir))
    assert [hashlib.sha256(stored[n]).hexdigest() for n in named[victim.invoice_id]] == [
        hashlib.sha256(content(a)).hexdigest() for a in kept]


class CountingFiles(WithoutLengths):
    """Lists without lengths, and counts each file asked for by its endpoint."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.files: dict[str, int] = {}

    def get_file(self, token: Any, tenant_id: str, endpoint: str, mime_type: str) -> bytes:
        self.files[endpoint] = self.files.get(endpoint, 0) + 1
        return super().get_file(token, tenant_id, endpoint, mime_type)


def test_a_document_found_over_the_cap_is_not_downloaded_again_when_another_document_of_its_bill_fails(
    services: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    """What the bytes of a document listed without its length said (over the cap) is kept as soon as it is
    known: a later document of the same bill failing (a 500) holds the bill, and the next poll's try
    fetches only that one, not the document over the cap again (at every poll while the other fails)."""
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    victim = next(b for b in likely_delivered(sandbox, tenant_id) if len(b.attachments) >= 2)
    big, failing = victim.attachments[0], victim.attachments[1]  # fetched in this order
    with_attachments(services, tenant_id, mode="all", max_bytes=big.content_length - 1)
    counting = CountingFiles(requests.Session(), services.settings.xero.api, services.settings.xero_timeout_seconds,
                             RateBudget("memory://", LocalLeases()))
    blind = dataclasses.replace(services, xero=counting)
    sandbox.faults.fail_next(f"/api.xro/2.0/Invoices/{victim.invoice_id}/Attachments/{failing.attachment_id}",
                             50, 500)
    run_cycle(blind, tenant_id)
    assert states(services)[victim.invoice_id].state == BillState.HELD
    sandbox.faults.clear()
    run_cycle(blind, tenant_id)

    bill = states(services)[victim.invoice_id]
    assert bill.state == BillState.DELIVERED, bill.reasons
    assert big.file_name in [r["name"] for r in bill.reasons if r["code"] == "attachment_over_cap"]
    assert counting.files[f"Invoices/{victim.invoice_id}/Attachments/{big.attachment_id}"] == 1, \
        "the document over the cap was downloaded again"


def test_a_file_carrying_documents_closes_at_the_byte_budget_and_the_rest_go_in_the_next_files(
    services: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    """A file's documents together stay within CONNECTOR_MAX_FILE_DOCUMENT_BYTES (decided from the sizes in
    the ledger): the READY bills beyond go in the next files of the same cycle, each bill exactly once, and a
    bill whose documents alone exceed the budget goes alone in its file."""
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    with_attachments(services, tenant_id, mode="all")
    bills = {b.invoice_id: b for b in sandbox.dataset.tenant(tenant_id).bills}
    budget = 60_000
    assert any(sum(a.content_length for a in b.attachments) > budget for b in bills.values())
    bounded = dataclasses.replace(services, settings=dataclasses.replace(services.settings,
                                                                         max_file_document_bytes=budget))
    run_cycle(bounded, tenant_id)
    folder = bundled_sftp.server.local_path(bundled_sftp.import_dir)
    per_file: dict[str, list[str]] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as archive:
                text = archive.read(path.stem + ".csv").decode("utf-8")
                documents = [(n, archive.getinfo(n).file_size) for n in archive.namelist()
                             if n.startswith("documents/")]
            owners = {n.split("/")[1] for n, _ in documents}
            assert sum(size for _, size in documents) <= budget or len(owners) == 1, path.name
        elif path.suffix == ".csv":
            text = path.read_text(encoding="utf-8")
        else:
            continue
        rows = csv.DictReader(io.StringIO(text, newline=""))
        per_file[path.name] = list({row["XeroInvoiceID"]: None for row in rows})  # a row per line of a bill
    assert sum(name.endswith(".zip") for name in per_file) > 2, "the documents were not split over several files"
    sent = [i for ids in per_file.values() for i in ids]
    assert len(sent) == len(set(sent)), "a bill went in two files"
    ledger = states(services)
    assert set(sent) == {i for i, b in ledger.items() if b.state == BillState.DELIVERED}
    named, stored, _ = delivered_documents(folder)
    for invoice_id in set(sent) & set(bills):
        for name, attachment in zip(named[invoice_id], bills[invoice_id].attachments, strict=True):
            assert hashlib.sha256(stored[name]).hexdigest() == hashlib.sha256(content(attachment)).hexdigest()


def test_a_bill_whose_documents_were_not_fetched_never_goes_ready_when_the_map_changed_meanwhile(
    services_on_both_databases: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whether a bill would go (and so needs its documents fetched) and its decision are read apart: a new
    map imported between them may let the decision send the bill though nothing was fetched for it. It
    must never go without its documents: it waits, held as its documents are when they cannot be had,
    and the next poll asks for them again."""
    from connector.services.messages import MapInvoice
    from tests.support.pipeline import replace_gl_mappings

    services = services_on_both_databases
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    with_attachments(services, tenant_id, mode="all")
    asked: list[Any] = []
    poll.poll_tenant(services, tenant_id, emit=asked.append)
    carrying = {b.invoice_id for b in sandbox.dataset.tenant(tenant_id).bills if b.attachments}
    with services.ledger.transaction() as session:
        bills = {b.invoice_id: b for b in session.scalars(select(Bill))}
        victim = next(m for m in asked if isinstance(m, MapInvoice) and m.invoice_id in carrying
                      and bills[m.invoice_id].payload["LineItems"][0].get("AccountCode")
                      and map.decide_without_storing(session, tenant_id, bills[m.invoice_id]).state
                      == BillState.READY)
        code = bills[victim.invoice_id].payload["LineItems"][0]["AccountCode"]
        _, in_force = current(session, tenant_id)
    real_would_go = map._would_go

    def map_changed_first(*args: Any) -> bool:  # the import commits after the run count read the map
        replace_gl_mappings(services, tenant_id, {k: v for k, v in in_force.gl.items() if k != code})
        return real_would_go(*args)

    monkeypatch.setattr(map, "_would_go", map_changed_first)
    map.map_invoice(services, tenant_id, victim.invoice_id, victim.version)
    monkeypatch.setattr(map, "_would_go", real_would_go)
    with services.ledger.transaction() as session:
        decided = session.scalars(select(Bill).where(Bill.invoice_id == victim.invoice_id)).one()
        fetched = session.scalar(select(func.count()).select_from(AttachmentRow).where(
            AttachmentRow.invoice_id == victim.invoice_id))
    assert fetched == 0
    assert decided.state != BillState.READY, "READY without the documents it has in Xero"
    asked.clear()  # the next poll maps it again, under the map now in force
    poll.poll_tenant(services, tenant_id, emit=asked.append)
    for message in asked:
        if isinstance(message, MapInvoice) and message.invoice_id == victim.invoice_id:
            map.map_invoice(services, tenant_id, message.invoice_id, message.version)
    with services.ledger.transaction() as session:
        again = session.scalars(select(Bill).where(Bill.invoice_id == victim.invoice_id)).one()
    assert again.state == BillState.HELD
    assert [r["code"] for r in again.reasons] == ["unmapped_gl"]


def with_a_document_xero_lost(services: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp
                              ) -> tuple[str, Any, Any]:
    """A tenant sending all documents, one of whose bills that will go has a document Xero answers 404 for
    good: (tenant, that bill, the sandbox's fault rule, which counts the tries)."""
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    with_attachments(services, tenant_id, mode="all")
    victim = likely_delivered(sandbox, tenant_id)[0]
    sandbox.faults.fail_next(f"/api.xro/2.0/Invoices/{victim.invoice_id}/Attachments/"
                             f"{victim.attachments[0].attachment_id}", 10**6, 404)
    [rule] = sandbox.faults.rules
    return tenant_id, victim, rule


def test_a_document_xero_keeps_failing_to_serve_is_asked_for_on_a_backoff_not_at_every_poll(
    services_on_both_databases: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    """Each try costs the tenant's daily calls (a list and the file): a document that stays broken is asked
    for at the next poll, then 15 minutes on, 30, an hour, ... (at most a day), not at every poll for ever;
    a new version of the bill in Xero, or a release, tries it at once."""
    sandbox.set_limits(minute=10**6, day=10**7, app_minute=10**7)  # the polls come faster than Xero's minute
    clock = services_on_both_databases.clock = Clock()
    services = with_budget(services_on_both_databases, 10**6)
    tenant_id, victim, rule = with_a_document_xero_lost(services, sandbox, bundled_sftp)

    def tries_by_poll(polls: int) -> list[int]:
        tried = []
        for _ in range(polls):
            before = rule.remaining
            run_cycle(services, tenant_id)
            tried.append(before - rule.remaining)
            clock.advance(15 * 60)
        return tried

    assert tries_by_poll(12) == [1, 1, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0]  # minutes 0, 15, 30, 60, 120
    ledger = states(services)
    assert ledger[victim.invoice_id].state == BillState.HELD
    others = [b for b in sandbox.dataset.tenant(tenant_id).bills if b.attachments and b is not victim
              and ledger[b.invoice_id].state == BillState.DELIVERED]
    assert others, "the other bills with documents went"
    shown = bill_views(services.ledger, victim.invoice_id, tenant_id)[0]["reasons"]
    assert any("next try at" in line for line in shown), shown
    [retrying] = status_report(services.ledger, tenant_id).documents_retrying
    assert (retrying["invoice_id"], retrying["failures"]) == (victim.invoice_id, 5)
    assert retrying["next_try_at"] == clock() + timedelta(minutes=60)  # now minute 180: tried at 120, next at 240

    sandbox.add_credit_note(tenant_id, victim.invoice_id, fraction="0.1")  # a new version of the bill in Xero
    assert tries_by_poll(2) == [1, 1]  # at once, and its backoff starts over (the next poll)

    with services.ledger.transaction() as session:
        release(session, tenant_id, victim.invoice_id, by="ap.ops", why="Xero says the file is back")
        version = session.scalars(select(Bill.version).where(Bill.invoice_id == victim.invoice_id)).one()
    before = rule.remaining
    map.map_invoice(services, tenant_id, victim.invoice_id, version)  # the release's map message
    assert before - rule.remaining == 1
    assert tries_by_poll(2) == [1, 1]  # its backoff started over


def test_a_person_may_send_a_bill_on_without_the_document_xero_keeps_failing_to_serve(
    services: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    """A release tries the documents again (they may be back); when Xero has lost the file for good the AP
    team can still send the bill on without it (`holds release --without-documents`): it goes released,
    with the documents that were fetched, and is not asked for again."""
    tenant_id, victim, rule = with_a_document_xero_lost(services, sandbox, bundled_sftp)
    run_cycle(services, tenant_id)
    assert states(services)[victim.invoice_id].state == BillState.HELD
    with services.ledger.transaction() as session:
        bill = release(session, tenant_id, victim.invoice_id, by="ap.ops", why="the supplier's PDF is lost in Xero",
                       without_documents=True)
        assert bill.state == BillState.READY
    tries = rule.remaining
    for message in reopened_work(services, tenant_id):  # what `holds release` sends
        assert isinstance(message, AssembleBatch)
        for made in batch.assemble_batches(services, tenant_id):
            assert isinstance(made, DeliverBatch)
            deliver.deliver_batch(services, made.batch_id)
    run_cycle(services, tenant_id)
    assert rule.remaining == tries, "the lost document is not asked for again"
    delivered = states(services)[victim.invoice_id]
    assert delivered.state == BillState.DELIVERED
    assert delivered.documents_retry_at is None
    named, _, _ = delivered_documents(bundled_sftp.server.local_path(bundled_sftp.import_dir))
    assert victim.attachments[0].file_name not in " ".join(named.get(victim.invoice_id, []))
