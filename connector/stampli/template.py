"""A customer's Stampli import template as data: a YAML document, validated in full before any file is made.

Stampli publishes no import template; each customer's onboarding configures one. So the template is
data, and its mistakes (an unknown source, a date pattern on a text field, a bad XML name) are all
reported at load, each naming the file and the field path, never discovered half-way through a delivery.
The schemas live in `template_schema`; this module turns a loaded document into a `Template`.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal, cast

import yaml
from marshmallow import ValidationError

from connector import strict_yaml
from connector.errors import ConfigurationError
from connector.stampli.sources import CATALOGUES, Kind, Segment, resolve
from connector.stampli.template_schema import TemplateSchema

Format = Literal["csv", "xml"]
RowShape = Literal["line", "bill"]
_LINE_ENDINGS = {"crlf": "\r\n", "lf": "\n"}
DIMENSION_SOURCE = "line.dimensions."


class TemplateError(ConfigurationError):
    """A template cannot be used; `problems` lists every mistake as '<file>: <field path>: <message>'."""


@dataclass(frozen=True)
class Column:
    """One column (CSV) or element (XML), in template order, with its source already understood."""

    name: str
    source: str
    element: str                              # XML element name; the column name unless set
    required: bool
    default: str                              # written verbatim when the source gives nothing
    date: str | None                          # strftime pattern for DATE sources
    decimal: int | None                       # places, rounded half-up, for DECIMAL sources
    true_false: tuple[str, str] | None        # words for BOOL sources
    join: str | None                          # separator for sources that give several values
    kind: Kind
    path: tuple[Segment, ...]                 # walked in the bill record, or in one line
    on_line: bool                             # one value per line: a `line.` source, row_shape line
    each_line: bool                           # a `line.` source in a bill-shaped template: lines joined
    many: bool                                # the value is a list: needs `join`


@dataclass(frozen=True)
class XmlNames:
    """Element names of an XML template: root > bill > [lines >] line."""

    root: str
    bill: str
    lines: str | None      # container of the line elements; None puts them straight in the bill
    line: str | None
    namespace: str | None  # default namespace declared on the root


@dataclass(frozen=True)
class Template:
    """A validated template, ready to render with; built only by the loaders below."""

    name: str
    format: Format
    row_shape: RowShape
    columns: tuple[Column, ...]
    bom: bool
    line_ending: str              # the characters: "\r\n" or "\n"
    formula_guard: bool
    sidecar: Literal["none", "sha256"]
    delimiter: str
    quote_all: bool
    header_row: bool
    xml: XmlNames | None
    header_columns: tuple[Column, ...]              # evaluated once per bill, template order
    line_columns: tuple[Column, ...]                # evaluated once per line, template order
    layout: tuple[tuple[bool, int], ...]            # per column: (is a line column, index in its group)
    record: str = "bills"                           # what it renders: bills, or a master-data kind
    credit_note_sign: Literal["negative", "positive"] = "negative"  # amounts of a credit note in the file
    document_words: tuple[str, str] = ("BILL", "CREDIT_NOTE")       # `document_type` of a bill, a credit note
    #: the suppliers' documents: "zip" (one archive with the data file), "folder" (files in a folder named
    #: after the batch, beside the data file) or "none"
    documents_layout: str = "none"

    @property
    def key_field(self) -> str:
        """The field that keys one record of the file (a bill's invoice_id, a vendor's vendor_id...)."""
        return CATALOGUES[self.record][2]

    @property
    def extension(self) -> str:
        return self.format

    @property
    def carries_document_type(self) -> bool:
        """A column says whether a row is a bill or a credit note: without one, no credit note may go."""
        return any(column.source == "document_type" for column in self.columns)

    def dimension_columns(self) -> dict[str, list[str]]:
        """Stampli dimension name → the columns that read it (`line.dimensions.<name>`)."""
        found: dict[str, list[str]] = {}
        for column in self.columns:
            if column.source.startswith(DIMENSION_SOURCE):
                found.setdefault(column.source.removeprefix(DIMENSION_SOURCE), []).append(column.name)
        return found


def load_template(path: str | Path) -> Template:
    """Read and validate a template file; errors name the file as given."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateError([f"{path}: cannot be read: {exc}"]) from None
    return parse_template(text, origin=str(path))


def parse_template(text: str, origin: str = "<template>") -> Template:
    """Validate template text (YAML, or JSON as stored per tenant); `origin` names it in every error."""
    try:
        data = strict_yaml.load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}:" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise TemplateError([f"{origin}:{where} not valid YAML: {problem}"]) from None
    return template_from_data(data, origin)


def template_from_data(data: object, origin: str) -> Template:
    """Validate an already-parsed document; every problem is reported at once."""
    if not isinstance(data, dict):
        raise TemplateError([f"{origin}: a template is a mapping (format:, columns:, ...), got {type(data).__name__}"])
    try:
        loaded = TemplateSchema().load(data)
    except ValidationError as exc:
        raise TemplateError(_problems(exc.messages, data, origin)) from None
    return _build(loaded, str(loaded.get("name") or Path(origin).stem))


@functools.cache
def default_template(fmt: Format) -> Template:
    """Our shipped default for `fmt`, used until the customer's Stampli template replaces it."""
    name = f"default_{fmt}.yaml"
    text = resources.files("connector.stampli.templates").joinpath(name).read_text(encoding="utf-8")
    return parse_template(text, origin=name)


@functools.cache
def default_master_template(kind: str, file_format: str = "csv") -> Template:
    """Our shipped default for a master-data kind (vendors, gl_accounts, dimensions, purchase_orders): the
    CSV one a tenant gets, or (`xml`) the XML one shipped for a customer to choose."""
    name = f"{kind}_{file_format}.yaml"
    text = resources.files("connector.stampli.templates").joinpath(name).read_text(encoding="utf-8")
    return parse_template(text, origin=name)


def _build(data: dict[str, Any], name: str) -> Template:
    shape = cast(RowShape, data["row_shape"])
    record = str(data["record"])
    columns = tuple(_column(raw, shape, record) for raw in data["columns"])
    header = tuple(c for c in columns if not c.on_line)
    lines = tuple(c for c in columns if c.on_line)
    layout = tuple((c.on_line, (lines if c.on_line else header).index(c)) for c in columns)
    xml = data.get("xml")
    csv_options = data["csv"]
    return Template(
        name=name, format=cast(Format, data["format"]), row_shape=shape, columns=columns, bom=data["bom"],
        line_ending=_LINE_ENDINGS[data["line_ending"]], formula_guard=data["formula_guard"],
        sidecar=data["sidecar"], delimiter=csv_options["delimiter"], quote_all=csv_options["quoting"] == "all",
        header_row=csv_options["header_row"],
        xml=XmlNames(xml["root_element"], xml["bill_element"], xml.get("lines_element"), xml.get("line_element"),
                     xml.get("namespace")) if xml else None,
        header_columns=header, line_columns=lines, layout=layout, record=record,
        credit_note_sign=data["credit_notes"]["sign"],
        document_words=(data["credit_notes"]["bill_word"], data["credit_notes"]["credit_note_word"]),
        documents_layout=data["documents"]["layout"],
    )


def _column(raw: dict[str, Any], shape: RowShape, record: str) -> Column:
    found = resolve(raw["source"], record)
    assert found is not None  # the schema refused unknown sources
    fmt = raw["format"]
    each_line = found.on_line and shape == "bill"
    true_false = fmt.get("true_false")
    return Column(
        name=raw["name"], source=raw["source"], element=raw.get("element") or raw["name"],
        required=raw["required"], default=raw["default"], date=fmt.get("date"), decimal=fmt.get("decimal"),
        true_false=(true_false[0], true_false[1]) if true_false else None, join=fmt.get("join"),
        kind=found.source.kind, path=found.path, on_line=found.on_line and shape == "line", each_line=each_line,
        many=found.source.many or each_line,
    )


_COLUMN_PATH = re.compile(r"^columns\.(\d+)")


def _problems(messages: Any, data: dict[str, Any], origin: str) -> list[str]:
    """Flatten marshmallow's nested messages into '<origin>: <dotted path>: <message>' lines."""
    flat: list[tuple[str, str]] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, path if key == "_schema" else f"{path}.{key}" if path else str(key))
        elif isinstance(node, list) and all(isinstance(m, str) for m in node):
            flat.extend((path, m) for m in node)
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{path}.{index}")
        else:
            flat.append((path, str(node)))

    walk(messages, "")
    raw_columns = data.get("columns")
    columns: list[Any] = raw_columns if isinstance(raw_columns, list) else []
    lines = []
    for path, message in flat:
        where = path or "(top level)"
        match = _COLUMN_PATH.match(path)
        if match and int(match[1]) < len(columns) and isinstance(columns[int(match[1])], dict):
            name = columns[int(match[1])].get("name")
            if isinstance(name, str):
                where += f" (column {name!r})"
        lines.append(f"{origin}: {where}: {message}")
    return lines
