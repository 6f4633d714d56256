"""One entry point from bill records to a Stampli file: evaluate every bill, leave out those with problems.

A bill that cannot be written (a required value missing, a character the file cannot carry) never breaks
the file for the others: it is left out of `content` and named in `problems`, for the caller to hold or
exclude with that reason. When no bill is left, `content` is empty and the caller makes no file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from connector.stampli.render_csv import write_csv
from connector.stampli.render_xml import write_xml
from connector.stampli.template import Template
from connector.stampli.values import BillCells, evaluate


@dataclass(frozen=True)
class Rendered:
    """A rendered file, to be stored once with its sha256 and sent as is on every retry and replay."""

    content: bytes                    # b"" when no bill could be written: make no file
    extension: str                    # "csv" or "xml", without the dot
    rows: int                         # data rows: CSV rows after the header, or XML line elements
    problems: dict[str, str] = field(default_factory=dict)  # invoice_id -> why the bill was left out
    invoice_ids: tuple[str, ...] = ()  # the bills in `content`, in file order


def render(template: Template, records: Iterable[Mapping[str, Any]]) -> Rendered:
    """Render bills in the order given (rows of one bill together). Raises ValueError on a repeated
    invoice_id or a record without one: both are the caller's bug, not a bill's problem."""
    clean: list[BillCells] = []
    problems: dict[str, str] = {}
    seen: set[str] = set()
    for record in records:
        bill = evaluate(template, record)
        if bill.invoice_id in seen:
            raise ValueError(f"bill {bill.invoice_id} appears twice in one file")
        seen.add(bill.invoice_id)
        if bill.problems:
            problems[bill.invoice_id] = "; ".join(bill.problems)
        else:
            clean.append(bill)
    if not clean:
        return Rendered(b"", template.extension, 0, problems)
    writer = write_xml if template.format == "xml" else write_csv
    content, rows = writer(template, clean)
    return Rendered(content, template.extension, rows, problems, tuple(b.invoice_id for b in clean))
