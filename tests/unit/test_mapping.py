"""map_bill: READY with a Stampli-ready record, or HELD/EXCLUDED with reasons naming line and code."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from connector.domain.mapping import MappingContext, map_bill
from connector.domain.records import PurchaseOrder, parse_bill
from connector.domain.states import BillState
from connector.errors import RecordProblem

PO = PurchaseOrder("po-1", "PO-0001", "c-1", "AUTHORISED", Decimal("115.00"))
CONTEXT = MappingContext(gl_codes={"400": "GL-400"}, purchase_orders={"1": PO}, eligible_statuses=("AUTHORISED",))


def xero_bill(**overrides: Any) -> dict[str, Any]:
    bill: dict[str, Any] = {
        "InvoiceID": "inv-1",
        "Type": "ACCPAY",
        "Status": "AUTHORISED",
        "InvoiceNumber": "PO-0001",
        "Contact": {"ContactID": "c-1", "Name": "Acme"},
        "Date": "/Date(1700000000000+0000)/",
        "DueDate": "/Date(1702592000000+0000)/",
        "CurrencyCode": "USD",
        "LineAmountTypes": "Exclusive",
        "SubTotal": 100.0,
        "TotalTax": 15.0,
        "Total": 115.0,
        "UpdatedDateUTC": "/Date(1700000000123+0000)/",
        "LineItems": [
            {"Description": "Paper, A4", "Quantity": 1, "UnitAmount": 100.0, "LineAmount": 100.0,
             "TaxAmount": 15.0, "AccountCode": "400"}
        ],
    }
    bill.update(overrides)
    return bill


def test_a_bill_with_a_known_po_and_mapped_accounts_is_ready_with_its_record() -> None:
    outcome = map_bill(parse_bill(xero_bill(), tenant_id="t"), CONTEXT)
    assert outcome.state is BillState.READY
    assert outcome.record is not None
    assert outcome.record["po_numbers"] == ["PO-0001"]
    assert outcome.record["lines"][0]["gl_code"] == "GL-400"
    assert outcome.record["total"] == "115.0"
    assert outcome.record["invoice_date"] == "2023-11-14"


@pytest.mark.parametrize(
    ("overrides", "state", "codes"),
    [
        pytest.param({"Type": "ACCREC"}, BillState.EXCLUDED, ["not_a_bill"], id="sales-invoice"),
        pytest.param({"Status": "DRAFT"}, BillState.EXCLUDED, ["status_not_eligible"], id="draft"),
        pytest.param({"InvoiceNumber": "INV-77"}, BillState.HELD, ["no_po"], id="no-po"),
        pytest.param({"InvoiceNumber": "PO-9999"}, BillState.HELD, ["unknown_po"], id="unknown-po"),
        pytest.param(
            {"LineItems": [{"LineAmount": 100.0, "AccountCode": "999"}]}, BillState.HELD, ["unmapped_gl"],
            id="unmapped-account",
        ),
        pytest.param({"LineItems": [{"LineAmount": 100.0}]}, BillState.HELD, ["line_without_account"],
                     id="line-without-account"),
        pytest.param(
            {"InvoiceNumber": "nothing", "LineItems": [{"LineAmount": 1.0, "AccountCode": "999"}]},
            BillState.HELD, ["no_po", "unmapped_gl"], id="every-reason-is-reported",
        ),
    ],
)
def test_bills_that_cannot_go_say_why(overrides: dict[str, Any], state: BillState, codes: list[str]) -> None:
    outcome = map_bill(parse_bill(xero_bill(**overrides), tenant_id="t"), CONTEXT)
    assert outcome.state is state
    assert [r.code for r in outcome.reasons] == codes


def test_unmapped_reason_names_the_line_and_the_code() -> None:
    outcome = map_bill(parse_bill(xero_bill(LineItems=[{"LineAmount": 1, "AccountCode": "999"}]), tenant_id="t"),
                       CONTEXT)
    assert outcome.reasons[0].params == {"line": 1, "account": "999"}
    assert outcome.reasons[0].as_json()["code"] == "unmapped_gl"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        pytest.param({"Total": "lots"}, "Total", id="bad-number"),
        pytest.param({"UpdatedDateUTC": "yesterday"}, "UpdatedDateUTC", id="bad-timestamp"),
        pytest.param({"Date": "2024-01-01"}, "Date", id="bad-date"),
        pytest.param({"Contact": {}}, "Contact.ContactID", id="no-contact"),
    ],
)
def test_a_bad_field_names_tenant_invoice_and_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(RecordProblem) as problem:
        parse_bill(xero_bill(**overrides), tenant_id="tenant-9")
    assert problem.value.field == field
    assert "tenant tenant-9 invoice inv-1" in str(problem.value)


def test_money_is_decimal_never_float() -> None:
    bill = parse_bill(xero_bill(Total=0.1 + 0.2), tenant_id="t")
    assert isinstance(bill.total, Decimal)
    assert parse_bill(xero_bill(Total=115.1), tenant_id="t").total == Decimal("115.1")
