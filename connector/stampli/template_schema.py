"""The marshmallow schemas of a Stampli template document: field checks first, then the cross-checks.

A template (one example; the shipped defaults in `templates/` show every option):

    format: csv                 # csv | xml
    row_shape: line             # line: a row per bill line, header fields repeated; bill: a row per bill
    encoding: utf-8
    bom: false
    line_ending: crlf           # crlf | lf
    formula_guard: false        # true: text cells starting = + - @ tab CR get a leading apostrophe
    sidecar: none               # none | sha256: "<name>.sha256" next to the file
    csv: {delimiter: ",", quoting: minimal, header_row: true}
    columns:
      - {name: XeroInvoiceID, source: invoice_id, required: true}
      - {name: InvoiceDate, source: invoice_date, format: {date: "%m/%d/%Y"}}
      - {name: Total, source: total, format: {decimal: 2}}
      - {name: OnHold, source: flagged, format: {true_false: ["Y", "N"]}}
      - {name: PONumbers, source: po_numbers, format: {join: ";"}}
      - {name: GLCode, source: line.gl_code, required: true}
      - {name: CostCenter, source: line.dimensions.cost_center, default: "UNASSIGNED"}

An XML template adds `xml: {root_element, bill_element, lines_element, line_element, namespace}` and
may give a column an `element` name. In a bill-shaped template a `line.` source gives one value per line
and needs `format.join` (values in line order, empty ones kept so columns stay aligned).
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from connector.stampli.sources import BILL_RECORD, CATALOGUES, Kind, resolve, resolve_any, suggest

_NOT_TEXT = "Not text: put the value in quotes (YAML reads yes/no/on/off, numbers and dates as other types)."
_ILLEGAL = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_XML_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9._-]*")
_DATE_DIRECTIVE = re.compile(r"%(.?)")
_DATE_DIRECTIVES = set("YymdjbB%")  # numeric, plus English month names (the C locale is never changed)


def _carriable(value: str) -> None:
    bad = _ILLEGAL.search(value)
    if bad:
        raise ValidationError(f"contains U+{ord(bad[0]):04X}, which a Stampli file cannot carry")


def _text(*checks: Any, **kwargs: Any) -> fields.String:
    return fields.String(validate=[_carriable, *checks], error_messages={"invalid": _NOT_TEXT}, **kwargs)


def _known_source(value: str) -> None:
    if resolve_any(value) is None:
        raise ValidationError(f"unknown source {value!r}{suggest(value)}")


def _xml_name(value: str) -> None:
    if not _XML_NAME.fullmatch(value) or value.lower().startswith("xml"):
        raise ValidationError(f"{value!r} is not a usable XML element name (letters, digits, _ - . ; "
                              "not starting with a digit or 'xml')")


def _date_pattern(value: str) -> None:
    used = _DATE_DIRECTIVE.findall(value)
    unknown = sorted({d for d in used if d not in _DATE_DIRECTIVES})
    if unknown:
        raise ValidationError(f"date directives {', '.join('%' + d for d in unknown)} are not supported "
                              "(use %Y %y %m %d %j %b %B)")
    if not [d for d in used if d != "%"]:
        raise ValidationError("a date pattern needs at least one directive, e.g. %Y-%m-%d")
    date(2024, 1, 2).strftime(value)


def _namespace(value: str) -> None:
    if ":" not in value or any(c.isspace() for c in value):
        raise ValidationError("a namespace is a URI without spaces, e.g. urn:example:bills")


class FormatSchema(Schema):
    date = _text(_date_pattern)
    decimal = fields.Integer(strict=True, validate=validate.Range(0, 10))
    true_false = fields.List(_text(), validate=validate.Length(equal=2))
    join = _text(validate.Length(min=1))

    @validates_schema
    def _one_kind(self, data: dict[str, Any], **kwargs: Any) -> None:
        chosen = [key for key in ("date", "decimal", "true_false") if key in data]
        if len(chosen) > 1:
            raise ValidationError(f"choose one of date, decimal, true_false (got {' and '.join(chosen)})")
        words = data.get("true_false")
        if words and words[0] == words[1]:
            raise ValidationError("the two words must differ", "true_false")


class ColumnSchema(Schema):
    name = _text(validate.Length(min=1), required=True)
    source = _text(_known_source, required=True)
    element = _text(_xml_name)
    format = fields.Nested(FormatSchema, load_default=dict)
    required = fields.Boolean(load_default=False)
    default = _text(load_default="")


class CsvSchema(Schema):
    delimiter = _text(validate.OneOf([",", ";", "\t", "|"]), load_default=",")
    quoting = _text(validate.OneOf(["minimal", "all"]), load_default="minimal")
    header_row = fields.Boolean(load_default=True)


class XmlSchema(Schema):
    root_element = _text(_xml_name, required=True)
    bill_element = _text(_xml_name, required=True)
    lines_element = _text(_xml_name)
    line_element = _text(_xml_name)
    namespace = _text(_namespace)


_KIND_FORMATS = {"date": Kind.DATE, "decimal": Kind.DECIMAL, "true_false": Kind.BOOL}


class CreditNotesSchema(Schema):
    """How the file carries a supplier credit note: the sign of its amounts (Xero's are positive) and the
    words of the document type column (source `document_type`) for a bill and for a credit note."""

    sign = _text(validate.OneOf(["negative", "positive"]), load_default="negative")
    bill_word = _text(validate.Length(min=1), load_default="BILL")
    credit_note_word = _text(validate.Length(min=1), load_default="CREDIT_NOTE")

    @validates_schema
    def _distinct(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data["bill_word"] == data["credit_note_word"]:
            raise ValidationError({"credit_note_word": ["must differ from bill_word, or Stampli cannot tell them "
                                                        "apart"]})


class DocumentsSchema(Schema):
    """Where the suppliers' documents go: `zip` puts the data file and the documents of its bills in one
    archive named after the batch; `folder` sends each document as its own file in a folder named after
    the batch, beside the data file (uploaded first: the data file's rename stays the commit point);
    `none` sends no document."""

    layout = _text(validate.OneOf(["zip", "folder", "none"]), load_default="none")


class TemplateSchema(Schema):
    version = fields.Integer(strict=True, validate=validate.OneOf([1]), load_default=1)
    record = _text(validate.OneOf(list(CATALOGUES)), load_default=BILL_RECORD)  # bills, or a master-data kind
    name = _text(validate.Length(min=1))
    description = _text()
    format = _text(validate.OneOf(["csv", "xml"]), required=True)
    row_shape = _text(validate.OneOf(["line", "bill"]), load_default="line")
    encoding = _text(validate.OneOf(["utf-8", "UTF-8"]), load_default="utf-8")
    bom = fields.Boolean(load_default=False)
    line_ending = _text(validate.OneOf(["crlf", "lf"]), load_default="crlf")
    formula_guard = fields.Boolean(load_default=False)
    sidecar = _text(validate.OneOf(["none", "sha256"]), load_default="none")
    csv = fields.Nested(CsvSchema, load_default=lambda: CsvSchema().load({}))
    xml = fields.Nested(XmlSchema)
    columns = fields.List(fields.Nested(ColumnSchema), required=True, validate=validate.Length(min=1))
    credit_notes = fields.Nested(CreditNotesSchema, load_default=lambda: CreditNotesSchema().load({}))
    documents = fields.Nested(DocumentsSchema, load_default=lambda: DocumentsSchema().load({}))

    @validates_schema
    def _coherent(self, data: dict[str, Any], **kwargs: Any) -> None:
        """Checks that need more than one field: formats against sources, names against the format."""
        errors: dict[str, Any] = {}
        is_xml, shape = data["format"] == "xml", data["row_shape"]
        if is_xml and "xml" not in data:
            errors["xml"] = ["required when format is xml (root_element, bill_element, ...)"]
        if not is_xml and "xml" in data:
            errors["xml"] = ["only for format xml"]
        xml = data.get("xml") or {}
        has_line_columns = any(c["source"].startswith("line.") for c in data["columns"])
        if is_xml and shape == "line" and has_line_columns and "line_element" not in xml:
            errors.setdefault("xml", []).append("line_element is required: line columns are written per line")
        if is_xml and shape == "bill" and {"lines_element", "line_element"} & xml.keys():
            errors.setdefault("xml", []).append("lines_element and line_element are only for row_shape line")
        record = data["record"]
        column_errors = {i: e for i, c in enumerate(data["columns"])
                         if (e := _column_errors(c, is_xml, shape, record))}
        _duplicates(data["columns"], is_xml, shape, column_errors)
        if column_errors:
            errors["columns"] = column_errors
        layout = data["documents"]["layout"]
        if layout != "none" and not any(c["source"] == "documents" for c in data["columns"]):
            # documents beside a data file that does not name them: Stampli could not tell whose they are
            errors["documents"] = {"layout": [f"{layout!r} sends the suppliers' documents: a column must name each "
                                              "bill's files (source 'documents')"]}
        if errors:
            raise ValidationError(errors)


def _column_errors(column: dict[str, Any], is_xml: bool, shape: str, record: str) -> dict[str, list[str]]:
    found = resolve(column["source"], record)
    if found is None:
        hint = suggest(column["source"], record)
        return {"source": [f"{column['source']!r} is not a source of {record} records{hint}"]}
    errors: dict[str, list[str]] = {}
    fmt = column["format"]
    for key, kind in _KIND_FORMATS.items():
        if key in fmt and found.source.kind is not kind:
            errors.setdefault("format", []).append(
                f"{key} applies to {kind.value} sources; {column['source']} is {found.source.kind.value}")
    many = found.source.many or (found.on_line and shape == "bill")
    if many and "join" not in fmt:
        why = "one value per line in a bill-shaped template" if found.on_line else "a list"
        errors.setdefault("format", []).append(f"{column['source']} gives {why}: add join, e.g. join: \";\"")
    if not many and "join" in fmt:
        errors.setdefault("format", []).append(f"join is for lists; {column['source']} gives one value")
    if column["required"] and column["default"]:
        errors["default"] = ["a required column cannot have a default"]
    if "element" in column and not is_xml:
        errors["element"] = ["only for XML templates"]
    if is_xml and "element" not in column:
        try:
            _xml_name(column["name"])
        except ValidationError as exc:
            errors["name"] = [f"{exc.messages[0]}: give the column an element name"]
    return errors


def _duplicates(columns: list[dict[str, Any]], is_xml: bool, shape: str, errors: dict[int, Any]) -> None:
    """Column names are unique (a CSV header row must be unambiguous); so are XML names per parent."""
    names: set[str] = set()
    elements: set[tuple[str, str]] = set()
    for index, column in enumerate(columns):
        parent = "line" if column["source"].startswith("line.") and shape == "line" else "bill"
        element = (parent, column.get("element") or column["name"])
        if column["name"] in names:
            errors.setdefault(index, {}).setdefault("name", []).append(f"{column['name']!r} is used twice")
        elif is_xml and element in elements:
            errors.setdefault(index, {}).setdefault("element" if "element" in column else "name", []).append(
                f"element {element[1]!r} is used twice in the {parent} element")
        names.add(column["name"])
        elements.add(element)
