"""Rendering cost of Stampli files: 10,000 bills (about 30,000 lines) to CSV and to XML.

Times `connector.stampli.render` with the default templates (best of --repeat runs) and measures its peak
memory with tracemalloc in a separate run (tracemalloc slows the code it watches). The baseline, measured
in the same run over the same cell values, is a plain `csv.writer` writing the rows we write; the ratio
says what sources, formats, checks and our own quoting cost on top of bare CSV writing. For XML, an
ElementTree build + serialise of the same cells is shown as a second reference. Prints numbers only;
asserts nothing.

    .venv/bin/python bench/render_speed.py [--bills 10000] [--lines 3] [--repeat 3]
"""

from __future__ import annotations

import argparse
import csv
import io
import random
import time
import tracemalloc
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

from connector.stampli import Template, default_template, evaluate, render

HARD = ["Line one\nLine two\r\nLine three", 'He said "ship it", then left', "Widgets, assorted, large",
        "Delivery 🚚📦 on time ✅", "=HYPERLINK(\"http://x\")", "Literal /Date(1700000000000)/ in the text",
        "事務用品 (office supplies)", "Back\\slash and <angle> & ampersand"]
VENDORS = ["O'Brien & Sons Plumbing", 'The "Quoted" Paper Company', "Müller Bürobedarf GmbH", "株式会社東京精密",
           "Smith, Jones & Partners", "Café Déjà Vu ☕", "Acme Industrial Supply", "Bright Spark Electrical"]


def make_bills(count: int, mean_lines: int, seed: int = 7) -> list[dict[str, Any]]:
    """Deterministic bills shaped like the mapping stage's records; 1 to 2*mean-1 lines each."""
    rng = random.Random(seed)
    bills = []
    for n in range(count):
        lines = []
        for i in range(rng.randint(1, 2 * mean_lines - 1)):
            amount = f"{rng.randint(1, 500_000) / 100:.2f}"
            text = rng.choice(HARD) if rng.random() < 0.2 else f"Consulting hours, item {i + 1}"
            lines.append({"line_number": i + 1, "description": text, "quantity": "1.0000", "unit_amount": amount,
                          "line_amount": amount, "tax_amount": "0.00", "account_code": "429", "gl_code": "GL-6900",
                          "tracking": [{"category": "Department", "option": "Sales"}],
                          "dimensions": {"department": "SALES", "location": "NORTH"}})
        bills.append({
            "invoice_id": f"00000000-0000-4000-8000-{n:012d}", "invoice_number": f"PO-{n:05d}",
            "vendor_id": f"contact-{n % 97}", "vendor_name": VENDORS[n % len(VENDORS)], "vendor_code": "",
            "invoice_date": "2026-05-02", "due_date": "2026-06-01", "currency": "NZD", "currency_rate": "1.000000",
            "line_amount_types": "Exclusive", "sub_total": "100.00", "total_tax": "15.00", "total": "115.00",
            "po_numbers": [f"PO-{n:05d}"], "po_ids": [f"po-{n}"], "po": [], "flagged": n % 10 == 0,
            "flags": ["bill total differs from its purchase order"] if n % 10 == 0 else [], "lines": lines})
    return bills


def best_of(repeat: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def peak_mib(work: Callable[[], object]) -> float:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def plain_rows(template: Template, bills: list[dict[str, Any]]) -> list[list[str]]:
    """The exact cell values we write, as ready rows for the csv.writer baseline."""
    rows = []
    for bill in (evaluate(template, b) for b in bills):
        for line in bill.lines or ((),):
            rows.append([line[i] if on_line else bill.header[i] for on_line, i in template.layout])
    return rows


def csv_writer_baseline(header: list[str], rows: list[list[str]]) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def etree_baseline(template: Template, cells: list[Any]) -> bytes:
    root = ET.Element("Bills")
    for bill in cells:
        element = ET.SubElement(root, "Bill")
        for column, value in zip(template.header_columns, bill.header, strict=True):
            ET.SubElement(element, column.element).text = value
        lines = ET.SubElement(element, "Lines")
        for line in bill.lines:
            line_element = ET.SubElement(lines, "Line")
            for column, value in zip(template.line_columns, line, strict=True):
                ET.SubElement(line_element, column.element).text = value
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bills", type=int, default=10_000)
    parser.add_argument("--lines", type=int, default=3, help="mean lines per bill")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    bills = make_bills(args.bills, args.lines)
    print(f"{len(bills):,} bills, {sum(len(b['lines']) for b in bills):,} lines; best of {args.repeat}")

    csv_template, xml_template = default_template("csv"), default_template("xml")
    rows = plain_rows(csv_template, bills)
    header = [c.name for c in csv_template.columns]
    baseline = best_of(args.repeat, lambda: csv_writer_baseline(header, rows))
    evaluated = [evaluate(xml_template, b) for b in bills]
    references = {"csv": baseline, "xml": best_of(args.repeat, lambda: etree_baseline(xml_template, evaluated))}
    print(f"{'baseline csv.writer (cells ready)':<40} {baseline:7.3f} s")
    print(f"{'reference ElementTree (cells ready)':<40} {references['xml']:7.3f} s")
    for template in (csv_template, xml_template):
        rendered = render(template, bills)
        assert not rendered.problems
        total = best_of(args.repeat, lambda t=template: render(t, bills))
        cells = best_of(args.repeat, lambda t=template: [evaluate(t, b) for b in bills])
        peak = peak_mib(lambda t=template: render(t, bills))
        size = len(rendered.content) / 2**20
        print(f"render {template.format} (default template){'':<14} {total:7.3f} s  "
              f"{len(bills) / total:9,.0f} bills/s  {size:6.1f} MiB out  peak {peak:6.1f} MiB  "
              f"x{total / baseline:.1f} csv.writer" + (f", x{total / references['xml']:.1f} ElementTree"
                                                       if template.format == "xml" else ""))
        print(f"  of which sources, formats and checks   {cells:7.3f} s; writing {max(total - cells, 0):.3f} s")


if __name__ == "__main__":
    main()
