"""map_bill: READY with a Stampli-ready record, or HELD / EXCLUDED / flagged with reasons an operator can
act on. One table row per rule; every row names the reason codes it expects."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from connector.domain.mapping import MappingContext, map_bill
from connector.domain.records import Account, PurchaseOrder, Vendor, parse_bill
from connector.domain.rules import Maps, Policy, ReasonClass, TenantRules, UnmappedTracking
from connector.domain.states import BillState
from connector.errors import RecordProblem

ACME = Vendor("c-1", "Acme", "ACTIVE", True, None, "GB123")
PO_1 = PurchaseOrder("po-1", "PO-0001", "c-1", "AUTHORISED", Decimal("115.00"), "USD")
CONTEXT = MappingContext(
    rules=TenantRules(),
    maps=Maps(gl={"400": "GL-400", "410": "GL-410"},
              tracking={("Department", "Sales"): ("cost_center", "CC-10"), ("Region", "*"): ("location", "*")},
              vendors={"c-1": "V-ACME"}),
    version=3,
    vendors={"c-1": ACME},
    accounts={"400": Account("400", "ACTIVE"), "410": Account("410", "ACTIVE"), "477": Account("477", "ARCHIVED")},
    purchase_orders={"1": [PO_1]},
)


def line(**overrides: Any) -> dict[str, Any]:
    base = {"Description": "Paper, A4", "Quantity": 1, "UnitAmount": 100.0, "LineAmount": 100.0, "TaxAmount": 15.0,
            "AccountCode": "400",
            "Tracking": [{"Name": "Department", "Option": "Sales"}, {"Name": "Region", "Option": "North"}]}
    return {**base, **overrides}


def xero_bill(**overrides: Any) -> dict[str, Any]:
    bill: dict[str, Any] = {
        "InvoiceID": "inv-1", "Type": "ACCPAY", "Status": "AUTHORISED", "InvoiceNumber": "PO-0001",
        "Contact": {"ContactID": "c-1", "Name": "Acme"}, "Date": "/Date(1700000000000+0000)/",
        "DueDate": "/Date(1702592000000+0000)/", "CurrencyCode": "USD", "LineAmountTypes": "Exclusive",
        "SubTotal": 100.0, "TotalTax": 15.0, "Total": 115.0, "UpdatedDateUTC": "/Date(1700000000123+0000)/",
        "LineItems": [line()],
    }
    bill.update(overrides)
    return bill


def mapped(context: MappingContext = CONTEXT, **overrides: Any) -> Any:
    return map_bill(parse_bill(xero_bill(**overrides), tenant_id="t"), context)


def with_rules(**changes: Any) -> MappingContext:
    return replace(CONTEXT, rules=replace(CONTEXT.rules, **changes))


def test_a_clean_bill_is_ready_with_its_po_context_gl_codes_and_dimensions() -> None:
    outcome = mapped()
    assert outcome.state is BillState.READY
    assert outcome.reasons == ()
    record = outcome.record
    assert record["po"] == [{"number": "PO-0001", "id": "po-1", "status": "AUTHORISED", "total": "115.00",
                             "date": "", "lines": []}]
    assert record["vendor_code"] == "V-ACME"
    assert record["lines"][0]["gl_code"] == "GL-400"
    assert record["lines"][0]["dimensions"] == {"cost_center": "CC-10", "location": "North"}
    assert record["total"] == "115.00"
    assert record["invoice_date"] == "2023-11-14"
    assert record["mapping_version"] == 3
    assert record["flagged"] is False


TWO_POS = PurchaseOrder("po-2", "PO-0002", "c-1", "AUTHORISED", Decimal("50.00"), "USD")
OTHER_SUPPLIER = PurchaseOrder("po-3", "PO-0003", "c-9", "AUTHORISED", Decimal("115.00"), "USD")
EUROS = PurchaseOrder("po-4", "PO-0004", "c-1", "AUTHORISED", Decimal("115.00"), "EUR")
DRAFT = PurchaseOrder("po-5", "PO-0005", "c-1", "DRAFT", Decimal("115.00"), "USD")
TWIN = PurchaseOrder("po-6", "PO-1", "c-8", "AUTHORISED", Decimal("115.00"), "USD")
POS = {**CONTEXT.purchase_orders, "2": [TWO_POS], "3": [OTHER_SUPPLIER], "4": [EUROS], "5": [DRAFT],
       "6": [PurchaseOrder("po-7", "PO-0006", "c-7", "AUTHORISED", Decimal("1"), "USD"),
             PurchaseOrder("po-8", "PO-6", "c-6", "AUTHORISED", Decimal("1"), "USD")]}
WIDE = replace(CONTEXT, purchase_orders=POS)


@pytest.mark.parametrize(
    ("overrides", "context", "state", "codes"),
    [
        pytest.param({"Type": "ACCREC"}, CONTEXT, BillState.EXCLUDED, ["not_a_bill"], id="sales-invoice-never"),
        pytest.param({"Status": "DRAFT"}, CONTEXT, BillState.EXCLUDED, ["status_not_eligible"], id="draft"),
        pytest.param({"Status": "SUBMITTED"}, with_rules(eligible_statuses=("AUTHORISED", "SUBMITTED")),
                     BillState.READY, [], id="eligible-statuses-per-tenant"),
        pytest.param({"InvoiceNumber": "INV-77"}, CONTEXT, BillState.HELD, ["no_po"], id="no-po"),
        pytest.param({"InvoiceNumber": "PO Box 12"}, CONTEXT, BillState.HELD, ["no_po"], id="po-box-is-no-po"),
        pytest.param({"InvoiceNumber": "PO-9999"}, CONTEXT, BillState.HELD, ["unknown_po"], id="unknown-po"),
        pytest.param({"InvoiceNumber": "PO-0003"}, WIDE, BillState.HELD, ["po_other_supplier"],
                     id="po-of-another-supplier"),
        pytest.param({"InvoiceNumber": "PO-0004"}, WIDE, BillState.HELD, ["po_other_currency"], id="po-in-euros"),
        pytest.param({"InvoiceNumber": "PO-0005"}, WIDE, BillState.HELD, ["po_not_billable"], id="draft-po"),
        pytest.param({"InvoiceNumber": "PO-0006"}, WIDE, BillState.HELD, ["ambiguous_po"],
                     id="two-pos-share-a-number"),
        pytest.param({"InvoiceNumber": "PO-0001, PO-0002"}, WIDE, BillState.READY, [],
                     id="two-pos-partly-billed"),
        pytest.param({"InvoiceNumber": "PO-0001, PO-0002"}, replace(WIDE, rules=replace(
            WIDE.rules, allow_partial_billing=False)), BillState.HELD, ["po_amount_variance"],
                     id="two-pos-totals-differ-when-partial-billing-is-off"),
        pytest.param({"Total": 120.0, "SubTotal": 105.0, "LineItems": [line(UnitAmount=105.0, LineAmount=105.0)]},
                     CONTEXT, BillState.HELD, ["po_amount_variance"], id="total-over-the-po"),
        pytest.param({"Total": 120.0, "SubTotal": 105.0, "LineItems": [line(UnitAmount=105.0, LineAmount=105.0)]},
                     with_rules(amount_tolerance_percent=Decimal("5")), BillState.READY, [], id="within-5-percent"),
        pytest.param({"LineItems": [line(AccountCode="999")]}, CONTEXT, BillState.HELD, ["unmapped_gl"],
                     id="unmapped-account"),
        pytest.param({"LineItems": [line(AccountCode=None)]}, CONTEXT, BillState.HELD, ["line_without_account"],
                     id="line-without-account"),
        pytest.param({"LineItems": [line(AccountCode="477")]}, replace(CONTEXT, maps=replace(
            CONTEXT.maps, gl={**CONTEXT.maps.gl, "477": "GL-477"})), BillState.HELD, ["archived_account"],
                     id="archived-account"),
        pytest.param({"LineItems": [line(Tracking=[{"Name": "Department", "Option": "R&D"}])]}, CONTEXT,
                     BillState.HELD, ["unmapped_dimension"], id="unmapped-tracking-option"),
        pytest.param({"LineItems": [line(Tracking=[{"Name": "Department", "Option": "R&D"}])]},
                     with_rules(unmapped_tracking=UnmappedTracking.IGNORE), BillState.READY, [],
                     id="unmapped-tracking-ignored"),
        pytest.param({"Contact": {"ContactID": "c-404", "Name": "Nobody"}}, CONTEXT, BillState.HELD,
                     ["vendor_unknown", "po_other_supplier"], id="unknown-vendor"),
        pytest.param({}, replace(CONTEXT, vendors={"c-1": replace(ACME, status="ARCHIVED")}), BillState.HELD,
                     ["vendor_archived"], id="archived-vendor"),
        pytest.param({}, replace(with_rules(require_tax_number=True), vendors={"c-1": replace(ACME, tax_number="")}),
                     BillState.HELD, ["vendor_no_tax_number"], id="tax-number-required"),
        pytest.param({"Total": 116.0}, CONTEXT, BillState.HELD, ["po_amount_variance", "money_mismatch"],
                     id="total-does-not-add-up"),
        pytest.param({"InvoiceNumber": "nothing", "LineItems": [line(AccountCode="999")]}, CONTEXT, BillState.HELD,
                     ["no_po", "unmapped_gl"], id="every-reason-is-reported"),
    ],
)
def test_rules(overrides: dict[str, Any], context: MappingContext, state: BillState, codes: list[str]) -> None:
    outcome = mapped(context, **overrides)
    assert [r.code for r in outcome.reasons] == codes
    assert outcome.state is state


def test_a_merged_duplicate_stands_for_the_contact_it_was_merged_into() -> None:
    duplicate = Vendor("c-dup", "Acme (duplicate)", "ARCHIVED", True, "c-1", "")
    context = replace(CONTEXT, vendors={"c-dup": duplicate, "c-1": ACME})
    outcome = mapped(context, Contact={"ContactID": "c-dup", "Name": "Acme (duplicate)"})
    assert outcome.state is BillState.READY
    assert outcome.record["vendor_id"] == "c-1"


@pytest.mark.parametrize(
    ("policy", "state", "flagged"),
    [(Policy.HOLD, BillState.HELD, False), (Policy.EXCLUDE, BillState.EXCLUDED, False),
     (Policy.DELIVER_FLAGGED, BillState.READY, True)],
)
def test_the_tenant_policy_decides_what_a_reason_does(policy: Policy, state: BillState, flagged: bool) -> None:
    context = with_rules(policies={**CONTEXT.rules.policies, ReasonClass.NO_PO: policy})
    outcome = mapped(context, InvoiceNumber="INV-77")
    assert outcome.state is state
    assert outcome.record["flagged"] is flagged
    if flagged:
        assert outcome.record["flags"] == ["no purchase order number found in InvoiceNumber ('INV-77')"]


def test_exclude_outranks_hold_outranks_flag() -> None:
    flagged_and_excluded = with_rules(policies={**CONTEXT.rules.policies, ReasonClass.NO_PO: Policy.DELIVER_FLAGGED,
                                                ReasonClass.UNMAPPED_GL: Policy.EXCLUDE})
    assert mapped(flagged_and_excluded, InvoiceNumber="INV-77", LineItems=[line(AccountCode="999")]).state \
        is BillState.EXCLUDED
    held_and_excluded = with_rules(policies={**CONTEXT.rules.policies, ReasonClass.NO_PO: Policy.EXCLUDE})
    assert mapped(held_and_excluded, InvoiceNumber="INV-77", LineItems=[line(AccountCode="999")]).state \
        is BillState.EXCLUDED
    held_and_flagged = with_rules(policies={**CONTEXT.rules.policies, ReasonClass.NO_PO: Policy.DELIVER_FLAGGED})
    assert mapped(held_and_flagged, InvoiceNumber="INV-77", LineItems=[line(AccountCode="999")]).state \
        is BillState.HELD


def test_a_note_line_without_amount_needs_no_account() -> None:
    note = line(AccountCode=None, Quantity=0, UnitAmount=0, LineAmount=0, TaxAmount=0, Tracking=[],
                Description="Delivered to the back door")
    assert mapped(LineItems=[line(), note]).state is BillState.READY


@pytest.mark.parametrize(
    ("kind", "sub_total", "tax", "total", "line_amount", "line_tax"),
    [("Exclusive", 100.0, 15.0, 115.0, 100.0, 15.0), ("Inclusive", 100.0, 15.0, 115.0, 115.0, 15.0),
     ("NoTax", 100.0, 0.0, 100.0, 100.0, 0.0)],
)
def test_all_three_line_amount_types_add_up(kind: str, sub_total: float, tax: float, total: float,
                                            line_amount: float, line_tax: float) -> None:
    context = replace(CONTEXT, purchase_orders={"1": [replace(PO_1, total=Decimal(str(total)))]})
    outcome = mapped(context, LineAmountTypes=kind, SubTotal=sub_total, TotalTax=tax, Total=total,
                     LineItems=[line(UnitAmount=line_amount, LineAmount=line_amount, TaxAmount=line_tax)])
    assert outcome.reasons == ()


def test_the_reason_names_the_line_and_the_account() -> None:
    outcome = mapped(LineItems=[line(), line(AccountCode="999")], SubTotal=200.0, TotalTax=30.0, Total=230.0)
    reason = next(r for r in outcome.reasons if r.code == "unmapped_gl")
    assert reason.params == {"line": 2, "account": "999"}
    assert reason.text() == "line 2: Xero account 999 has no Stampli GL code"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        pytest.param({"Total": "lots"}, "Total", id="bad-number"),
        pytest.param({"UpdatedDateUTC": "yesterday"}, "UpdatedDateUTC", id="bad-timestamp"),
        pytest.param({"Date": "31/01/2024"}, "Date", id="bad-date"),
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


@pytest.mark.parametrize(
    ("already", "total", "codes"),
    [
        pytest.param({}, 115.0, [], id="first-bill-against-the-po"),
        pytest.param({"inv-0": Decimal("60.00")}, 55.0, [], id="two-partial-bills-fill-the-po"),
        pytest.param({"inv-0": Decimal("115.00")}, 115.0, ["po_over_billed"], id="a-second-full-bill"),
        pytest.param({"inv-0": Decimal("60.00"), "inv-9": Decimal("50.00")}, 10.0, ["po_over_billed"],
                     id="three-bills-past-the-total"),
        pytest.param({"inv-1": Decimal("115.00")}, 115.0, [], id="its-own-earlier-version-does-not-count"),
    ],
)
def test_a_po_is_never_billed_past_its_total_across_bills(already: dict[str, Decimal], total: float,
                                                          codes: list[str]) -> None:
    context = replace(CONTEXT, billed_against={"po-1": already})
    amounts = {"SubTotal": total, "TotalTax": 0.0, "Total": total,
               "LineItems": [line(UnitAmount=total, LineAmount=total, TaxAmount=0.0)]}
    outcome = mapped(context, **amounts)
    assert [r.code for r in outcome.reasons] == codes
