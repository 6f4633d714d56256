"""CSV per RFC 4180 from evaluated bills: fields quoted when they hold the delimiter, a quote, CR or LF.

We quote by hand rather than with the csv module: its writer quotes a field only for the characters of
its own line terminator, so with LF line ends a bare CR inside a description went out unquoted and
split the row for every reader. Quoting is the same for both line endings here, and just as fast.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

from connector.stampli.template import Template
from connector.stampli.values import BillCells

BOM = b"\xef\xbb\xbf"


def write_csv(template: Template, bills: Iterable[BillCells]) -> tuple[bytes, int]:
    """The file's bytes and its data-row count (the header row not counted). Bills keep their order."""
    row = _row_writer(template)
    out = [BOM] if template.bom else []
    if template.header_row:
        out.append(row([c.name for c in template.columns]).encode("utf-8"))
    rows = 0
    layout = template.layout
    for bill in bills:  # encoded bill by bill: one emoji would make a whole-file str 4 bytes per character
        header = bill.header
        lines = bill.lines or ((),)
        out.append("".join([row([line[i] if on_line else header[i] for on_line, i in layout])
                            for line in lines]).encode("utf-8"))
        rows += len(lines)
    return b"".join(out), rows


def _row_writer(template: Template) -> Callable[[Sequence[str]], str]:
    delimiter, end = template.delimiter, template.line_ending
    needs_quotes = re.compile(f'[{re.escape(delimiter)}"\r\n]').search

    def quoted(value: str) -> str:
        return '"' + value.replace('"', '""') + '"'

    def field(value: str) -> str:
        return quoted(value) if needs_quotes(value) else value

    def row(values: Sequence[str]) -> str:
        if template.quote_all:
            return delimiter.join([quoted(v) for v in values]) + end
        if len(values) == 1 and not values[0]:
            return '""' + end  # a lone empty field would otherwise be an empty line, which readers skip
        return delimiter.join([field(v) for v in values]) + end

    return row
