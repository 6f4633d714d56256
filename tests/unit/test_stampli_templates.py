"""Stampli templates are data: shipped defaults load, and every mistake names the file and the field path."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from connector.errors import ConfigurationError
from connector.stampli import (
    TemplateError,
    default_template,
    load_template,
    parse_template,
    template_from_data,
    template_schema,
)
from connector.stampli.sources import HEADER_SOURCES, LINE_SOURCES, Kind, resolve

TEMPLATES = resources.files("connector.stampli.templates")
MINIMAL = "format: csv\ncolumns:\n  - {name: ID, source: invoice_id}\n"


def problems_of(text: str, origin: str = "tenant.yaml") -> list[str]:
    with pytest.raises(TemplateError) as caught:
        parse_template(text, origin)
    return caught.value.problems


@pytest.mark.parametrize("name", ["default_csv.yaml", "default_xml.yaml", "default_xml.xsd"])
def test_every_shipped_default_says_it_is_ours_until_the_customers_template_replaces_it(name: str) -> None:
    text = TEMPLATES.joinpath(name).read_text(encoding="utf-8")
    assert "Our default until the customer's Stampli template replaces it." in text[:400]


def test_the_defaults_load_with_one_row_per_line_and_the_same_columns_in_both_formats() -> None:
    csv, xml = default_template("csv"), default_template("xml")
    assert (csv.format, csv.row_shape, csv.line_ending, csv.delimiter, csv.bom) == ("csv", "line", "\r\n", ",", False)
    assert (xml.format, xml.row_shape, xml.xml is not None) == ("xml", "line", True)
    assert [c.name for c in csv.columns] == [c.name for c in xml.columns]
    sources = {c.source for c in csv.columns}
    assert {"invoice_id", "po_numbers", "line.gl_code", "flagged", "line.dimensions.department"} <= sources
    assert csv.formula_guard  # opened in spreadsheets: text that would run as a formula is defused
    assert csv.sidecar == "none"


def test_the_example_in_the_schema_docs_is_a_valid_template() -> None:
    doc = template_schema.__doc__ or ""
    example = doc.split("one example; the shipped defaults in `templates/` show every option):")[1].split("\n\n")[1]
    template = parse_template("\n".join(line[4:] for line in example.splitlines()), "docstring")
    assert template.columns[1].date == "%m/%d/%Y"
    assert template.columns[-1].default == "UNASSIGNED"
    assert [c.name for c in template.line_columns] == ["GLCode", "CostCenter"]


def test_every_catalogued_source_resolves_and_near_misses_do_not() -> None:
    for entry in HEADER_SOURCES:
        example = entry.pattern.replace("<n>", "0")
        assert resolve(example) is not None, example
    for entry in LINE_SOURCES:
        example = "line." + entry.pattern.replace("<n>", "1").replace("<name>", "cost_center")
        found = resolve(example)
        assert found is not None, example
        assert found.on_line, example
    po_total, dimension = resolve("po.1.total"), resolve("line.dimensions.cost_center")
    assert po_total is not None
    assert po_total.path == ("po", 1, "total")
    assert po_total.source.kind is Kind.DECIMAL
    assert dimension is not None
    assert dimension.path == ("dimensions", "cost_center")
    for wrong in ["totl", "po.x.number", "po.01.number", "line.dimensions", "line.total", "gl_code", "line."]:
        assert resolve(wrong) is None, wrong


BAD_TEMPLATES = [
    ("unknown source, with a hint", "columns:\n  - {name: T, source: totl}",
     "columns.0.source (column 'T'): unknown source 'totl'; did you mean 'total'?"),
    ("YAML reads yes as a boolean", "columns:\n  - {name: T, source: vendor_code, default: yes}",
     "columns.0.default (column 'T'): Not text: put the value in quotes"),
    ("a typo in a key", "columns:\n  - {name: T, source: total, fromat: {decimal: 2}}",
     "columns.0.fromat (column 'T'): Unknown field."),
    ("decimal on a text source", "columns:\n  - {name: T, source: vendor_name, format: {decimal: 2}}",
     "columns.0.format (column 'T'): decimal applies to decimal sources; vendor_name is text"),
    ("date pattern on a decimal", "columns:\n  - {name: T, source: total, format: {date: '%Y'}}",
     "columns.0.format (column 'T'): date applies to date sources; total is decimal"),
    ("locale-only date directive", "columns:\n  - {name: T, source: due_date, format: {date: '%A %d'}}",
     "columns.0.format.date (column 'T'): date directives %A are not supported"),
    ("a pattern without a directive", "columns:\n  - {name: T, source: due_date, format: {date: 'today'}}",
     "columns.0.format.date (column 'T'): a date pattern needs at least one directive"),
    ("too many places", "columns:\n  - {name: T, source: total, format: {decimal: 11}}",
     "columns.0.format.decimal (column 'T'): Must be greater than or equal to 0 and less than or equal to 10."),
    ("two kinds of format", "columns:\n  - {name: T, source: total, format: {decimal: 2, date: '%Y'}}",
     "columns.0.format (column 'T'): choose one of date, decimal, true_false (got date and decimal)"),
    ("one boolean word", "columns:\n  - {name: T, source: flagged, format: {true_false: ['Y']}}",
     "columns.0.format.true_false (column 'T'): Length must be 2."),
    ("the same boolean word twice", "columns:\n  - {name: T, source: flagged, format: {true_false: ['Y', 'Y']}}",
     "columns.0.format.true_false (column 'T'): the two words must differ"),
    ("a list without join", "columns:\n  - {name: T, source: po_numbers}",
     "columns.0.format (column 'T'): po_numbers gives a list: add join"),
    ("join on one value", "columns:\n  - {name: T, source: total, format: {join: ';'}}",
     "columns.0.format (column 'T'): join is for lists; total gives one value"),
    ("required with a default", "columns:\n  - {name: T, source: total, required: true, default: '0'}",
     "columns.0.default (column 'T'): a required column cannot have a default"),
    ("a name used twice", "columns:\n  - {name: T, source: total}\n  - {name: T, source: sub_total}",
     "columns.1.name (column 'T'): 'T' is used twice"),
    ("an element in a CSV template", "columns:\n  - {name: T, source: total, element: Total}",
     "columns.0.element (column 'T'): only for XML templates"),
    ("a control character", "columns:\n  - {name: \"T\\x01\", source: total}",
     "columns.0.name (column 'T\\x01'): contains U+0001, which a Stampli file cannot carry"),
    ("a delimiter we do not write", "csv: {delimiter: ' '}\ncolumns:\n  - {name: T, source: total}",
     "csv.delimiter: Must be one of: ,, ;, \t, |."),
    ("no columns", "columns: []", "columns: Shorter than minimum length 1."),
    # Documents beside a data file that does not name them: Stampli could not tell whose they are.
    ("documents in a zip without a column naming them", "documents: {layout: zip}\ncolumns:\n"
     "  - {name: T, source: total}", "documents.layout: 'zip' sends the suppliers' documents: a column must name "
     "each bill's files (source 'documents')"),
    ("documents in a folder without a column naming them", "documents: {layout: folder}\ncolumns:\n"
     "  - {name: T, source: total}", "documents.layout: 'folder' sends the suppliers' documents"),
    ("an xml section in a CSV template",
     "xml: {root_element: R, bill_element: B}\ncolumns:\n  - {name: T, source: total}", "xml: only for format xml"),
]


@pytest.mark.parametrize(("text", "expected"), [(t, e) for _, t, e in BAD_TEMPLATES],
                         ids=[name for name, _, _ in BAD_TEMPLATES])
def test_a_bad_csv_template_is_refused_with_the_file_and_the_field_path(text: str, expected: str) -> None:
    problems = problems_of("format: csv\n" + text)
    assert any(p.startswith("tenant.yaml: ") and expected in p for p in problems), problems


BAD_XML_TEMPLATES = [
    ("no xml section", "columns:\n  - {name: T, source: total}",
     "xml: required when format is xml"),
    ("a name that is no element name", "xml: {root_element: R, bill_element: B}\ncolumns:\n  - {name: Bill total, "
     "source: total}", "columns.0.name (column 'Bill total'): 'Bill total' is not a usable XML element name"),
    ("a bad element", "xml: {root_element: R, bill_element: B}\ncolumns:\n  - {name: T, source: total, element: 1T}",
     "columns.0.element (column 'T'): '1T' is not a usable XML element name"),
    ("a reserved root", "xml: {root_element: xmlBills, bill_element: B}\ncolumns:\n  - {name: T, source: total}",
     "xml.root_element: 'xmlBills' is not a usable XML element name"),
    ("line columns without a line element", "xml: {root_element: R, bill_element: B}\ncolumns:\n"
     "  - {name: T, source: line.gl_code}", "xml: line_element is required"),
    ("two elements of one name", "xml: {root_element: R, bill_element: B}\ncolumns:\n  - {name: T, source: total}\n"
     "  - {name: U, source: sub_total, element: T}", "columns.1.element (column 'U'): element 'T' is used twice"),
    ("a namespace that is no URI", "xml: {root_element: R, bill_element: B, namespace: bills}\ncolumns:\n"
     "  - {name: T, source: total}", "xml.namespace: a namespace is a URI"),
]


@pytest.mark.parametrize(("text", "expected"), [(t, e) for _, t, e in BAD_XML_TEMPLATES],
                         ids=[name for name, _, _ in BAD_XML_TEMPLATES])
def test_a_bad_xml_template_is_refused_with_the_field_path(text: str, expected: str) -> None:
    problems = problems_of("format: xml\n" + text)
    assert any(expected in p for p in problems), problems


def test_a_line_source_in_a_bill_shaped_template_needs_join_and_gives_a_list() -> None:
    problems = problems_of("format: csv\nrow_shape: bill\ncolumns:\n  - {name: GL, source: line.gl_code}")
    assert problems == ["tenant.yaml: columns.0.format (column 'GL'): line.gl_code gives one value per line in a "
                        "bill-shaped template: add join, e.g. join: \";\""]
    template = parse_template("format: csv\nrow_shape: bill\ncolumns:\n"
                              "  - {name: GL, source: line.gl_code, format: {join: '|'}}")
    (column,) = template.columns
    assert column.each_line
    assert column.many
    assert not column.on_line
    assert template.line_columns == ()


def test_all_field_problems_are_reported_at_once() -> None:
    problems = problems_of("format: pdf\nbom: perhaps\ncolumns:\n  - {name: A, source: totl}\n  - {source: total}")
    assert [p.split(": ")[1] for p in problems] == [
        "format", "bom", "columns.0.source (column 'A')", "columns.1.name"]


def test_yaml_mistakes_name_the_line_and_a_key_given_twice_is_refused() -> None:
    assert problems_of("format: csv\ncolumns: [\n")[0].startswith("tenant.yaml: line 3, column 1: not valid YAML")
    twice = problems_of("format: csv\nformat: xml\ncolumns:\n  - {name: A, source: total}\n")
    assert twice == ["tenant.yaml: line 2, column 1: not valid YAML: key 'format' appears twice in one mapping"]
    assert problems_of("- just\n- a list\n") == ["tenant.yaml: a template is a mapping (format:, columns:, ...), "
                                                 "got list"]


def test_a_template_file_is_named_by_its_path_and_json_from_the_database_also_loads(tmp_path: Path) -> None:
    path = tmp_path / "acme.yaml"
    path.write_text("format: csv\ncolumns:\n  - {name: T, source: totl}\n", encoding="utf-8")
    with pytest.raises(TemplateError) as caught:
        load_template(path)
    assert caught.value.problems[0].startswith(f"{path}: columns.0.source")
    with pytest.raises(TemplateError, match="cannot be read"):
        load_template(tmp_path / "missing.yaml")
    stored = '{"format": "csv", "name": "acme", "columns": [{"name": "T", "source": "total"}]}'
    assert parse_template(stored, "tenant acme").name == "acme"
    assert template_from_data({"format": "csv", "columns": [{"name": "T", "source": "total"}]}, "x/acme.yaml").name \
        == "acme"


def test_a_template_error_is_a_configuration_error_that_lists_every_problem() -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_template("format: csv\ncolumns:\n  - {name: A, source: a}\n  - {name: B, source: b}")
    assert isinstance(caught.value, TemplateError)
    assert len(caught.value.problems) == 2
    assert str(caught.value) == "; ".join(caught.value.problems)


def test_the_options_are_read_as_written() -> None:
    template = parse_template(
        "format: xml\nrow_shape: line\nbom: true\nline_ending: lf\nformula_guard: true\nsidecar: sha256\n"
        "xml: {root_element: Invoices, bill_element: Invoice, line_element: Item, namespace: 'urn:acme:ap'}\n"
        "columns:\n  - {name: Id, source: invoice_id, required: true}\n"
        "  - {name: Amount, source: line.line_amount, element: LineAmount, format: {decimal: 2}}\n"
        "  - {name: Hold, source: flagged, format: {true_false: [HOLD, GO]}}\n")
    assert (template.bom, template.line_ending) == (True, "\n")
    assert (template.formula_guard, template.sidecar) == (True, "sha256")
    assert template.xml is not None
    assert template.xml.lines is None
    assert template.xml.namespace == "urn:acme:ap"
    assert [c.element for c in template.columns] == ["Id", "LineAmount", "Hold"]
    assert template.layout == ((False, 0), (True, 0), (False, 1))
    assert template.columns[2].true_false == ("HOLD", "GO")
    assert template.columns[0].required


def test_minimal_template_takes_the_documented_defaults() -> None:
    template = parse_template(MINIMAL, "minimal.yaml")
    assert template.name == "minimal"
    assert (template.row_shape, template.delimiter, template.quote_all, template.header_row) == ("line", ",", False,
                                                                                                 True)
    assert (template.line_ending, template.bom, template.formula_guard) == ("\r\n", False, False)
    assert template.sidecar == "none"
