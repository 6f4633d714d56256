"""Stampli files are exactly right: golden bytes for the defaults, RFC 4180 CSV and well-formed XML that
give back every text byte-exact, and a bill that cannot be written left out with its reason, never a
broken file. Regenerate the golden files with UPDATE_GOLDEN=1 and review the diff."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import xml.etree.ElementTree as ET
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.stampli import (
    FORMULA_STARTS,
    SIDECAR_SUFFIX,
    Template,
    check,
    checksum_line,
    default_template,
    parse_template,
    render,
)
from sandbox.xero.names import HARD_DESCRIPTIONS, HARD_SUPPLIERS

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
XSD = Path(__file__).resolve().parents[2] / "connector" / "stampli" / "templates" / "default_xml.xsd"
XML_ILLEGAL = "".join(chr(c) for c in range(32) if c not in (9, 10, 13)) + "\ufffe\uffff"


@cache
def _hard_records_text() -> str:
    return (GOLDEN / "stampli_records.json").read_text(encoding="utf-8")


def hard_records() -> list[dict[str, Any]]:
    """The fixed hard bills (every hard supplier and description of the sandbox dataset, and more)."""
    records: list[dict[str, Any]] = json.loads(_hard_records_text())
    return records


def by_id(records: list[dict[str, Any]], fragment: str) -> dict[str, Any]:
    return next(r for r in records if fragment in r["vendor_name"] + r["invoice_number"])


def record(invoice_id: str = "inv-1", **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "invoice_id": invoice_id, "invoice_number": "PO-0001", "vendor_id": "c-1", "vendor_name": "Acme",
        "invoice_date": "2024-01-02", "total": "115.00", "po_numbers": ["PO-0001"], "flagged": False, "flags": [],
        "lines": [{"line_number": 1, "description": "Widgets", "line_amount": "100.00", "gl_code": "GL-400"}],
    }
    base.update(fields)
    return base


def template(columns: str, fmt: str = "csv", **options: str) -> Template:
    head = f"format: {fmt}\n" + "".join(f"{key}: {value}\n" for key, value in options.items())
    if fmt == "xml" and "xml" not in options:
        head += "xml: {root_element: Bills, bill_element: Bill, lines_element: Lines, line_element: Line}\n"
    return parse_template(head + "columns:\n" + columns, "test.yaml")


def csv_rows(content: bytes, delimiter: str = ",") -> list[list[str]]:
    return list(csv.reader(io.StringIO(content.decode("utf-8-sig"), newline=""), delimiter=delimiter))


def first_difference(actual: bytes, expected: bytes) -> str:
    at = next((i for i, (a, b) in enumerate(zip(actual, expected, strict=False)) if a != b),
              min(len(actual), len(expected)))
    return f"first difference at byte {at}: got {actual[at:at + 60]!r}, golden has {expected[at:at + 60]!r}"


# --- golden files -------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["csv", "xml"])
def test_the_default_templates_render_the_hard_bills_exactly_as_the_golden_files(fmt: str) -> None:
    rendered = render(default_template(fmt), hard_records())
    golden = GOLDEN / f"stampli_default.{fmt}"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_bytes(rendered.content)
    assert golden.exists(), f"{golden} is missing: run the tests once with UPDATE_GOLDEN=1 and commit it"
    expected = golden.read_bytes()
    assert rendered.content == expected, (
        f"{golden.name} differs ({first_difference(rendered.content, expected)}); if the change is intended, "
        "run with UPDATE_GOLDEN=1 and review the diff")


def test_the_hard_bills_cover_every_hard_case_of_the_sandbox_dataset() -> None:
    records = hard_records()
    names = {r["vendor_name"] for r in records}
    descriptions = {line["description"] for r in records for line in r["lines"]}
    assert {s.name for s in HARD_SUPPLIERS} <= names
    assert set(HARD_DESCRIPTIONS) <= descriptions
    assert any(len(d) > 1000 for d in descriptions)
    assert any(r["lines"] == [] for r in records)
    assert any(r["invoice_number"] == "" for r in records)
    assert any(len(r["po_numbers"]) > 1 for r in records)
    assert any(r["po_numbers"] == [] for r in records)
    assert any(r["flagged"] for r in records)


def test_bills_that_cannot_be_written_are_left_out_with_the_column_named() -> None:
    records = hard_records()
    surrogate, bad_date, no_vendor, form_feed = (by_id(records, k)["invoice_id"] for k in (
        "\ud800", "PO-0020", "PO-0023", "PO-0017"))
    as_csv, as_xml = render(default_template("csv"), records), render(default_template("xml"), records)
    assert set(as_csv.problems) == {surrogate, bad_date, no_vendor}
    assert set(as_xml.problems) == {surrogate, bad_date, no_vendor, form_feed}  # CSV carries a form feed, XML not
    assert as_csv.problems[surrogate] == ("column 'VendorName' (source vendor_name): character U+D800 at position 23 "
                                          "is a lone surrogate, which UTF-8 cannot encode")
    assert as_xml.problems[form_feed] == ("column 'Description' (source line.description, line 1): character U+000C "
                                          "at position 11 cannot be carried by XML 1.0")
    assert as_csv.problems[bad_date] == ("column 'InvoiceDate' (source invoice_date): '2026-02-30' is not a "
                                         "calendar date")
    assert "is required" in as_csv.problems[no_vendor]
    assert [r["invoice_id"] for r in records if r["invoice_id"] not in as_xml.problems] == list(as_xml.invoice_ids)
    for record_ in records:
        assert check(default_template("xml"), record_) == (
            as_xml.problems[record_["invoice_id"]].split("; ") if record_["invoice_id"] in as_xml.problems else [])


def test_the_golden_csv_gives_back_every_text_byte_exact_with_one_bill_s_rows_together() -> None:
    records = [r for r in hard_records() if not check(default_template("csv"), r)]
    rendered = render(default_template("csv"), records)
    header, *rows = csv_rows(rendered.content)
    assert rendered.rows == len(rows) == sum(max(1, len(r["lines"])) for r in records)
    column = {name: i for i, name in enumerate(header)}
    # byte-exact, except that the default's formula guard puts ' before text a spreadsheet would run
    def guarded(text: str) -> str:
        return "'" + text if text.startswith(FORMULA_STARTS) else text

    expected = [(r["invoice_id"], guarded(r["vendor_name"]), guarded(line.get("description", "")))
                for r in records for line in r["lines"] or [{}]]
    assert [(row[column["XeroInvoiceID"]], row[column["VendorName"]], row[column["Description"]]) for row in rows] \
        == expected
    assert rendered.content.count(b"\r\n") >= len(rows) + 1
    assert b"/Date(1700000000000)/" in rendered.content


def test_the_golden_xml_gives_back_every_text_byte_exact() -> None:
    records = [r for r in hard_records() if not check(default_template("xml"), r)]
    root = ET.fromstring(render(default_template("xml"), records).content)
    bills = root.findall("Bill")
    assert [b.findtext("XeroInvoiceID") for b in bills] == [r["invoice_id"] for r in records]
    for bill, source in zip(bills, records, strict=True):
        assert bill.findtext("VendorName") == source["vendor_name"]
        lines = bill.findall("Lines/Line")
        assert [line.findtext("Description") for line in lines] == [
            line.get("description", "") for line in source["lines"] or [{}]]


# --- the XSD we ship for the default XML ------------------------------------------------------------------

def test_the_golden_xml_is_valid_against_the_shipped_xsd() -> None:
    import xmlschema  # a dev dependency: the XSD check never skips
    schema = xmlschema.XMLSchema(XSD)
    schema.validate(str(GOLDEN / "stampli_default.xml"))


def test_the_xsd_follows_the_default_template_column_for_column() -> None:
    ns = {"xs": "http://www.w3.org/2001/XMLSchema"}
    tree = ET.parse(XSD).getroot()

    def sequence(type_name: str) -> list[str]:
        found = tree.find(f"xs:complexType[@name='{type_name}']/xs:sequence", ns)
        assert found is not None
        return [str(e.get("name")) for e in found.findall("xs:element", ns)]

    xml = default_template("xml")
    assert sequence("Bill") == [c.element for c in xml.header_columns] + ["Lines"]
    assert sequence("Line") == [c.element for c in xml.line_columns]


@pytest.mark.parametrize(("before", "after"), [
    ("<Total>320.85</Total>", "<Total>320.8</Total>"),
    ("<OnHold>N</OnHold>", "<OnHold>maybe</OnHold>"),
    ("<InvoiceDate>2026-05-02</InvoiceDate>", "<InvoiceDate>05/02/2026</InvoiceDate>"),
], ids=["two decimal places", "hold flag words", "ISO dates"])
def test_the_xsd_refuses_what_the_default_template_never_writes(before: str, after: str) -> None:
    import xmlschema  # a dev dependency: the XSD check never skips
    content = (GOLDEN / "stampli_default.xml").read_text(encoding="utf-8")
    assert before in content
    assert not xmlschema.XMLSchema(XSD).is_valid(content.replace(before, after, 1))


# --- round trips: any text comes back byte-exact ---------------------------------------------------------

HARD_TEXT = st.sampled_from(["/Date(1700000000000)/", "\r\n", "\r", "\n", '"', '""', ",", ";", "\t", "|", " ",
                             "😀", "=1+1", "-", "@x", "'", "&amp;", "<a>", "]]>", "\u2028", "\ufeff", "\x00", ""])
ANY_TEXT = st.lists(st.one_of(st.text(), HARD_TEXT), max_size=6).map("".join)
XML_CHARACTERS = st.characters(exclude_characters=XML_ILLEGAL, exclude_categories=("Cs",))  # no lone surrogates
XML_TEXT = st.lists(st.one_of(st.text(XML_CHARACTERS), HARD_TEXT.filter(lambda t: t != "\x00")),
                    max_size=6).map("".join)
CSV_COLUMNS = ("  - {name: Id, source: invoice_id}\n  - {name: Vendor, source: vendor_name}\n"
               "  - {name: PO, source: po_numbers, format: {join: ';'}}\n  - {name: Text, source: line.description}\n"
               "  - {name: Amount, source: line.line_amount, format: {decimal: 2}}\n")
CSV_VARIANTS = [
    template(CSV_COLUMNS),
    template(CSV_COLUMNS, line_ending="lf", bom="true"),
    template(CSV_COLUMNS, csv="{delimiter: ';', quoting: all}"),
    template(CSV_COLUMNS, csv="{delimiter: \"\\t\"}", line_ending="lf"),
    template(CSV_COLUMNS, csv="{delimiter: '|', header_row: false}"),
]


@given(vendor=ANY_TEXT, description=ANY_TEXT, variant=st.sampled_from(range(len(CSV_VARIANTS))))
def test_any_text_round_trips_byte_exact_through_csv(vendor: str, description: str, variant: int) -> None:
    chosen = CSV_VARIANTS[variant]
    bills = [record("a", vendor_name=vendor, lines=[{"description": description, "line_amount": "-15"}]),
             record("b", vendor_name=description, po_numbers=["P,1", 'P"2'])]
    rendered = render(chosen, bills)
    rows = csv_rows(rendered.content, chosen.delimiter)[1 if chosen.header_row else 0:]
    assert rows == [["a", vendor, "PO-0001", description, "-15.00"], ["b", description, 'P,1;P"2', "Widgets", "100.00"]]


@given(vendor=XML_TEXT, description=XML_TEXT, namespace=st.sampled_from(["", "urn:acme:ap"]))
def test_any_text_xml_can_carry_round_trips_byte_exact_through_xml(vendor: str, description: str,
                                                                   namespace: str) -> None:
    names = "{root_element: Bills, bill_element: Bill, line_element: Line" + (
        f", namespace: '{namespace}'" if namespace else "") + "}"
    chosen = template(CSV_COLUMNS, "xml", xml=names)
    rendered = render(chosen, [record("a", vendor_name=vendor, lines=[{"description": description}])])
    assert rendered.problems == {}
    q = f"{{{namespace}}}" if namespace else ""
    bill = ET.fromstring(rendered.content).find(f"{q}Bill")
    assert bill is not None
    assert (bill.findtext(f"{q}Vendor"), bill.findtext(f"{q}Line/{q}Text")) == (vendor, description)


@given(before=XML_TEXT, bad=st.sampled_from(XML_ILLEGAL + "\ud800\udfff"), after=XML_TEXT)
def test_a_character_xml_cannot_carry_leaves_that_bill_out_and_the_file_well_formed(before: str, bad: str,
                                                                                    after: str) -> None:
    chosen = template(CSV_COLUMNS, "xml")
    rendered = render(chosen, [record("bad", lines=[{"description": before + bad + after}]), record("good")])
    assert list(rendered.problems) == ["bad"]
    assert f"U+{ord(bad):04X} at position {len(before) + 1}" in rendered.problems["bad"]
    assert "'Text' (source line.description, line 1)" in rendered.problems["bad"]
    assert [b.findtext("Id") for b in ET.fromstring(rendered.content).iter("Bill")] == ["good"]


@given(text=ANY_TEXT, fmt=st.sampled_from(["csv", "xml"]))
def test_formula_guard_neutralises_dangerous_leading_characters_and_only_in_text(text: str, fmt: str) -> None:
    if fmt == "xml":
        text = re.sub(f"[{re.escape(XML_ILLEGAL)}]", "", text)
    guarded = template(CSV_COLUMNS, fmt, formula_guard="true")
    line = {"description": "-15% off", "line_amount": "-1"}
    rendered = render(guarded, [record("a", vendor_name=text, lines=[line])])
    if fmt == "csv":
        _, (_, vendor, _, description, amount) = csv_rows(rendered.content)
    else:
        bill = ET.fromstring(rendered.content).find("Bill")
        assert bill is not None
        vendor, description, amount = (bill.findtext(p) or "" for p in ("Vendor", "Lines/Line/Text",
                                                                          "Lines/Line/Amount"))
    assert vendor == ("'" + text if text.startswith(FORMULA_STARTS) else text)
    assert (description, amount) == ("'-15% off", "-1.00")


# --- formats, sources and shapes --------------------------------------------------------------------------

def cells(chosen: Template, *bills: dict[str, Any]) -> list[list[str]]:
    rendered = render(chosen, bills)
    assert rendered.problems == {}
    return csv_rows(rendered.content)[1:]


@pytest.mark.parametrize(("source", "fmt", "value", "expected"), [
    ("total", "{decimal: 2}", "2.675", "2.68"),
    ("total", "{decimal: 2}", "1.005", "1.01"),
    ("total", "{decimal: 2}", "-0.004", "0.00"),
    ("total", "{decimal: 0}", "2.5", "3"),
    ("total", "{decimal: 4}", "7", "7.0000"),
    ("total", "{}", "115.5000", "115.5000"),
    ("invoice_date", "{date: '%m/%d/%Y'}", "2024-01-02", "01/02/2024"),
    ("invoice_date", "{date: '%d %b %Y'}", "2024-01-02", "02 Jan 2024"),
    ("invoice_date", "{}", "2024-01-02", "2024-01-02"),
    ("flagged", "{true_false: [Y, N]}", True, "Y"),
    ("flagged", "{true_false: [Y, N]}", False, "N"),
    ("flagged", "{}", True, "true"),
    ("po_numbers", "{join: ' | '}", ["PO-1", "PO-2"], "PO-1 | PO-2"),
    ("po_numbers", "{join: ';'}", [], "none"),
    ("vendor_name", "{}", None, "none"),
    ("vendor_name", "{}", "", "none"),
], ids=lambda v: str(v))
def test_a_column_formats_its_source_as_the_template_says(source: str, fmt: str, value: Any, expected: str) -> None:
    chosen = template(f"  - {{name: Id, source: invoice_id}}\n  - {{name: X, source: {source}, format: {fmt}, "
                      "default: none}\n")
    assert cells(chosen, record(**{source: value})) == [["inv-1", expected]]


@pytest.mark.parametrize(("source", "value", "problem"), [
    ("total", 1.5, "expected an exact decimal as text, got float 1.5"),
    ("total", "1e3", "'1e3' is not a decimal number"),
    ("total", "NaN", "'NaN' is not a decimal number"),
    ("invoice_date", "2024-1-2", "'2024-1-2' is not an ISO date (YYYY-MM-DD)"),
    ("vendor_name", 42, "expected text, got int 42"),
    ("flagged", "yes", "expected bool, got str 'yes'"),
    ("po_numbers", "PO-1", "expected a list, got str"),
    ("invoice_number", "", "is required, and the bill has no value for it"),
])
def test_a_value_the_column_cannot_write_is_a_problem_naming_the_column(source: str, value: Any, problem: str) -> None:
    join = ", format: {join: ';'}" if source == "po_numbers" else ""
    chosen = template(f"  - {{name: X, source: {source}, required: true{join}}}\n")
    assert check(chosen, record(**{source: value})) == [f"column 'X' (source {source}): {problem}"]


def test_paths_reach_into_purchase_orders_tracking_and_dimensions_and_fall_back_to_the_default() -> None:
    chosen = template("  - {name: PO2, source: po.1.number, default: '-'}\n  - {name: PODate, source: po.0.date, "
                      "format: {date: '%d/%m/%Y'}}\n  - {name: Region, source: line.tracking.1.option}\n"
                      "  - {name: CC, source: line.dimensions.cost_center, default: UNASSIGNED}\n")
    bill = record(po=[{"number": "PO-1", "date": "2023-12-01"}], lines=[
        {"tracking": [{"category": "Department", "option": "Sales"}, {"category": "Region", "option": "North"}],
         "dimensions": {"cost_center": "CC-10"}},
        {"tracking": [], "dimensions": {}}])
    assert cells(chosen, bill) == [["-", "01/12/2023", "North", "CC-10"], ["-", "01/12/2023", "", "UNASSIGNED"]]


def test_a_bill_shaped_template_writes_one_row_per_bill_with_line_values_joined_in_line_order() -> None:
    chosen = template("  - {name: Id, source: invoice_id}\n  - {name: GL, source: line.gl_code, format: {join: ';'}}"
                      "\n  - {name: Amounts, source: line.line_amount, format: {decimal: 2, join: '+'}}\n",
                      row_shape="bill")
    bill = record(lines=[{"gl_code": "GL-1", "line_amount": "1"}, {"line_amount": "2.5"}, {"gl_code": "GL-3"}])
    assert cells(chosen, bill, record("inv-2", lines=[])) == [["inv-1", "GL-1;;GL-3", "1.00+2.50+"], ["inv-2", "", ""]]
    xml = template("  - {name: Id, source: invoice_id}\n  - {name: GL, source: line.gl_code, format: {join: ';'}}\n",
                   "xml", row_shape="bill", xml="{root_element: Bills, bill_element: Bill}")
    rendered = render(xml, [bill])
    assert rendered.rows == 1
    assert b"<Line" not in rendered.content
    assert ET.fromstring(rendered.content).findtext("Bill/GL") == "GL-1;;GL-3"


def test_csv_quotes_a_bare_cr_even_with_lf_line_ends_and_writes_a_lone_empty_field_as_two_quotes() -> None:
    chosen = template("  - {name: Text, source: line.description}\n", line_ending="lf")
    content = render(chosen, [record(lines=[{"description": "a\rb"}, {"description": ""}])]).content
    assert content == b'Text\n"a\rb"\n""\n'
    assert csv_rows(content) == [["Text"], ["a\rb"], [""]]


def test_bom_line_ending_and_quoting_are_applied_as_configured() -> None:
    chosen = template("  - {name: Id, source: invoice_id}\n  - {name: Total, source: total}\n", bom="true",
                      line_ending="lf", csv="{quoting: all}")
    assert render(chosen, [record()]).content == b'\xef\xbb\xbf"Id","Total"\n"inv-1","115.00"\n'
    xml = template("  - {name: Id, source: invoice_id}\n", "xml", bom="true", line_ending="crlf")
    content = render(xml, [record()]).content
    assert content.startswith(b'\xef\xbb\xbf<?xml version="1.0" encoding="UTF-8"?>\r\n<Bills>\r\n')
    assert ET.fromstring(content).findtext("Bill/Id") == "inv-1"


def test_no_bill_left_means_no_content_and_caller_bugs_raise() -> None:
    chosen = default_template("csv")
    assert render(chosen, []).content == b""
    nothing = render(chosen, [record(vendor_name="")])
    assert (nothing.content, nothing.rows, nothing.extension, list(nothing.problems)) == (b"", 0, "csv", ["inv-1"])
    with pytest.raises(ValueError, match="appears twice"):
        render(chosen, [record(), record()])
    with pytest.raises(ValueError, match="needs a non-empty invoice_id"):
        render(chosen, [record(invoice_id="")])


def test_the_same_bills_always_render_to_the_same_bytes_in_the_order_given() -> None:
    bills = hard_records()
    for fmt in ("csv", "xml"):
        first = render(default_template(fmt), bills)
        again = render(default_template(fmt), json.loads(json.dumps(bills)))
        assert first == again
        assert render(default_template(fmt), reversed(bills)).invoice_ids == tuple(reversed(first.invoice_ids))


# --- sidecars ---------------------------------------------------------------------------------------------

def test_a_sha256_sidecar_is_what_sha256sum_prints_and_none_means_no_sidecar() -> None:
    content = render(default_template("csv"), [record()]).content
    name = "stampli_acme_20261124T093005Z_000007.csv"
    assert default_template("csv").sidecar == "none"
    assert template("  - {name: Id, source: invoice_id}\n", sidecar="sha256").sidecar == "sha256"
    assert SIDECAR_SUFFIX == ".sha256"
    assert checksum_line(name, content) == f"{hashlib.sha256(content).hexdigest()}  {name}\n"
    for bad in ["", "a\nb.csv", "dir/a.csv", "a\\b.csv"]:
        with pytest.raises(ValueError, match="not a plain file name"):
            checksum_line(bad, content)
