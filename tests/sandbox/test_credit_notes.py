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


def _fresh_sdk(sandbox: XeroSandbox, monkeypatch: pytest.MonkeyPatch) -> tuple[AccountingApi, str]:
    """Xero's SDK on a sandbox of the test's own (the shared one must not change)."""
    from xero_python.api_client import ApiClient, Configuration
    from xero_python.api_client.oauth2 import OAuth2Token, TokenApi

    consent = sandbox.consent()
    monkeypatch.setattr(TokenApi, "refresh_token_url", consent["urls"]["token"])
    monkeypatch.setattr(Configuration, "_default", None)  # the SDK keeps its first Configuration for every later one
    store: dict[str, Any] = {"token": {
        "access_token": "", "refresh_token": consent["refresh_token"], "scope": consent["scopes"].split(),
        "expires_in": 0, "expires_at": 0, "token_type": "Bearer"}}
    configuration = Configuration(oauth2_token=OAuth2Token(client_id=consent["client_id"],
                                                           client_secret=consent["client_secret"]))
    api_client = ApiClient(configuration, pool_threads=1, oauth2_token_getter=lambda: store["token"],
                           oauth2_token_saver=lambda token: store.update(token=token))
    api_client.refresh_oauth2_token()
    return AccountingApi(api_client, base_url=consent["urls"]["api"]), consent["tenant_ids"][0]


def _invoice_errors(spec: dict[str, Any], body: Any) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator(spec, "Invoices").iter_errors(body)]


def test_a_credit_note_allocated_to_a_bill_changes_the_bill_as_xero_shows_it(
    client: Client, accounting_spec: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Applying a credit to a bill moves the bill: AmountCredited up, AmountDue down by the amount, the
    credit listed in its CreditNotes (id, number, AppliedAmount, total), UpdatedDateUTC now; credited in
    full it is PAID with its FullyPaidOnDate. The credit note's RemainingCredit and Allocations move with
    it. Both still match Xero's schemas and parse in Xero's SDK with the values sent."""
    sandbox = client.sandbox
    sandbox.set_time_scale(0)
    tenant = sandbox.dataset.tenants[0]
    bill = next(b for b in tenant.bills if b.status == "AUTHORISED" and len(b.lines) == 1 and b.amount_paid == 0
                and b.total > 20 and not any(a.invoice_id == b.invoice_id for n in tenant.credit_notes
                                             for a in n.allocations))
    before = client.json(f"Invoices/{bill.invoice_id}")["Invoices"][0]
    assert (before["AmountCredited"], before["CreditNotes"]) == (0, [])
    sandbox.advance(60)
    first = sandbox.add_credit_note(None, bill.invoice_id, fraction="0.25", allocate=False)
    unmoved = client.json(f"Invoices/{bill.invoice_id}")["Invoices"][0]
    assert unmoved["UpdatedDateUTC"] == before["UpdatedDateUTC"], "an unallocated credit leaves the bill alone"
    sandbox.advance(60)
    sandbox.allocate_credit_note(None, first["CreditNoteID"], bill.invoice_id, amount="10.00")
    after = client.json(f"Invoices/{bill.invoice_id}")["Invoices"][0]
    assert Decimal(str(after["AmountCredited"])) == Decimal("10.00")
    assert Decimal(str(after["AmountDue"])) == Decimal(str(before["AmountDue"])) - Decimal("10.00")
    assert after["Status"] == "AUTHORISED"
    assert [(c["CreditNoteID"], c["CreditNoteNumber"], Decimal(str(c["AppliedAmount"]))) for c in after["CreditNotes"]
            ] == [(first["CreditNoteID"], first["CreditNoteNumber"], Decimal("10.00"))]
    assert msdate.parse(after["UpdatedDateUTC"]) == msdate.parse(msdate.timestamp_field(sandbox.now()))
    assert msdate.parse(after["UpdatedDateUTC"]) > msdate.parse(before["UpdatedDateUTC"])
    note = client.json(f"CreditNotes/{first['CreditNoteID']}")["CreditNotes"][0]
    assert Decimal(str(note["RemainingCredit"])) == Decimal(first["Total"]) - Decimal("10.00")
    assert [a["Invoice"]["InvoiceID"] for a in note["Allocations"]] == [bill.invoice_id]
    assert msdate.parse(note["UpdatedDateUTC"]) > msdate.parse(first["UpdatedDateUTC"])

    sandbox.advance(60)
    whole = sandbox.add_credit_note(None, bill.invoice_id, fraction="1", allocate=False)
    sandbox.allocate_credit_note(None, whole["CreditNoteID"], bill.invoice_id)  # all it can: the rest due
    paid = client.json(f"Invoices/{bill.invoice_id}")["Invoices"][0]
    assert paid["Status"] == "PAID"
    assert paid["AmountDue"] == 0
    assert Decimal(str(paid["AmountCredited"])) == Decimal(str(paid["Total"]))
    assert msdate.parse(paid["FullyPaidOnDate"]).date() == sandbox.now().date()
    assert [c["CreditNoteID"] for c in paid["CreditNotes"]] == [first["CreditNoteID"], whole["CreditNoteID"]]
    listed = client.json("Invoices", page=1, where=f'InvoiceID==Guid("{bill.invoice_id}")')
    assert listed["Invoices"][0]["CreditNotes"] == paid["CreditNotes"]
    for body in (client.json(f"Invoices/{bill.invoice_id}"), listed, client.json("Invoices")):
        assert _invoice_errors(accounting_spec, body) == []
    assert _errors(accounting_spec, client.json("CreditNotes", page=1)) == []

    api, tenant_id = _fresh_sdk(sandbox, monkeypatch)
    [parsed] = api.get_invoice(tenant_id, bill.invoice_id).invoices
    assert parsed.status == "PAID"
    assert (parsed.amount_due, parsed.amount_credited) == (Decimal(str(paid["AmountDue"])),
                                                            Decimal(str(paid["AmountCredited"])))
    assert [(c.credit_note_id, c.credit_note_number, c.applied_amount) for c in parsed.credit_notes] == [
        (c["CreditNoteID"], c["CreditNoteNumber"], float(c["AppliedAmount"])) for c in paid["CreditNotes"]]
    assert parsed.updated_date_utc == msdate.parse(paid["UpdatedDateUTC"])


def test_an_allocation_xero_would_refuse_is_refused(client: Client) -> None:
    """More than the credit has left, or than the bill still owes, or to no bill: refused, nothing moves."""
    sandbox = client.sandbox
    tenant = sandbox.dataset.tenants[0]
    bill = next(b for b in tenant.bills if b.status == "AUTHORISED" and b.amount_due > 0)
    note = sandbox.add_credit_note(None, bill.invoice_id, fraction="0.1", allocate=False)
    for invoice_id, amount in ((bill.invoice_id, str(Decimal(note["Total"]) + 1)),
                               ("0b0b0b0b-0000-4000-8000-000000000000", "1.00"), (bill.invoice_id, "0")):
        with pytest.raises((ValueError, KeyError)):
            sandbox.allocate_credit_note(None, note["CreditNoteID"], invoice_id, amount=amount)
    assert client.json(f"Invoices/{bill.invoice_id}")["Invoices"][0]["CreditNotes"] == []


def test_every_seeded_allocation_shows_on_its_bill(shared: XeroSandbox) -> None:
    """The dataset is one Xero organisation: each bill lists the credits applied to it, its AmountDue is
    what is left after payments and credits, and a bill credited in full is PAID."""
    for tenant in shared.dataset.tenants:
        applied: dict[str, list[tuple[str, Decimal]]] = {}
        for note in tenant.credit_notes:
            for allocation in note.allocations:
                applied.setdefault(allocation.invoice_id, []).append((note.credit_note_id, allocation.amount))
        assert applied
        for bill in tenant.bills:
            assert [(c.credit_note_id, c.amount) for c in bill.credits] == applied.get(bill.invoice_id, [])
            if bill.status not in ("VOIDED", "DELETED"):
                assert bill.amount_due == bill.total - bill.amount_paid - bill.amount_credited >= 0
            if bill.credits and bill.amount_due == 0:
                assert bill.status == "PAID"
