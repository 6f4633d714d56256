"""Credit notes are served as Xero serves them: supplier and sales credit notes with their allocations,
valid against Xero's CreditNotes schema, filtered by `where`, paged, read since If-Modified-Since, and
parsed by Xero's own SDK with values equal to the JSON sent.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests
from xero_python.accounting import AccountingApi

from sandbox.xero import XeroSandbox, msdate
from tests.sandbox.conftest import Client, validator
from tests.sandbox.test_sdk import sdk  # noqa: F401 (the fixture)

pytestmark = pytest.mark.sandbox


def _errors(spec: dict[str, Any], body: Any) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator(spec, "CreditNotes").iter_errors(body)]


@pytest.mark.parametrize("params", [{}, {"page": 1}, {"page": 1, "where": 'Type=="ACCPAYCREDIT"', "unitdp": 4},
                                    {"page": 2, "pageSize": 3}], ids=["unpaged", "paged", "supplier-unitdp-4",
                                                                      "page-2"])
def test_credit_note_bodies_match_xero_schema(shared_client: Client, accounting_spec: dict[str, Any],
                                              params: dict[str, Any]) -> None:
    body = shared_client.json("CreditNotes", **params)
    assert body["CreditNotes"], "an empty list proves nothing"
    assert _errors(accounting_spec, body) == []


def test_a_single_credit_note_by_id_or_number_matches_the_schema(shared_client: Client,
                                                                 accounting_spec: dict[str, Any]) -> None:
    note = shared_client.sandbox.dataset.tenants[0].credit_notes[0]
    for key in (note.credit_note_id, note.number):
        body = shared_client.json(f"CreditNotes/{key}")
        assert [n["CreditNoteID"] for n in body["CreditNotes"]] == [note.credit_note_id]
        assert body["CreditNotes"][0]["LineItems"]
        assert _errors(accounting_spec, body) == []
    assert shared_client.get("CreditNotes/0b0b0b0b-0000-4000-8000-000000000000").status_code == 404


def test_supplier_credit_notes_carry_allocations_to_their_bills(shared_client: Client) -> None:
    tenant = shared_client.sandbox.dataset.tenants[0]
    bills = {b.invoice_id: b for b in tenant.bills}
    body = shared_client.json("CreditNotes", page=1, where='Type=="ACCPAYCREDIT"')
    notes = body["CreditNotes"]
    assert notes
    assert {n["Type"] for n in notes} == {"ACCPAYCREDIT"}
    allocated = [n for n in notes if n["Allocations"]]
    assert allocated
    assert any(not n["Allocations"] for n in notes)
    for note in allocated:
        for allocation in note["Allocations"]:
            bill = bills[allocation["Invoice"]["InvoiceID"]]
            assert allocation["Invoice"]["InvoiceNumber"] == bill.number
            assert bill.contact_id == note["Contact"]["ContactID"]
            assert Decimal(str(allocation["Amount"])) > 0
            msdate.parse(allocation["Date"])
        applied = sum(Decimal(str(a["Amount"])) for a in note["Allocations"])
        assert Decimal(str(note["RemainingCredit"])) == Decimal(str(note["Total"])) - applied
        assert (note["Status"] == "PAID") == (Decimal(str(note["RemainingCredit"])) == 0)
    sales = shared_client.json("CreditNotes", page=1, where='Type=="ACCRECCREDIT"')["CreditNotes"]
    assert sales
    assert {n["Type"] for n in sales} == {"ACCRECCREDIT"}


def test_credit_note_lines_add_up_to_their_totals(shared_client: Client) -> None:
    for note in shared_client.json("CreditNotes", page=1)["CreditNotes"]:
        lines = note["LineItems"]
        tax = sum(Decimal(str(li["TaxAmount"])) for li in lines)
        amounts = sum(Decimal(str(li["LineAmount"])) for li in lines)
        sub = amounts - tax if note["LineAmountTypes"] == "Inclusive" else amounts
        assert (Decimal(str(note["SubTotal"])), Decimal(str(note["TotalTax"]))) == (sub, tax)
        assert Decimal(str(note["Total"])) == sub + tax


def test_credit_notes_page_and_read_since_a_time(client: Client) -> None:
    sandbox = client.sandbox
    total = len(sandbox.dataset.tenants[0].credit_notes)
    first = client.json("CreditNotes", page=1, pageSize=2, order="UpdatedDateUTC ASC")
    assert first["pagination"] == {"page": 1, "pageSize": 2, "pageCount": -(-total // 2), "itemCount": total}
    stamps = [msdate.parse(n["UpdatedDateUTC"]) for n in first["CreditNotes"]]
    assert stamps == sorted(stamps)
    sandbox.set_time_scale(0)
    bill = next(b for b in sandbox.dataset.tenants[0].bills if b.status == "AUTHORISED")
    added = sandbox.add_credit_note(None, bill.invoice_id, fraction="0.5")
    stamp = msdate.parse(added["UpdatedDateUTC"])
    since = client.json("CreditNotes", headers={"If-Modified-Since": stamp.strftime("%Y-%m-%dT%H:%M:%S")})
    assert [n["CreditNoteID"] for n in since["CreditNotes"]] == [added["CreditNoteID"]]
    later = (stamp + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S")
    assert client.json("CreditNotes", headers={"If-Modified-Since": later})["CreditNotes"] == []
    note = client.json(f"CreditNotes/{added['CreditNoteID']}")["CreditNotes"][0]
    assert note["Allocations"][0]["Invoice"]["InvoiceID"] == bill.invoice_id
    assert client.get("CreditNotes", where='Type=="ACCPAYCREDIT" AND').status_code == 400


def test_sdk_parses_every_credit_note(sdk: Any, shared: XeroSandbox) -> None:  # noqa: F811
    api_client, consent = sdk
    token = api_client.refresh_oauth2_token()
    api = AccountingApi(api_client, base_url=consent["urls"]["api"])
    tenant_id = consent["tenant_ids"][0]
    parsed = api.get_credit_notes(tenant_id, where='Type=="ACCPAYCREDIT"', page=1).credit_notes
    expected = [n for n in shared.dataset.tenants[0].credit_notes if n.type == "ACCPAYCREDIT"]
    assert len(parsed) == len(expected)
    raw = requests.get(f"{consent['urls']['api']}/CreditNotes", timeout=10,
                       params={"where": 'Type=="ACCPAYCREDIT"', "page": 1},
                       headers={"Authorization": f"Bearer {token['access_token']}", "xero-tenant-id": tenant_id}
                       ).json(parse_float=Decimal)["CreditNotes"]
    for note, r in zip(parsed, raw, strict=True):
        assert note.credit_note_id == r["CreditNoteID"]
        assert note.credit_note_number == r["CreditNoteNumber"]
        assert note.type == "ACCPAYCREDIT"
        assert note.status == r["Status"]
        assert (note.sub_total, note.total_tax, note.total) == (r["SubTotal"], r["TotalTax"], r["Total"])
        assert note.remaining_credit == r["RemainingCredit"]
        assert note.date == msdate.parse(r["Date"]).date()
        assert note.updated_date_utc == msdate.parse(r["UpdatedDateUTC"])
        assert note.contact.contact_id == r["Contact"]["ContactID"]
        assert [li.line_amount for li in note.line_items] == [li["LineAmount"] for li in r["LineItems"]]
        assert [(a.invoice.invoice_id, a.amount, a.date) for a in note.allocations] == [
            (a["Invoice"]["InvoiceID"], a["Amount"], msdate.parse(a["Date"]).date()) for a in r["Allocations"]]
    assert any(note.allocations for note in parsed)
