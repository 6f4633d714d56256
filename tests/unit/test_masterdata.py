"""Master data for Stampli, the pure rules: each kind's rows, fingerprints and delta, and the order of files."""

from __future__ import annotations

from typing import Any

import pytest

from connector.domain.masterdata import (
    DEPENDS_ON,
    MASTER_KINDS,
    EarlierFile,
    Kind,
    TrackingOption,
    delta,
    dimension_records,
    fingerprint,
    gl_account_records,
    purchase_order_records,
    vendor_records,
    waits_for,
)
from connector.domain.rules import Maps
from connector.stampli import default_master_template, parse_template, render
from connector.stampli.template import TemplateError

MAPS = Maps(gl={"400": "GL-6000"}, vendors={"c-1": "V-001", "c-2": "V-002"},
            tracking={("Department", "Sales"): ("department", "SAL"), ("Region", "*"): ("location", "*")})

SUPPLIER: dict[str, Any] = {
    "ContactID": "c-1", "Name": "Acme", "ContactStatus": "ACTIVE", "IsSupplier": True, "TaxNumber": "12 345",
    "DefaultCurrency": "AUD", "EmailAddress": "ap@acme.test",
    "Phones": [{"PhoneType": "DEFAULT", "PhoneCountryCode": "61", "PhoneAreaCode": "2", "PhoneNumber": "5550 1234"}],
    "Addresses": [{"AddressType": "POBOX", "AddressLine1": "PO Box 12", "City": "Sydney", "Country": "Australia"},
                  {"AddressType": "STREET", "AddressLine1": "1 George St"}],
    "BankAccountDetails": "062-000 1234 5678", "BatchPayments": {"BankAccountNumber": "062000123456789"},
}


@pytest.mark.parametrize(("contact", "expected"), [
    ({**SUPPLIER}, {"vendor_code": "V-001", "status": "ACTIVE", "archived": False, "merged": False}),
    ({**SUPPLIER, "ContactStatus": "ARCHIVED"}, {"status": "ARCHIVED", "archived": True, "merged": False}),
    ({**SUPPLIER, "ContactStatus": "ARCHIVED", "MergedToContactID": "c-2"},
     {"archived": True, "merged": True, "merged_to": "c-2", "merged_to_code": "V-002"}),
    ({**SUPPLIER, "ContactStatus": "GDPRREQUEST"}, {"status": "GDPRREQUEST", "archived": True}),
])
def test_a_vendor_row_marks_archived_and_merged_suppliers(contact: dict[str, Any], expected: dict[str, Any]) -> None:
    [record] = vendor_records([contact], MAPS)
    assert record.key == "c-1"
    assert {k: record.row[k] for k in expected} == expected


def test_a_vendor_row_never_carries_bank_details() -> None:
    [record] = vendor_records([SUPPLIER], MAPS)
    text = repr(record.row)
    assert "062" not in text.replace("+61", "")
    assert "bank" not in text.lower()
    assert record.row["phone"] == "61 2 5550 1234"
    assert record.row["postal_address"]["line1"] == "PO Box 12"
    assert record.row["street_address"]["line1"] == "1 George St"


@pytest.mark.parametrize(("contact", "is_vendor"), [
    ({"ContactID": "c-9", "IsSupplier": True}, True),
    ({"ContactID": "c-9", "IsSupplier": False, "IsCustomer": True}, False),
    ({"ContactID": "c-9", "IsSupplier": False, "MergedToContactID": "c-1"}, True),  # a merged duplicate
    ({"IsSupplier": True}, False),  # no key, no row
])
def test_vendors_are_suppliers_and_merged_contacts(contact: dict[str, Any], is_vendor: bool) -> None:
    assert bool(vendor_records([contact], MAPS)) is is_vendor


@pytest.mark.parametrize(("account", "expected"), [
    ({"AccountID": "a-1", "Code": "400", "Name": "Advertising", "Type": "EXPENSE", "Class": "EXPENSE",
      "Status": "ACTIVE"}, {"gl_code": "GL-6000", "type": "EXPENSE", "archived": False}),
    ({"AccountID": "a-2", "Code": "401", "Name": "Old", "Type": "EXPENSE", "Status": "ARCHIVED"},
     {"gl_code": "", "status": "ARCHIVED", "archived": True}),
    ({"AccountID": "a-3", "Name": "Cheque account", "Type": "BANK", "BankAccountNumber": "0620001234"}, None),
])
def test_gl_accounts_carry_the_mapped_stampli_code(account: dict[str, Any], expected: dict[str, Any] | None) -> None:
    records = gl_account_records([account], MAPS)
    if expected is None:
        assert records == []  # no code: no bill line can name it
        return
    assert {k: records[0].row[k] for k in expected} == expected
    assert "0620001234" not in repr(records[0].row)


def _option(category: str, option: str, *, status: str = "ACTIVE", category_status: str = "ACTIVE") -> TrackingOption:
    return TrackingOption(f"cat-{category}", category, category_status, f"opt-{option}", option, status)


@pytest.mark.parametrize(("option", "pass_through", "expected"), [
    (_option("Department", "Sales"), False, ("department", "SAL", "ACTIVE")),
    (_option("Region", "North"), False, ("location", "North", "ACTIVE")),           # a whole category, "*"
    (_option("Region", "South", status="ARCHIVED"), False, ("location", "South", "ARCHIVED")),
    (_option("Region", "East", category_status="ARCHIVED"), False, ("location", "East", "ARCHIVED")),
    (_option("Department", "Ops"), False, None),                                    # not in the map: not a value
    (_option("Department", "Ops"), True, ("Department", "Ops", "ACTIVE")),          # pass_through: its own name
])
def test_dimension_values_come_through_the_tracking_map(option: TrackingOption, pass_through: bool,
                                                        expected: tuple[str, str, str] | None) -> None:
    records = dimension_records([option], MAPS, pass_through=pass_through)
    if expected is None:
        assert records == []
        return
    row = records[0].row
    assert (row["dimension"], row["value"], row["status"]) == expected
    assert records[0].key == option.option_id


def _po(status: str, **extra: Any) -> dict[str, Any]:
    return {"PurchaseOrderID": f"po-{status}", "PurchaseOrderNumber": "PO-0001", "Status": status,
            "Contact": {"ContactID": "c-1", "Name": "Acme (as on the PO)"}, "DateString": "2024-03-01T00:00:00",
            "CurrencyCode": "EUR", "CurrencyRate": 0.61, "LineAmountTypes": "Exclusive", "SubTotal": 100,
            "TotalTax": 10, "Total": 110.0,
            "LineItems": [{"Description": "Widgets", "Quantity": 2.5, "UnitAmount": 40, "LineAmount": 100,
                           "TaxAmount": 10, "AccountCode": "400",
                           "Tracking": [{"Name": "Department", "Option": "Sales"}, {"Name": "Region", "Option": "X"}]}],
            **extra}


@pytest.mark.parametrize(("status", "sent_before", "is_sent"), [
    ("DRAFT", False, False), ("SUBMITTED", False, False), ("AUTHORISED", False, True), ("BILLED", False, True),
    ("DELETED", False, False),
    ("DRAFT", True, True), ("DELETED", True, True), ("BILLED", True, True),  # a change of status of a sent PO
])
def test_purchase_orders_in_every_status(status: str, sent_before: bool, is_sent: bool) -> None:
    order = _po(status)
    sent = {order["PurchaseOrderID"]: "an older fingerprint"} if sent_before else {}
    records = purchase_order_records([order], MAPS, {"c-1": "Acme"}, sent)
    assert bool(records) is is_sent
    if records:
        assert records[0].row["status"] == status
        assert records[0].row["open"] is (status == "AUTHORISED")


def test_a_purchase_order_row_has_its_header_lines_codes_and_dimensions() -> None:
    [record] = purchase_order_records([_po("AUTHORISED")], MAPS, {"c-1": "Acme"}, {})
    row = record.row
    assert (row["number"], row["vendor_name"], row["vendor_code"], row["date"], row["currency"]) == (
        "PO-0001", "Acme", "V-001", "2024-03-01", "EUR")
    assert (row["currency_rate"], row["total"]) == ("0.61", "110.00")
    [line] = row["lines"]
    assert (line["quantity"], line["line_amount"], line["gl_code"]) == ("2.5", "100.00", "GL-6000")
    assert line["dimensions"] == {"department": "SAL", "location": "X"}


def test_a_fingerprint_is_stable_and_changes_with_what_is_sent() -> None:
    [a] = purchase_order_records([_po("AUTHORISED")], MAPS, {}, {})
    [same] = purchase_order_records([dict(reversed(list(_po("AUTHORISED").items())))], MAPS, {}, {})
    [billed] = purchase_order_records([_po("AUTHORISED", Status="BILLED")], MAPS, {}, {})
    assert a.fingerprint == same.fingerprint == fingerprint(dict(reversed(list(a.row.items()))))
    assert billed.fingerprint != a.fingerprint
    # what no row carries changes nothing: bank details, Xero's own timestamps
    [v1] = vendor_records([SUPPLIER], MAPS)
    [v2] = vendor_records([{**SUPPLIER, "BankAccountDetails": "other", "UpdatedDateUTC": "/Date(1)/"}], MAPS)
    assert v1.fingerprint == v2.fingerprint


def test_the_delta_is_what_is_new_or_changed_in_key_order() -> None:
    records = vendor_records([{**SUPPLIER, "ContactID": f"c-{n}", "Name": f"V{n}"} for n in (3, 1, 2)], MAPS)
    by_key = {r.key: r for r in records}
    sent = {"c-1": by_key["c-1"].fingerprint, "c-2": "stale"}
    assert [r.key for r in delta(records, sent)] == ["c-2", "c-3"]
    assert delta(records, {r.key: r.fingerprint for r in records}) == []
    assert [r.key for r in delta(records, {})] == ["c-1", "c-2", "c-3"]  # the first file is full


def _file(kind: Kind, delivered: bool) -> EarlierFile:
    return EarlierFile(f"{kind}.csv", kind, delivered, "DELIVERED" if delivered else "STAGED")


@pytest.mark.parametrize(("kind", "earlier", "waits"), [
    (Kind.BILLS, [_file(Kind.VENDORS, False)], [Kind.VENDORS]),
    (Kind.BILLS, [_file(Kind.VENDORS, True), _file(Kind.PURCHASE_ORDERS, False)], [Kind.PURCHASE_ORDERS]),
    (Kind.BILLS, [_file(k, True) for k in MASTER_KINDS], []),
    (Kind.BILLS, [_file(Kind.BILLS, False)], []),                       # bill files never wait for each other
    (Kind.PURCHASE_ORDERS, [_file(Kind.VENDORS, False), _file(Kind.GL_ACCOUNTS, False)],
     [Kind.VENDORS, Kind.GL_ACCOUNTS]),
    (Kind.PURCHASE_ORDERS, [_file(Kind.BILLS, False)], []),
    (Kind.PURCHASE_ORDERS, [_file(Kind.PURCHASE_ORDERS, False)], [Kind.PURCHASE_ORDERS]),  # older rows first
    (Kind.VENDORS, [_file(Kind.BILLS, False), _file(Kind.PURCHASE_ORDERS, False)], []),
    (Kind.VENDORS, [_file(Kind.VENDORS, False)], [Kind.VENDORS]),
    (Kind.VENDORS, [_file(Kind.VENDORS, True)], []),
])
def test_a_file_waits_for_the_undelivered_master_data_made_before_it(kind: Kind, earlier: list[EarlierFile],
                                                                     waits: list[Kind]) -> None:
    assert [f.kind for f in waits_for(kind, earlier)] == waits


def test_every_kind_a_bill_names_is_delivered_before_it() -> None:
    assert DEPENDS_ON[Kind.BILLS] == set(MASTER_KINDS)
    assert all(Kind.BILLS not in needs for needs in DEPENDS_ON.values())
    # the files of one cycle are made in an order that never waits on a later one
    for position, kind in enumerate(MASTER_KINDS):
        assert DEPENDS_ON[kind] - {kind} <= set(MASTER_KINDS[:position])


@pytest.mark.parametrize("file_format", ["csv", "xml"])
@pytest.mark.parametrize("kind", MASTER_KINDS)
def test_each_kind_has_a_default_template_that_renders_its_rows(kind: Kind, file_format: str) -> None:
    template = default_master_template(kind, file_format)
    assert template.format == file_format
    assert template.record == kind
    rows = {Kind.VENDORS: vendor_records([SUPPLIER], MAPS), Kind.GL_ACCOUNTS: gl_account_records(
        [{"AccountID": "a-1", "Code": "400", "Name": "Ads", "Status": "ACTIVE"}], MAPS),
        Kind.DIMENSIONS: dimension_records([_option("Department", "Sales")], MAPS),
        Kind.PURCHASE_ORDERS: purchase_order_records([_po("AUTHORISED")], MAPS, {}, {})}[kind]
    rendered = render(template, [r.row for r in rows])
    assert rendered.problems == {}
    assert rendered.invoice_ids == tuple(r.key for r in rows)
    if file_format == "xml":
        from xml.etree import ElementTree

        root = ElementTree.fromstring(rendered.content)
        assert len(root) == len(rows)  # one element per record (a PO's lines inside it)


def test_a_template_names_only_sources_of_its_record() -> None:
    with pytest.raises(TemplateError, match=r"columns\.0\.source.*'invoice_id' is not a source of vendors records"):
        parse_template("record: vendors\nformat: csv\ncolumns:\n  - {name: A, source: invoice_id}\n")
    with pytest.raises(TemplateError, match="not a source of bills records"):
        parse_template("format: csv\ncolumns:\n  - {name: A, source: tax_number}\n")
    with pytest.raises(TemplateError, match="record"):
        parse_template("record: payments\nformat: csv\ncolumns:\n  - {name: A, source: invoice_id}\n")


def test_a_dimension_value_xero_lists_no_more_is_sent_deleted_from_what_the_ledger_kept() -> None:
    from connector.domain.masterdata import deleted_dimension_records

    [gone] = deleted_dimension_records({"opt-1": "Region=North", "opt-2": "Cost center=A=B"}, ["opt-2", "opt-3"])
    assert (gone.key, gone.label) == ("opt-1", "Region=North")
    assert (gone.row["dimension"], gone.row["value"], gone.row["status"]) == ("Region", "North", "DELETED")
    again = deleted_dimension_records({"opt-1": "Region=North"}, [])
    assert again[0].fingerprint == gone.fingerprint  # the same row at every look: sent once


def test_a_po_names_a_vendor_stampli_is_sent_even_when_xero_does_not_call_it_a_supplier_yet() -> None:
    # Xero sets IsSupplier with a contact's first bill: a new vendor's PO comes first, and the PO file
    # waits for the vendor file, which must then carry that vendor.
    supplier = {"ContactID": "c-2", "Name": "Beta", "IsSupplier": True}
    not_yet = {"ContactID": "c-3", "Name": "Gamma Ltd", "IsSupplier": False, "TaxNumber": "12-3"}
    orders = [_po("AUTHORISED", PurchaseOrderID="po-1", Contact={"ContactID": "c-1", "Name": "Acme"}),
              _po("AUTHORISED", PurchaseOrderID="po-2", Contact={"ContactID": "c-3", "Name": "Gamma"}),
              _po("DRAFT", PurchaseOrderID="po-3", Contact={"ContactID": "c-4", "Name": "Delta"}),  # not sent
              _po("BILLED", PurchaseOrderID="po-4", Contact={"ContactID": "c-2", "Name": "Beta"})]
    records = {r.key: r for r in vendor_records([supplier, not_yet], MAPS, orders)}
    assert sorted(records) == ["c-1", "c-2", "c-3"]
    assert records["c-3"].row["tax_number"] == "12-3"  # the contact the ledger holds, when it holds it
    assert (records["c-1"].row["name"], records["c-1"].row["vendor_code"]) == ("Acme", "V-001")  # from the PO
    reread = {r.key: r.fingerprint for r in vendor_records([supplier, not_yet], MAPS, orders[::-1])}
    assert reread == {k: r.fingerprint for k, r in records.items()}  # whatever order the POs are read in
