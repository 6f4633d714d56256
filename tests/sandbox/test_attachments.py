"""Bills' and supplier credit notes' documents are served as Xero serves them: `HasAttachments` on the
bill or credit note, the list valid against Xero's Attachments schema, each file's bytes by AttachmentID
(or FileName) with its MIME type and the listed length; PDFs that are PDFs, some large, names with every
awkward character; xero-python reads them."""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import quote

import pytest
from xero_python.accounting import AccountingApi

from sandbox.xero import XeroSandbox
from sandbox.xero.attachments import content
from tests.sandbox.conftest import Client, validator
from tests.sandbox.test_sdk import sdk  # noqa: F401 (the fixture)

pytestmark = pytest.mark.sandbox


def with_documents(sandbox: XeroSandbox) -> list[Any]:
    return [b for b in sandbox.dataset.tenants[0].bills if b.attachments]


def test_about_a_third_of_the_bills_carry_documents_some_large_some_awkwardly_named(shared: XeroSandbox) -> None:
    bills = shared.dataset.tenants[0].bills
    carrying = with_documents(shared)
    assert 0.2 * len(bills) < len(carrying) < 0.45 * len(bills)
    every = [a for b in carrying for a in b.attachments]
    assert {a.mime_type for a in every} == {"application/pdf", "image/jpeg"}
    assert any(any(ch in a.file_name for ch in "#[]/\\") for a in every)
    assert any(not a.file_name.isascii() for a in every)
    assert any(len({a.file_name for a in b.attachments}) < len(b.attachments) for b in carrying), "two scans, one name"
    large = [a for a in every if a.content_length > 1_000_000]
    assert large


def test_has_attachments_is_on_the_bill_and_the_list_matches_the_schema(shared_client: Client,
                                                                        accounting_spec: dict[str, Any]) -> None:
    sandbox = shared_client.sandbox
    bill = with_documents(sandbox)[0]
    plain = next(b for b in sandbox.dataset.tenants[0].bills if not b.attachments)
    assert shared_client.json(f"Invoices/{bill.invoice_id}")["Invoices"][0]["HasAttachments"] is True
    assert shared_client.json(f"Invoices/{plain.invoice_id}")["Invoices"][0]["HasAttachments"] is False
    body = shared_client.json(f"Invoices/{bill.invoice_id}/Attachments")
    assert [e.message for e in validator(accounting_spec, "Attachments").iter_errors(body)] == []
    assert [(a["AttachmentID"], a["FileName"], a["MimeType"], a["ContentLength"]) for a in body["Attachments"]] == [
        (a.attachment_id, a.file_name, a.mime_type, a.content_length) for a in bill.attachments]
    assert shared_client.json(f"Invoices/{plain.invoice_id}/Attachments")["Attachments"] == []
    with_where = shared_client.json("Invoices", page=1, where="HasAttachments==true")["Invoices"]
    assert with_where
    assert all(i["HasAttachments"] for i in with_where)


def test_a_file_comes_whole_with_its_type_by_id_or_by_name(shared_client: Client) -> None:
    bill = with_documents(shared_client.sandbox)[0]
    attachment = bill.attachments[0]
    for key in (attachment.attachment_id, quote(attachment.file_name, safe="")):
        answer = shared_client.get(f"Invoices/{bill.invoice_id}/Attachments/{key}",
                                   headers={"Accept": attachment.mime_type})
        if "%2F" in key:
            continue  # a name holding a slash can only be asked for by id (as in Xero)
        assert answer.status_code == 200, (key, answer.text[:200])
        assert answer.headers["Content-Type"] == attachment.mime_type
        assert len(answer.content) == attachment.content_length
        assert hashlib.sha256(answer.content).digest() == hashlib.sha256(content(attachment)).digest()
    large = next(a for b in with_documents(shared_client.sandbox) for a in b.attachments
                 if a.content_length > 1_000_000 and a.mime_type == "application/pdf")
    owner = next(b for b in with_documents(shared_client.sandbox) if large in b.attachments)
    pdf = shared_client.get(f"Invoices/{owner.invoice_id}/Attachments/{large.attachment_id}").content
    assert pdf.startswith(b"%PDF-1.4\n")
    assert pdf.endswith(b"%%EOF\n")
    assert len(pdf) == large.content_length
    assert b"/Type /Catalog" in pdf
    assert shared_client.get(f"Invoices/{bill.invoice_id}/Attachments/0b0b0b0b-0000-4000-8000-000000000000"
                             ).status_code == 404


def test_an_attachment_the_sandbox_is_told_to_fail_fails_alone(client: Client) -> None:
    bills = with_documents(client.sandbox)
    broken, fine = bills[0], bills[1]
    path = f"/api.xro/2.0/Invoices/{broken.invoice_id}/Attachments/{broken.attachments[0].attachment_id}"
    client.sandbox.faults.fail_next(path, 5, 500)
    assert client.get(path.removeprefix("/api.xro/2.0/")).status_code == 500
    assert client.get(f"Invoices/{fine.invoice_id}/Attachments/{fine.attachments[0].attachment_id}").status_code == 200


def test_sdk_lists_and_reads_attachments(sdk: Any, shared: XeroSandbox) -> None:  # noqa: F811
    api_client, consent = sdk
    api_client.refresh_oauth2_token()
    api = AccountingApi(api_client, base_url=consent["urls"]["api"])
    bill = with_documents(shared)[0]
    listed = api.get_invoice_attachments(consent["tenant_ids"][0], bill.invoice_id).attachments
    assert [(a.attachment_id, a.file_name, a.mime_type, a.content_length) for a in listed] == [
        (a.attachment_id, a.file_name, a.mime_type, a.content_length) for a in bill.attachments]


def credit_notes_with_documents(sandbox: XeroSandbox) -> list[Any]:
    return [n for n in sandbox.dataset.tenants[0].credit_notes if n.attachments]


def test_supplier_credit_notes_carry_documents_too_and_sales_ones_never(shared: XeroSandbox) -> None:
    notes = shared.dataset.tenants[0].credit_notes
    carrying = credit_notes_with_documents(shared)
    supplier = [n for n in notes if n.type == "ACCPAYCREDIT"]
    assert 0.3 * len(supplier) <= len(carrying) < len(supplier)
    assert all(n.type == "ACCPAYCREDIT" for n in carrying)
    bill_ids = {a.attachment_id for b in with_documents(shared) for a in b.attachments}
    assert not bill_ids & {a.attachment_id for n in carrying for a in n.attachments}


def test_a_credit_notes_documents_are_listed_and_served_as_xero_does(shared_client: Client,
                                                                    accounting_spec: dict[str, Any]) -> None:
    sandbox = shared_client.sandbox
    note = credit_notes_with_documents(sandbox)[0]
    plain = next(n for n in sandbox.dataset.tenants[0].credit_notes if not n.attachments)
    assert shared_client.json(f"CreditNotes/{note.credit_note_id}")["CreditNotes"][0]["HasAttachments"] is True
    assert shared_client.json(f"CreditNotes/{plain.credit_note_id}")["CreditNotes"][0]["HasAttachments"] is False
    body = shared_client.json(f"CreditNotes/{note.credit_note_id}/Attachments")
    assert [e.message for e in validator(accounting_spec, "Attachments").iter_errors(body)] == []
    assert [(a["AttachmentID"], a["FileName"], a["MimeType"], a["ContentLength"]) for a in body["Attachments"]] == [
        (a.attachment_id, a.file_name, a.mime_type, a.content_length) for a in note.attachments]
    assert all(a["Url"].startswith(f"https://api.xero.com/api.xro/2.0/CreditNotes/{note.credit_note_id}/Attachments/")
               for a in body["Attachments"])
    assert shared_client.json(f"CreditNotes/{plain.credit_note_id}/Attachments")["Attachments"] == []
    attachment = note.attachments[0]
    answer = shared_client.get(f"CreditNotes/{note.credit_note_id}/Attachments/{attachment.attachment_id}",
                               headers={"Accept": attachment.mime_type})
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == attachment.mime_type
    assert hashlib.sha256(answer.content).digest() == hashlib.sha256(content(attachment)).digest()
    # a credit note's document is not one of a bill's, nor the other way round
    assert shared_client.get(f"Invoices/{note.credit_note_id}/Attachments").status_code == 404
    bill = with_documents(sandbox)[0]
    assert shared_client.get(f"CreditNotes/{note.credit_note_id}/Attachments/{bill.attachments[0].attachment_id}"
                             ).status_code == 404
    assert shared_client.get(f"CreditNotes/{bill.invoice_id}/Attachments").status_code == 404
    with_where = shared_client.json("CreditNotes", page=1, where="HasAttachments==true")["CreditNotes"]
    assert {n["CreditNoteID"] for n in with_where} == {n.credit_note_id for n in credit_notes_with_documents(sandbox)}


def test_sdk_lists_and_reads_a_credit_notes_attachments(sdk: Any, shared: XeroSandbox) -> None:  # noqa: F811
    api_client, consent = sdk
    api_client.refresh_oauth2_token()
    api = AccountingApi(api_client, base_url=consent["urls"]["api"])
    note = credit_notes_with_documents(shared)[0]
    listed = api.get_credit_note_attachments(consent["tenant_ids"][0], note.credit_note_id).attachments
    assert [(a.attachment_id, a.file_name, a.mime_type, a.content_length) for a in listed] == [
        (a.attachment_id, a.file_name, a.mime_type, a.content_length) for a in note.attachments]
