"""Batch files: RFC 4180 CSV kept byte-exact, and names that never collide and sort in delivery order."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

from connector.domain.naming import batch_file_name
from connector.domain.render_csv import render_csv


def record(description: str, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "invoice_id": "inv-1", "invoice_number": "PO-0001", "vendor_id": "c-1", "vendor_name": 'Müller "& Söhne", Ltd',
        "invoice_date": "2024-01-02", "due_date": "2024-02-01", "currency": "EUR", "currency_rate": "1.1",
        "sub_total": "10.00", "total_tax": "0.00", "total": "10.00", "po_numbers": ["PO-0001", "PO-0002"],
        "lines": [{"line_number": 1, "description": description, "quantity": "1", "unit_amount": "10.00",
                   "line_amount": "10.00", "tax_amount": "0.00", "account_code": "400", "gl_code": "GL-400"}],
    }
    base.update(overrides)
    return base


def test_hard_text_survives_a_round_trip_through_a_csv_reader() -> None:
    hard = 'line one\nline two,\t"quoted" 😀 =SUM(A1) /Date(1700000000000)/'
    content = render_csv([record(hard)])
    rows = list(csv.reader(io.StringIO(content.decode("utf-8"), newline="")))
    assert rows[1][rows[0].index("Description")] == hard
    assert rows[1][rows[0].index("VendorName")] == 'Müller "& Söhne", Ltd'
    assert rows[1][rows[0].index("PONumbers")] == "PO-0001;PO-0002"


def test_one_row_per_line_with_header_fields_repeated_and_crlf_line_ends() -> None:
    two_lines = record("a")
    two_lines["lines"] = two_lines["lines"] * 2
    content = render_csv([two_lines, record("b", invoice_id="inv-2")])
    assert content.count(b"\r\n") == 4
    rows = list(csv.reader(io.StringIO(content.decode(), newline="")))
    assert [r[0] for r in rows[1:]] == ["inv-1", "inv-1", "inv-2"]


def test_names_carry_tenant_utc_second_and_sequence() -> None:
    at = datetime(2026, 11, 24, 9, 30, 5, tzinfo=UTC)
    assert batch_file_name("acme", at, 7) == "stampli_acme_20261124T093005Z_000007.csv"


def test_two_batches_in_one_second_do_not_collide_and_sort_in_order() -> None:
    at = datetime(2026, 11, 24, 9, 30, 5, tzinfo=UTC)
    names = [batch_file_name("acme", at, 9), batch_file_name("acme", at, 10),
             batch_file_name("acme", at.replace(second=6), 11)]
    assert len(set(names)) == 3
    assert sorted(names) == names


def test_unsafe_tenant_names_are_made_path_safe() -> None:
    name = batch_file_name("../Müller & Co", datetime(2026, 1, 1, tzinfo=UTC), 1)
    assert "/" not in name
    assert " " not in name
