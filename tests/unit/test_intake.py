"""Checking Xero records where they enter: a record is usable as it is, or every problem is named with
the record (kind and id, or its place in the page) and the field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from connector.domain.intake import (
    RecordKind,
    check_page,
    check_record,
    clip,
    decision_failed,
    storable,
    storable_json,
)
from connector.errors import RecordProblem
from connector.store.intake import column_lengths

LENGTHS = column_lengths()
INVOICE_ID = "0a1b2c3d-0000-4000-8000-000000000001"


def bill(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "InvoiceID": INVOICE_ID, "Type": "ACCPAY", "Status": "AUTHORISED", "InvoiceNumber": "PO-0001",
        "Contact": {"ContactID": "c0ffee00-0000-4000-8000-000000000001", "Name": "O'Brien & Sons"},
        "Date": "/Date(1700000000000+0000)/", "DueDate": "/Date(1702592000000+0000)/", "CurrencyCode": "NZD",
        "LineAmountTypes": "Exclusive", "SubTotal": 100.0, "TotalTax": 15.0, "Total": 115.0,
        "UpdatedDateUTC": "/Date(1700000000123+0000)/",
        "LineItems": [{"Description": "Copper pipe", "Quantity": 1.0, "UnitAmount": 100.0, "LineAmount": 100.0,
                       "TaxAmount": 15.0, "AccountCode": "473",
                       "Tracking": [{"Name": "Region", "Option": "North"}]}],
    }
    base.update(changes)
    return base


def purchase_order(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"PurchaseOrderID": "9a000000-0000-4000-8000-000000000001", "PurchaseOrderNumber": "PO-0001",
                            "Status": "AUTHORISED", "Contact": {"ContactID": "c1"}, "Total": "36.80",
                            "CurrencyCode": "NZD", "Date": "2024-01-31", "UpdatedDateUTC": "/Date(1700000000000)/",
                            "LineItems": [{"Description": "x", "Quantity": 1, "UnitAmount": 2, "LineAmount": 2}]}
    base.update(changes)
    return base


def contact(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"ContactID": "c0ffee00-0000-4000-8000-000000000001", "Name": "Acme",
                            "ContactStatus": "ACTIVE", "IsSupplier": True,
                            "UpdatedDateUTC": "/Date(1700000000000+0000)/"}
    base.update(changes)
    return base


def account(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"AccountID": "a0000000-0000-4000-8000-000000000001", "Code": "473", "Name": "Repairs",
                            "Status": "ACTIVE", "UpdatedDateUTC": "/Date(1700000000000+0000)/"}
    base.update(changes)
    return base


def tracking(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"TrackingCategoryID": "t0000000-0000-4000-8000-000000000001", "Name": "Region",
                            "Status": "ACTIVE", "Options": [{"TrackingOptionID": "o1", "Name": "North",
                                                             "Status": "ACTIVE"}]}
    base.update(changes)
    return base


def with_line(**changes: Any) -> dict[str, Any]:
    line = {**bill()["LineItems"][0], **changes}
    return bill(LineItems=[line])


GOOD = [
    (RecordKind.BILL, bill()),
    (RecordKind.BILL, bill(LineItems=None, Date="", DueDate=None, CurrencyRate="1.000000")),
    (RecordKind.BILL, bill(Date="2024-01-31", DueDate="2024-02-29T00:00:00",
                           UpdatedDateUTC="2024-01-31T10:00:00.1234567Z")),
    (RecordKind.BILL, bill(Total="115.00", Status="A" * 32, InvoiceNumber="€" * 255)),
    (RecordKind.BILL, bill(UpdatedDateUTC="/Date(253402300799999)/")),  # the last millisecond of year 9999
    (RecordKind.BILL, bill(InvoiceNumber="\U0001F600 \U00020000 \U000E0001 \U0010FFFD")),  # every plane
    (RecordKind.BILL, bill(AmountDue=float("nan"))),  # a field the connector does not read
    (RecordKind.PURCHASE_ORDER, purchase_order()),
    (RecordKind.PURCHASE_ORDER, purchase_order(Contact=None, LineItems=[])),
    (RecordKind.CONTACT, contact()),
    (RecordKind.CONTACT, {"ContactID": "c1"}),
    (RecordKind.ACCOUNT, account()),
    (RecordKind.ACCOUNT, account(Code=None)),
    (RecordKind.TRACKING_CATEGORY, tracking()),
]


@pytest.mark.parametrize(("kind", "data"), GOOD)
def test_a_good_record_is_usable_as_it_is(kind: RecordKind, data: dict[str, Any]) -> None:
    checked = check_record(kind, data, 1, LENGTHS)
    assert checked.ok, checked.summary()
    assert checked.data is data


NAN, INF = float("nan"), float("inf")
HUGE = json.loads('{"v": 1E+999999}')["v"]  # Python's JSON reader turns it into infinity

# (kind, record, field named in the problem): the regression cases first
BAD = [
    (RecordKind.BILL, bill(UpdatedDateUTC="/Date(253402300800000)/"), "UpdatedDateUTC"),  # past year 9999
    (RecordKind.BILL, bill(UpdatedDateUTC="/Date(99999999999999999999)/"), "UpdatedDateUTC"),
    (RecordKind.BILL, bill(Status="AUTHORISED" * 4), "Status"),  # over the 32 of the column
    (RecordKind.BILL, bill(InvoiceID="x" * 65), "InvoiceID"),
    (RecordKind.PURCHASE_ORDER, purchase_order(PurchaseOrderNumber="PO-" + "1" * 300), "PurchaseOrderNumber"),
    (RecordKind.CONTACT, contact(ContactStatus="ACTIVE" * 10), "ContactStatus"),
    (RecordKind.BILL, bill(LineItems=[None]), "LineItems[1]"),
    (RecordKind.BILL, bill(LineItems="Copper pipe"), "LineItems"),
    (RecordKind.BILL, bill(LineItems={"Description": "x"}), "LineItems"),
    (RecordKind.BILL, with_line(Tracking=[None]), "LineItems[1].Tracking[1]"),
    (RecordKind.BILL, bill(Total=NAN), "Total"),
    (RecordKind.BILL, bill(Total=INF), "Total"),
    (RecordKind.BILL, bill(Total=HUGE), "Total"),
    (RecordKind.BILL, bill(Total="NaN"), "Total"),
    (RecordKind.BILL, bill(Total="1E+999999"), "Total"),
    # shapes and types
    (RecordKind.BILL, bill(InvoiceID=None), "InvoiceID"),
    (RecordKind.BILL, bill(InvoiceID=12), "InvoiceID"),
    (RecordKind.BILL, bill(InvoiceID=""), "InvoiceID"),
    (RecordKind.BILL, bill(InvoiceID="a\x00b"), "InvoiceID"),
    (RecordKind.BILL, bill(Type=None), "Type"),
    (RecordKind.BILL, bill(Status=["AUTHORISED"]), "Status"),
    (RecordKind.BILL, bill(Contact=None), "Contact"),
    (RecordKind.BILL, bill(Contact="Acme"), "Contact"),
    (RecordKind.BILL, bill(Contact={"Name": "Acme"}), "Contact.ContactID"),
    (RecordKind.BILL, bill(Contact={"ContactID": "c" * 65}), "Contact.ContactID"),
    (RecordKind.BILL, bill(Total=None), "Total"),
    (RecordKind.BILL, bill(Total=True), "Total"),
    (RecordKind.BILL, bill(Total={"amount": 1}), "Total"),
    (RecordKind.BILL, bill(Total="twelve"), "Total"),
    (RecordKind.BILL, bill(Total=1e15), "Total"),
    (RecordKind.BILL, bill(Total="0.00000000001"), "Total"),
    (RecordKind.BILL, bill(SubTotal=-INF), "SubTotal"),
    (RecordKind.BILL, bill(CurrencyRate=NAN), "CurrencyRate"),
    (RecordKind.BILL, with_line(LineAmount=None), "LineItems[1].LineAmount"),
    (RecordKind.BILL, with_line(Quantity="1" * 100), "LineItems[1].Quantity"),
    (RecordKind.BILL, with_line(Description="x" * 10_000_000), "LineItems[1].Description"),
    (RecordKind.BILL, with_line(Description="a\ud800b"), "LineItems[1].Description"),
    (RecordKind.BILL, with_line(AccountCode=473), "LineItems[1].AccountCode"),
    (RecordKind.BILL, with_line(Tracking="Region"), "LineItems[1].Tracking"),
    (RecordKind.BILL, with_line(Tracking=[{"Name": 1}]), "LineItems[1].Tracking[1].Name"),
    # dates
    (RecordKind.BILL, bill(UpdatedDateUTC=None), "UpdatedDateUTC"),
    (RecordKind.BILL, bill(UpdatedDateUTC=1700000000000), "UpdatedDateUTC"),
    (RecordKind.BILL, bill(UpdatedDateUTC="/Date(-1000)/"), "UpdatedDateUTC"),  # before 1970
    (RecordKind.BILL, bill(Date="/Date(-62135596800001+0000)/"), "Date"),  # before year 1
    (RecordKind.BILL, bill(DueDate="next Tuesday"), "DueDate"),
    (RecordKind.BILL, bill(DueDate="2024-02-30"), "DueDate"),
    (RecordKind.BILL, bill(Date="10000-01-01"), "Date"),
    # purchase orders
    (RecordKind.PURCHASE_ORDER, purchase_order(PurchaseOrderID=None), "PurchaseOrderID"),
    (RecordKind.PURCHASE_ORDER, purchase_order(PurchaseOrderNumber=None), "PurchaseOrderNumber"),
    (RecordKind.PURCHASE_ORDER, purchase_order(PurchaseOrderNumber="PO-" + "-".join(["123456789012"] * 3)),
     "PurchaseOrderNumber"),  # its key would not fit the key column
    (RecordKind.PURCHASE_ORDER, purchase_order(Status="S" * 33), "Status"),
    (RecordKind.PURCHASE_ORDER, purchase_order(Total=NAN), "Total"),
    (RecordKind.PURCHASE_ORDER, purchase_order(Contact={"ContactID": 5}), "Contact.ContactID"),
    (RecordKind.PURCHASE_ORDER, purchase_order(LineItems=[1]), "LineItems[1]"),
    (RecordKind.PURCHASE_ORDER, purchase_order(UpdatedDateUTC="/Date(253402300800000+0000)/"), "UpdatedDateUTC"),
    # contacts, accounts, tracking categories
    (RecordKind.CONTACT, contact(ContactID=None), "ContactID"),
    (RecordKind.CONTACT, contact(Name="n" * 256), "Name"),
    (RecordKind.CONTACT, contact(IsSupplier="yes"), "IsSupplier"),
    (RecordKind.CONTACT, contact(MergedToContactID="m" * 65), "MergedToContactID"),
    (RecordKind.CONTACT, contact(UpdatedDateUTC="/Date(253402300800000)/"), "UpdatedDateUTC"),
    (RecordKind.ACCOUNT, account(AccountID=7), "AccountID"),
    (RecordKind.ACCOUNT, account(Code="4" * 21), "Code"),
    (RecordKind.ACCOUNT, account(Status="\x00"), "Status"),
    (RecordKind.TRACKING_CATEGORY, tracking(TrackingCategoryID=""), "TrackingCategoryID"),
    (RecordKind.TRACKING_CATEGORY, tracking(Options="North"), "Options"),
    (RecordKind.TRACKING_CATEGORY, tracking(Options=[{"Name": None, "Status": 3}]), "Options[1].Status"),
]


@pytest.mark.parametrize(("kind", "data", "field"), BAD)
def test_a_bad_record_is_refused_naming_the_record_and_the_field(
    kind: RecordKind, data: dict[str, Any], field: str,
) -> None:
    checked = check_record(kind, data, 3, LENGTHS)
    assert not checked.ok
    assert field in [p.field for p in checked.problems], checked.summary()
    own_id = data.get(kind.id_field)
    named_by = f"{kind.label} {own_id}" if checked.record_id else f"{kind.label} #3 of the page"
    assert all(p.record == named_by for p in checked.problems)
    assert len(checked.summary()) < 2000  # a 10 MB value is quoted short


@pytest.mark.parametrize("kind", list(RecordKind))
@pytest.mark.parametrize("data", [None, "a bill", 12, ["x"], True])
def test_something_that_is_not_an_object_is_refused_by_its_place_in_the_page(kind: RecordKind, data: Any) -> None:
    checked = check_record(kind, data, 2, LENGTHS)
    assert not checked.ok
    assert checked.problems[0].record == f"{kind.label} #2 of the page"
    assert checked.storage_id().startswith("unusable-")
    assert len(checked.storage_id()) <= LENGTHS["bills.invoice_id"]


def test_a_record_with_an_unusable_id_is_stored_under_a_stable_id_that_fits() -> None:
    long_id = bill(InvoiceID="x" * 10_000)
    first = check_record(RecordKind.BILL, long_id, 1, LENGTHS)
    again = check_record(RecordKind.BILL, long_id, 9, LENGTHS)
    assert first.storage_id() == again.storage_id()
    assert len(first.storage_id()) <= LENGTHS["bills.invoice_id"]
    assert first.problems[0].record == "invoice #1 of the page"


@pytest.mark.parametrize("envelope", [None, {"Invoices": 1}, "Invoices", 5])
def test_an_answer_without_a_list_of_records_is_an_empty_page_with_the_problem(envelope: Any) -> None:
    page = check_page(RecordKind.BILL, envelope, LENGTHS)
    assert page.records == ()
    assert page.count == 0
    assert page.envelope_problem


def test_duplicate_ids_in_a_page_keep_the_newest_version_and_the_page_keeps_its_count() -> None:
    older = bill(UpdatedDateUTC="/Date(1700000000000)/", Total=1)
    newer = bill(UpdatedDateUTC="/Date(1700000009000)/", Total=2)
    page = check_page(RecordKind.BILL, [newer, older, bill(InvoiceID="other")], LENGTHS)
    assert [c.data["Total"] for c in page.records] == [2, 115.0]
    assert page.count == 3
    assert page.duplicates == 1
    assert len(page.stamps) == 3


def test_paging_stamps_ignore_unreadable_ones_without_making_a_full_page_look_short() -> None:
    page = check_page(RecordKind.BILL, [bill(InvoiceID="a", UpdatedDateUTC="/Date(5000)/"),
                                        bill(InvoiceID="b", UpdatedDateUTC="/Date(253402300800000)/"),
                                        bill(InvoiceID="c", UpdatedDateUTC="/Date(9000)/")], LENGTHS)
    assert page.stamps == [5000, 5000, 9000]
    assert [c.record_id for c in page.rejected] == ["b"]
    assert len(page.usable) == 2


def test_usable_records_are_as_xero_sent_them_and_the_ledgers_writer_makes_them_storable_only_where_needed() -> None:
    plain = bill()
    odd = bill(AmountDue=float("nan"), Payments=[{"Amount": float("inf")}])
    usable = check_page(RecordKind.BILL, [plain, {**odd, "InvoiceID": "b"}], LENGTHS).usable
    assert usable[0] is plain
    assert storable_json(plain) == json.dumps(plain)
    written = json.loads(storable_json(usable[1]))
    assert written["AmountDue"] == "nan"
    assert written["Payments"] == [{"Amount": "inf"}]
    assert storable(odd) is not odd
    assert storable(plain) is plain


def test_clip_fits_any_column_and_any_database() -> None:
    assert clip("ab\x00c\ud800d", 4) == "ab\ufffdc"
    assert clip(12, 10) == "12"


def test_a_mapping_failure_becomes_a_bad_record_reason_naming_the_field_when_it_can() -> None:
    named = decision_failed(RecordProblem("invoice 1", "DueDate", "is not a Xero date"), "invoice 1")
    assert named.code == "bad_record"
    assert named.params["field"] == "DueDate"
    unnamed = decision_failed(AttributeError("'NoneType' object has no attribute 'get'"), "invoice 1")
    assert unnamed.params["problem"].startswith("invoice 1: mapping failed on it: AttributeError")
    assert unnamed.as_json()["code"] == "bad_record"


@pytest.mark.parametrize(("total", "usable"), [
    (0, True), (10**15 - 1, True), (10**15, False), (-(10**15), False), (True, False),
    (0.0, True), (115.25, True), (999_999_999_999_999.9, True), (1e15, False), (-1e15, False),
    (0.1234567891, True), (0.12345678912, False), (1e-10, True), (1e-11, False),
    (float("nan"), False), (float("inf"), False), (float("-inf"), False), ("115.25", True), ("1e16", False),
])
def test_an_amount_is_judged_the_same_whether_it_arrives_as_an_int_a_float_or_text(total: Any, usable: bool) -> None:
    assert check_record(RecordKind.BILL, bill(Total=total), 1, LENGTHS).ok is usable


@pytest.mark.parametrize(("text", "named"), [
    ("a\x00b\ud800", "a NUL character"), ("x\udfff\x00", "a lone surrogate (U+DFFF)"), ("\ud7ff\ue000", None)])
def test_the_first_character_no_database_can_store_is_the_one_named(text: str, named: str | None) -> None:
    problems = check_record(RecordKind.BILL, bill(Reference=text), 1, LENGTHS).problems
    assert [p.problem.split(",")[0].removeprefix("holds ") for p in problems] == ([named] if named else [])
