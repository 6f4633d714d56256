"""Finding 11 of the operator's day: the default file as an AP clerk reads it in a spreadsheet. Supplier
text that looks like a formula is defused, each Xero tracking category has its own column whatever its
position on the line, every number of one kind has one format, and a bill a person released is marked
released, not on hold."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from connector.stampli import default_template, parse_template, render
from connector.stampli.sources import Kind

MONEY = {"sub_total", "total_tax", "total", "line.unit_amount", "line.line_amount", "line.tax_amount"}


def bill(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "invoice_id": "inv-1", "invoice_number": "INV-7", "vendor_id": "c-1", "vendor_name": "Acme",
        "invoice_date": "2026-05-02", "currency": "NZD", "currency_rate": "1", "sub_total": "13145",
        "total_tax": "0", "total": "13145.0", "flagged": False, "flags": [], "lines": [
            {"line_number": 1, "description": "Survey", "quantity": "10.0", "unit_amount": "1314.5",
             "line_amount": "13145.00", "tax_amount": "0", "gl_code": "GL-1",
             "tracking": [{"category": "Department", "option": "Sales"}, {"category": "Region", "option": "North"}]},
            {"line_number": 2, "description": "Travel", "quantity": "1", "unit_amount": "0", "line_amount": "0",
             "tax_amount": "0", "gl_code": "GL-1",
             "tracking": [{"category": "Region", "option": "South"}, {"category": "Department", "option": "Ops"}]},
        ],
    }
    base.update(fields)
    return base


def rows(record: dict[str, Any]) -> list[dict[str, str]]:
    content = render(default_template("csv"), [record]).content.decode("utf-8")
    return list(csv.DictReader(io.StringIO(content, newline="")))


def test_the_default_csv_defuses_supplier_text_a_spreadsheet_would_run_as_a_formula() -> None:
    assert default_template("csv").formula_guard
    [first, _] = rows(bill(vendor_name='=HYPERLINK("http://evil.example","Pay here")'))
    assert first["VendorName"] == '\'=HYPERLINK("http://evil.example","Pay here")'


def test_each_tracking_category_keeps_its_own_column_whatever_its_position_on_the_line() -> None:
    first, second = rows(bill())
    assert (first["XeroDepartment"], first["XeroRegion"]) == ("Sales", "North")
    assert (second["XeroDepartment"], second["XeroRegion"]) == ("Ops", "South")
    assert "XeroTracking1" not in first


def test_a_tracking_column_can_name_a_category_with_dots_and_spaces() -> None:
    template = parse_template("format: csv\ncolumns:\n  - {name: ID, source: invoice_id}\n"
                              "  - {name: Cost, source: line.tracking_option.Cost Ctr. A}\n", "acme.yaml")
    record = bill(lines=[{"tracking": [{"category": "Cost Ctr. A", "option": "X-1"}]}])
    assert render(template, [record]).content.decode().splitlines()[1] == "inv-1,X-1"


@pytest.mark.parametrize("fmt", ["csv", "xml"])
def test_every_number_of_one_kind_has_one_format_in_the_default_templates(fmt: str) -> None:
    places = {column.source: column.decimal for column in default_template(fmt).columns
              if column.kind is Kind.DECIMAL}
    assert {places[s] for s in MONEY} == {2}
    assert places["line.quantity"] == 4
    assert places["currency_rate"] == 6


def test_amounts_quantities_and_rates_read_the_same_on_every_line() -> None:
    first, second = rows(bill())
    assert (first["Quantity"], first["UnitAmount"], first["LineAmount"]) == ("10.0000", "1314.50", "13145.00")
    assert (second["Quantity"], second["UnitAmount"], second["LineAmount"]) == ("1.0000", "0.00", "0.00")
    assert (first["SubTotal"], first["Total"], first["CurrencyRate"]) == ("13145.00", "13145.00", "1.000000")


def test_a_released_bill_is_marked_released_with_who_and_why_not_on_hold() -> None:
    [first, _] = rows(bill(released=True, release_note="released by ap.lead: PO confirmed by phone "
                                                      "(was held: no purchase order)"))
    assert first["OnHold"] == "N"
    assert first["Released"] == "Y"
    assert first["ReleaseNote"].startswith("released by ap.lead: PO confirmed by phone")
    [plain, _] = rows(bill())
    assert (plain["OnHold"], plain["Released"], plain["ReleaseNote"]) == ("N", "N", "")


def test_a_template_with_no_column_for_the_release_carries_a_released_bill_flagged_with_the_note() -> None:
    from connector.services.batch import as_the_template_carries

    released = bill(released=True, release_note="released by ap.lead: checked")
    assert as_the_template_carries(released, default_template("csv")) is released
    older = parse_template("format: csv\ncolumns:\n  - {name: ID, source: invoice_id}\n"
                           "  - {name: Flag, source: flagged}\n  - {name: Why, source: flags, format: {join: ';'}}\n",
                           "acme.yaml")
    carried = as_the_template_carries(released, older)
    assert carried["flagged"] is True
    assert carried["flags"] == ["released by ap.lead: checked"]
