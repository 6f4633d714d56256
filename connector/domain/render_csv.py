"""The default Stampli CSV: one row per bill line, the bill's header fields repeated (RFC 4180)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

HEADER_COLUMNS = (
    ("XeroInvoiceID", "invoice_id"),
    ("InvoiceNumber", "invoice_number"),
    ("VendorID", "vendor_id"),
    ("VendorName", "vendor_name"),
    ("InvoiceDate", "invoice_date"),
    ("DueDate", "due_date"),
    ("Currency", "currency"),
    ("CurrencyRate", "currency_rate"),
    ("SubTotal", "sub_total"),
    ("TotalTax", "total_tax"),
    ("Total", "total"),
)
LINE_COLUMNS = (
    ("LineNumber", "line_number"),
    ("Description", "description"),
    ("Quantity", "quantity"),
    ("UnitAmount", "unit_amount"),
    ("LineAmount", "line_amount"),
    ("TaxAmount", "tax_amount"),
    ("XeroAccountCode", "account_code"),
    ("GLCode", "gl_code"),
)


def render_csv(records: Sequence[dict[str, Any]]) -> bytes:
    """UTF-8, CRLF line ends, minimal quoting; text kept byte-exact. Rows of one bill stay together."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([name for name, _ in HEADER_COLUMNS] + ["PONumbers"] + [name for name, _ in LINE_COLUMNS])
    for record in records:
        header = [str(record[key]) for _, key in HEADER_COLUMNS] + [";".join(record["po_numbers"])]
        for line in record["lines"] or [_EMPTY_LINE]:
            writer.writerow(header + [str(line[key]) for _, key in LINE_COLUMNS])
    return buffer.getvalue().encode("utf-8")


_EMPTY_LINE = {key: "" for _, key in LINE_COLUMNS}
