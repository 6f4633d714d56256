"""map_credit_note: a supplier credit note is mapped by the rules of bills (vendor, GL, dimensions, money
adding up, a PO only where one is named), carries its allocations, and waits for (or is flagged for) a
bill Stampli does not have yet, per tenant. One table row per rule, naming the reason codes expected."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from connector.domain.credit_notes import credit_note_fields, map_credit_note, parse_credit_note
from connector.domain.intake import RecordKind, check_page
from connector.domain.rules import Policy, ReasonClass
from connector.domain.states import BillState
from connector.errors import RecordProblem
from tests.unit.test_mapping import CONTEXT, WIDE, line, with_rules

DELIVERED = {"inv-1": "DELIVERED"}


def allocation(invoice_id: str = "inv-1", number: str = "SUP-881", amount: Any = 50.0) -> dict[str, Any]:
    return {"AllocationID": "al-1", "Amount": amount, "Date": "/Date(1700500000000+0000)/",
            "Invoice": {"InvoiceID": invoice_id, "InvoiceNumber": number}}


def xero_credit(**overrides: Any) -> dict[str, Any]:
    note: dict[str, Any] = {
        "CreditNoteID": "cn-1", "Type": "ACCPAYCREDIT", "Status": "AUTHORISED", "CreditNoteNumber": "CR-77",
        "Reference": "Return of damaged paper", "Contact": {"ContactID": "c-1", "Name": "Acme"},
        "Date": "/Date(1700400000000+0000)/", "CurrencyCode": "USD", "LineAmountTypes": "Exclusive",
        "SubTotal": 100.0, "TotalTax": 15.0, "Total": 115.0, "RemainingCredit": 65.0,
        "UpdatedDateUTC": "/Date(1700500000123+0000)/", "LineItems": [line()], "Allocations": [allocation()],
    }
    note.update(overrides)
    return note


def mapped(context: Any = CONTEXT, states: dict[str, str] = DELIVERED, **overrides: Any) -> Any:
    data = xero_credit(**overrides)
    return map_credit_note(parse_credit_note(data, tenant_id="t"), context, credit_note_fields(data), states)


def test_a_clean_credit_note_is_ready_with_its_allocations_gl_codes_and_dimensions() -> None:
    outcome = mapped()
    assert outcome.state is BillState.READY
    assert outcome.reasons == ()
    record = outcome.record
    assert record["document_type"] == "CREDIT_NOTE"
    assert record["invoice_id"] == "cn-1"
    assert record["invoice_number"] == "CR-77"
    assert record["reference"] == "Return of damaged paper"
    assert record["vendor_code"] == "V-ACME"
    assert record["total"] == "115.00"  # Xero's positive amounts: the template chooses the sign
    assert record["lines"][0]["gl_code"] == "GL-400"
    assert record["lines"][0]["dimensions"] == {"cost_center": "CC-10", "location": "North"}
    assert record["allocations"] == [{"invoice_id": "inv-1", "invoice_number": "SUP-881", "amount": "50.00",
                                      "date": "2023-11-20"}]
    assert record["applied_to_invoice_ids"] == ["inv-1"]
    assert record["applied_to_invoice_numbers"] == ["SUP-881"]
    assert record["po_numbers"] == []
    assert record["due_date"] == ""


HOLD_ALLOCATIONS = with_rules(policies={**CONTEXT.rules.policies, ReasonClass.ALLOCATION: Policy.HOLD})
FLAG_ALLOCATIONS = with_rules(policies={**CONTEXT.rules.policies, ReasonClass.ALLOCATION: Policy.DELIVER_FLAGGED})


def policy(reason_class: ReasonClass, chosen: Policy) -> Any:
    """The default rules with the tenant's policy for one class of reasons."""
    return with_rules(policies={**CONTEXT.rules.policies, reason_class: chosen})


@pytest.mark.parametrize(
    ("overrides", "context", "states", "state", "codes"),
    [
        pytest.param({"Type": "ACCRECCREDIT"}, CONTEXT, DELIVERED, BillState.EXCLUDED, ["not_a_supplier_credit"],
                     id="sales-credit-never"),
        pytest.param({"Status": "DRAFT"}, CONTEXT, DELIVERED, BillState.EXCLUDED, ["status_not_eligible"],
                     id="draft"),
        pytest.param({"Status": "VOIDED"}, CONTEXT, DELIVERED, BillState.EXCLUDED, ["status_not_eligible"],
                     id="voided"),
        pytest.param({"Status": "PAID", "RemainingCredit": 0.0}, CONTEXT, DELIVERED, BillState.READY, [],
                     id="paid-means-applied-in-full-and-goes"),
        pytest.param({"Status": "PAID"}, with_rules(credit_note_statuses=("AUTHORISED",)), DELIVERED,
                     BillState.EXCLUDED, ["status_not_eligible"], id="eligible-statuses-per-tenant"),
        pytest.param({"Allocations": []}, CONTEXT, {}, BillState.READY, [], id="unallocated-needs-no-bill"),
        pytest.param({}, CONTEXT, {"inv-1": "HELD"}, BillState.HELD, ["allocated_bill_not_delivered"],
                     id="waits-for-a-held-bill"),
        pytest.param({}, HOLD_ALLOCATIONS, {"inv-1": "BATCHED"}, BillState.HELD, ["allocated_bill_not_delivered"],
                     id="waits-for-a-bill-still-uploading"),
        pytest.param({}, CONTEXT, {}, BillState.HELD, ["allocated_bill_not_delivered"],
                     id="waits-for-a-bill-never-read"),
        pytest.param({}, FLAG_ALLOCATIONS, {"inv-1": "READY"}, BillState.READY, ["allocated_bill_not_delivered"],
                     id="flagged-per-tenant-instead-of-waiting"),
        pytest.param({}, policy(ReasonClass.ALLOCATION, Policy.EXCLUDE), {"inv-1": "HELD"}, BillState.EXCLUDED,
                     ["allocated_bill_not_delivered"], id="excluded-per-tenant-instead-of-waiting"),
        # The tenant's policies of every other class apply to credit notes as to bills.
        pytest.param({"LineItems": [line(AccountCode="999")]}, policy(ReasonClass.UNMAPPED_GL, Policy.DELIVER_FLAGGED),
                     DELIVERED, BillState.READY, ["unmapped_gl"], id="unmapped-gl-flagged-per-tenant"),
        pytest.param({"Contact": {"ContactID": "c-404", "Name": "Ghost"}}, policy(ReasonClass.VENDOR, Policy.EXCLUDE),
                     DELIVERED, BillState.EXCLUDED, ["vendor_unknown"], id="unknown-vendor-excluded-per-tenant"),
        pytest.param({"Total": 116.0}, policy(ReasonClass.MONEY, Policy.DELIVER_FLAGGED), {"inv-1": "HELD"},
                     BillState.HELD, ["allocated_bill_not_delivered", "money_mismatch"],
                     id="a-flagged-class-beside-a-held-one-holds"),
        pytest.param({"Status": "PAID", "RemainingCredit": 0.0}, CONTEXT, {"inv-1": "EXCLUDED"}, BillState.EXCLUDED,
                     ["allocated_bills_excluded"], id="applied-in-full-to-a-bill-never-sent-goes-neither"),
        pytest.param({"Status": "PAID", "RemainingCredit": 0.0}, FLAG_ALLOCATIONS, {"inv-1": "EXCLUDED"},
                     BillState.EXCLUDED, ["allocated_bills_excluded"], id="not-even-flagged"),
        pytest.param({}, CONTEXT, {"inv-1": "EXCLUDED"}, BillState.HELD, ["allocated_bill_not_delivered"],
                     id="credit-left-to-use-waits-for-a-person"),
        pytest.param({"Status": "PAID", "RemainingCredit": 0.0, "Allocations": [allocation(), allocation("inv-2")]},
                     CONTEXT, {"inv-1": "EXCLUDED", "inv-2": "DELIVERED"}, BillState.HELD,
                     ["allocated_bill_not_delivered"], id="partly-to-a-bill-stampli-has-waits-for-a-person"),
        pytest.param({}, CONTEXT, {"inv-1": "CHANGED_AFTER_DELIVERY"}, BillState.READY, [],
                     id="a-bill-changed-after-delivery-is-in-stampli"),
        pytest.param({"Allocations": [allocation(), allocation("inv-2", "SUP-9")]}, CONTEXT, DELIVERED,
                     BillState.HELD, ["allocated_bill_not_delivered"], id="every-allocated-bill-counts"),
        pytest.param({"Contact": {"ContactID": "c-404", "Name": "Ghost"}}, CONTEXT, DELIVERED, BillState.HELD,
                     ["vendor_unknown"], id="unknown-vendor"),
        pytest.param({"LineItems": [line(AccountCode="999")]}, CONTEXT, DELIVERED, BillState.HELD, ["unmapped_gl"],
                     id="unmapped-gl"),
        pytest.param({"LineItems": [line(AccountCode="477")]}, CONTEXT, DELIVERED, BillState.HELD,
                     ["archived_account", "unmapped_gl"], id="archived-account"),
        pytest.param({"LineItems": [line(Tracking=[{"Name": "Department", "Option": "Legal"}])]}, CONTEXT, DELIVERED,
                     BillState.HELD, ["unmapped_dimension"], id="unmapped-dimension"),
        pytest.param({"Total": 116.0}, CONTEXT, DELIVERED, BillState.HELD, ["money_mismatch"],
                     id="totals-must-add-up"),
        pytest.param({"CreditNoteNumber": "CR-77"}, CONTEXT, DELIVERED, BillState.READY, [],
                     id="no-po-named-is-no-reason"),
        pytest.param({"CreditNoteNumber": "PO-0001"}, CONTEXT, DELIVERED, BillState.READY, [],
                     id="a-named-po-is-matched"),
        pytest.param({"CreditNoteNumber": "PO-9999"}, CONTEXT, DELIVERED, BillState.HELD, ["unknown_po"],
                     id="a-named-po-must-exist"),
        pytest.param({"CreditNoteNumber": "PO-0003"}, WIDE, DELIVERED, BillState.HELD, ["po_other_supplier"],
                     id="a-named-po-must-be-the-suppliers"),
        pytest.param({"CreditNoteNumber": "PO-0001", "Total": 15.0, "SubTotal": 13.04, "TotalTax": 1.96,
                      "LineItems": [line(UnitAmount=13.04, LineAmount=13.04, TaxAmount=1.96)]},
                     replace(CONTEXT, rules=replace(CONTEXT.rules, allow_partial_billing=False)), DELIVERED,
                     BillState.READY, [], id="a-credit-is-never-compared-with-the-po-total"),
    ],
)
def test_credit_note_rules(overrides: dict[str, Any], context: Any, states: dict[str, str], state: BillState,
                           codes: list[str]) -> None:
    outcome = mapped(context, states, **overrides)
    assert outcome.state is state, outcome.reasons
    assert sorted({r.code for r in outcome.reasons}) == codes


def test_a_credit_flagged_for_its_bill_says_which_bill_in_the_file() -> None:
    outcome = mapped(FLAG_ALLOCATIONS, {"inv-1": "HELD"})
    assert outcome.record["flagged"] is True
    assert outcome.record["flags"] == ["the credit note is allocated to bill SUP-881, which Stampli does not have "
                                       "yet (HELD)"]


def test_a_waiting_credit_names_the_bill_it_waits_for() -> None:
    outcome = mapped(CONTEXT, {})
    assert [r.as_json() for r in outcome.reasons] == [{
        "code": "allocated_bill_not_delivered", "number": "SUP-881", "invoice_id": "inv-1",
        "state": "not read from Xero"}]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        pytest.param({"CreditNoteID": None}, "CreditNoteID", id="no-id"),
        pytest.param({"Allocations": [{"Amount": 5.0, "Invoice": {}}]}, "Allocations[1].Invoice.InvoiceID",
                     id="allocation-without-its-bill"),
        pytest.param({"Allocations": [allocation(amount="lots")]}, "Allocations[1].Amount", id="allocation-amount"),
        pytest.param({"Total": "lots"}, "Total", id="total"),
    ],
)
def test_a_bad_credit_note_names_itself_and_the_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(RecordProblem) as raised:
        parse_credit_note(xero_credit(**overrides), tenant_id="t")
    assert raised.value.field == field
    assert "credit note" in str(raised.value)


def test_the_intake_check_names_a_bad_credit_note_and_its_field_and_passes_the_rest() -> None:
    lengths = {"bills.invoice_id": 64, "bills.invoice_number": 255, "bills.xero_status": 32,
               "contacts.contact_id": 64, "contacts.name": 255, "accounts.code": 20}
    bad = xero_credit(CreditNoteID="cn-2", Allocations=[{"Amount": "NaN", "Invoice": {"InvoiceNumber": "X"}}])
    page = check_page(RecordKind.CREDIT_NOTE, [xero_credit(), bad], lengths)
    assert [c.record_id for c in page.records if c.ok] == ["cn-1"]
    [refused] = page.rejected
    assert {p.field for p in refused.problems} == {"Allocations[1].Amount", "Allocations[1].Invoice.InvoiceID"}
    assert refused.label == "credit note cn-2"
