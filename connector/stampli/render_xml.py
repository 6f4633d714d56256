"""XML from evaluated bills, written as text by a small streaming writer: one bill element per bill.

A hand-written writer rather than ElementTree because the bytes must be exact and replayable, and
ElementTree does not escape CR in text: a parser would turn a description's CRLF into LF. Here text
escapes &, <, > and CR (as &#13;), so every character XML 1.0 can carry comes back byte-exact. Element
names are checked when the template loads and forbidden characters when the bill is evaluated, so the
output is well-formed by construction. Empty values are written as empty elements, never left out, so
a schema can rely on the sequence.
"""

from __future__ import annotations

from collections.abc import Iterable

from connector.stampli.render_csv import BOM
from connector.stampli.template import Column, Template
from connector.stampli.values import BillCells

_INDENT = "  "


def escape_text(text: str) -> str:
    """Escape character data so a conforming parser returns exactly `text`."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")


def _escape_attribute(text: str) -> str:
    return escape_text(text).replace('"', "&quot;").replace("\n", "&#10;").replace("\t", "&#9;")


def write_xml(template: Template, bills: Iterable[BillCells]) -> tuple[bytes, int]:
    """The file's bytes and its row count: line elements, or bill elements when bills have no lines."""
    names = template.xml
    if names is None:
        raise ValueError(f"template {template.name!r} is not an XML template")
    end = template.line_ending
    bill_depth = 1
    line_depth = bill_depth + (2 if names.lines else 1)
    header_tags = _tags(template.header_columns, bill_depth + 1, end)
    line_tags = _tags(template.line_columns, line_depth + 1, end)
    namespace = f' xmlns="{_escape_attribute(names.namespace)}"' if names.namespace else ""
    prologue = f'<?xml version="1.0" encoding="UTF-8"?>{end}<{names.root}{namespace}>{end}'
    bill_open, bill_close = f"{_INDENT}<{names.bill}>{end}", f"{_INDENT}</{names.bill}>{end}"
    pad = _INDENT * (bill_depth + 1)
    lines_open = f"{pad}<{names.lines}>{end}" if names.lines else ""
    lines_close = f"{pad}</{names.lines}>{end}" if names.lines else ""
    line_pad = _INDENT * line_depth
    line_open, line_close = f"{line_pad}<{names.line}>{end}", f"{line_pad}</{names.line}>{end}"
    chunks = [BOM, prologue.encode()] if template.bom else [prologue.encode()]
    rows = 0
    for bill in bills:  # encoded bill by bill: one emoji would make a whole-file str 4 bytes per character
        out = [bill_open]
        _cells(out, header_tags, bill.header)
        if bill.lines:
            out.append(lines_open)
            for line in bill.lines:
                out.append(line_open)
                _cells(out, line_tags, line)
                out.append(line_close)
            out.append(lines_close)
            rows += len(bill.lines)
        else:
            rows += 1
        out.append(bill_close)
        chunks.append("".join(out).encode("utf-8"))
    chunks.append(f"</{names.root}>{end}".encode())
    return b"".join(chunks), rows


def _tags(columns: Iterable[Column], depth: int, end: str) -> list[tuple[str, str, str]]:
    """Per column: its opening tag (indented), its closing tag (with the line end) and its empty form."""
    pad = _INDENT * depth
    return [(f"{pad}<{c.element}>", f"</{c.element}>{end}", f"{pad}<{c.element}/>{end}") for c in columns]


def _cells(out: list[str], tags: list[tuple[str, str, str]], values: Iterable[str]) -> None:
    for (opening, closing, empty), value in zip(tags, values, strict=True):
        out.append(f"{opening}{escape_text(value)}{closing}" if value else empty)
