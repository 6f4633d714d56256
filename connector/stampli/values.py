"""From one bill record to the text of every cell: walk each column's source, check the value, format it.

Both renderers share this step, so a bill's problems are the same whatever the format, and `check` lets
a caller vet a bill before it is batched. Text is kept byte-exact; dates and decimals are re-formatted
only when the column asks (decimals with Decimal, half-up, never float). A character the file cannot
carry (a lone surrogate; for XML also the control characters XML 1.0 forbids) is a problem for that bill,
naming the column, never a broken file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import Any

from connector.stampli.documents import as_document
from connector.stampli.sources import Kind, Lookup, Segment
from connector.stampli.template import Column, Template

#: Leading characters a spreadsheet may run as a formula (OWASP's CSV-injection list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

_XML_ILLEGAL = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_NOT_UTF8 = re.compile("[\ud800-\udfff]")
_DECIMAL = re.compile(r"-?\d+(?:\.\d+)?")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DIGITS = re.compile(r"\d+")
_WIDE = Context(prec=60)
_QUANTUM = [Decimal(1).scaleb(-places) for places in range(11)]


@dataclass(frozen=True)
class BillCells:
    """One bill's cell texts: header cells per bill, line cells per line, or the reasons it cannot go."""

    invoice_id: str
    header: tuple[str, ...]                 # `template.header_columns` order
    lines: tuple[tuple[str, ...], ...]      # `template.line_columns` order; empty without line columns
    problems: tuple[str, ...]


class _Unusable(Exception):
    """A value this column cannot write; the message completes 'column X (source y): ...'."""


def check(template: Template, record: Mapping[str, Any]) -> list[str]:
    """Why this bill cannot be written with this template; empty when it can."""
    return list(evaluate(template, record).problems)


def evaluate(template: Template, record: Mapping[str, Any]) -> BillCells:
    """Every cell of one bill (or master-data record); a record without its key (a bill's invoice_id) is the
    caller's bug and raises ValueError."""
    invoice_id = record.get(template.key_field)
    if not isinstance(invoice_id, str) or not invoice_id:
        raise ValueError(f"a {template.record} record needs a non-empty {template.key_field}, got {invoice_id!r}")
    if template.record == "bills":
        record, refused = as_document(template, record)
        if refused is not None:
            return BillCells(invoice_id, (), (), (refused,))
    problems: list[str] = []
    lines = record.get("lines")
    if lines is None:
        lines = []
    elif not isinstance(lines, list) or not all(isinstance(line, dict) for line in lines):
        problems.append("lines: expected a list of line objects")
        lines = []
    header = tuple(_safe(template, c, _bill_value(c, record, lines), 0, problems) for c in template.header_columns)
    cells: tuple[tuple[str, ...], ...] = ()
    if template.line_columns:
        cells = tuple(tuple(_safe(template, c, _walk(line, c.path), number, problems) for c in template.line_columns)
                      for number, line in enumerate(lines or [{}], start=1))
    forbidden = _XML_ILLEGAL if template.format == "xml" else _NOT_UTF8
    if forbidden.search("".join(header)) or any(forbidden.search("".join(line)) for line in cells):
        problems += _characters(template, header, cells, forbidden)
    return BillCells(invoice_id, header, cells, tuple(problems))


def _bill_value(column: Column, record: Mapping[str, Any], lines: list[dict[str, Any]]) -> Any:
    if column.each_line:
        return [_walk(line, column.path) for line in lines]
    return _walk(record, column.path)


def _walk(node: Any, path: tuple[Segment, ...]) -> Any:
    for segment in path:
        if isinstance(segment, Lookup):
            found = [item for item in node if isinstance(item, dict) and item.get(segment.field) == segment.value] \
                if isinstance(node, list) else []
            node = found[0] if found else None
        elif isinstance(segment, int):
            node = node[segment] if isinstance(node, list) and segment < len(node) else None
        else:
            node = node.get(segment) if isinstance(node, dict) else None
        if node is None:
            return None
    return node


def _safe(template: Template, column: Column, raw: Any, line: int, problems: list[str]) -> str:
    try:
        text = _cell(column, raw)
    except _Unusable as exc:
        problems.append(f"{_where(column, line)}: {exc}")
        return ""
    if template.formula_guard and column.kind is Kind.TEXT and text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


def _cell(column: Column, raw: Any) -> str:
    if column.many:
        if raw is not None and not isinstance(raw, list):
            raise _Unusable(f"expected a list, got {type(raw).__name__}")
        texts = [_scalar(column, item) for item in raw or ()]
        text = column.join.join(texts) if column.join is not None and any(texts) else ""
    else:
        text = _scalar(column, raw)
    if text:
        return text
    if column.required:
        raise _Unusable("is required, and the bill has no value for it")
    return column.default


def _scalar(column: Column, value: Any) -> str:
    if value is None or value == "":
        return ""
    kind = column.kind
    if kind is Kind.TEXT and isinstance(value, str):
        return value
    if kind is Kind.DECIMAL:
        return _decimal(column, value)
    if kind is Kind.DATE:
        return _date(column, value)
    if kind is Kind.BOOL and isinstance(value, bool):
        words = column.true_false or ("true", "false")
        return words[0] if value else words[1]
    if kind is Kind.INT and ((isinstance(value, int) and not isinstance(value, bool))
                             or (isinstance(value, str) and _DIGITS.fullmatch(value))):
        return str(value)
    raise _Unusable(f"expected {kind.value}, got {type(value).__name__} {_short(value)}")


def _decimal(column: Column, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _Unusable(f"expected an exact decimal as text, got {type(value).__name__} {_short(value)}")
    text = str(value)
    if not _DECIMAL.fullmatch(text):
        raise _Unusable(f"{_short(text)} is not a decimal number")
    if column.decimal is None:
        return text
    try:
        rounded = Decimal(text).quantize(_QUANTUM[column.decimal], rounding=ROUND_HALF_UP, context=_WIDE)
    except InvalidOperation:
        raise _Unusable(f"{_short(text)} has too many digits to round") from None
    return f"{rounded.copy_abs() if rounded.is_zero() else rounded:f}"


def _date(column: Column, value: Any) -> str:
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        raise _Unusable(f"{_short(value)} is not an ISO date (YYYY-MM-DD)")
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise _Unusable(f"{_short(value)} is not a calendar date") from None
    return day.strftime(column.date) if column.date else value


def _characters(template: Template, header: tuple[str, ...], lines: tuple[tuple[str, ...], ...],
                forbidden: re.Pattern[str]) -> list[str]:
    found = [(c, 0, t) for c, t in zip(template.header_columns, header, strict=True)]
    for number, line in enumerate(lines, start=1):
        found += [(c, number, t) for c, t in zip(template.line_columns, line, strict=True)]
    problems = []
    for column, number, text in found:
        bad = forbidden.search(text)
        if bad:
            code = ord(bad[0])
            why = "is a lone surrogate, which UTF-8 cannot encode" if 0xD800 <= code <= 0xDFFF else (
                "cannot be carried by XML 1.0")
            problems.append(f"{_where(column, number)}: character U+{code:04X} at position {bad.start() + 1} {why}")
    return problems


def _where(column: Column, line: int) -> str:
    return f"column {column.name!r} (source {column.source}{f', line {line}' if line else ''})"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
