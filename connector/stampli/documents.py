"""A bill record as the template carries its document: bill or supplier credit note, in the template's words,
with a credit note's amounts in the sign the template asks for. Pure.

Xero keeps a credit note's amounts positive. Stampli imports that take credits in the same file as bills
usually want them negative (the default), some positive beside a document type; the template says
which (`credit_notes: {sign, bill_word, credit_note_word}`). A template with no column reading
`document_type` cannot tell a credit from a bill, so it carries no credit note: such a record is a
problem for that record alone (the batch holds it with the reason), never a credit paid as a bill.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from connector.stampli.template import Template

BILL: Final = "BILL"
CREDIT_NOTE: Final = "CREDIT_NOTE"
HEADER_AMOUNTS: Final = ("sub_total", "total_tax", "total")
LINE_AMOUNTS: Final = ("unit_amount", "line_amount", "tax_amount")
NO_DOCUMENT_COLUMN: Final = ("a credit note needs a column saying it is one (source 'document_type'); this "
                             "template has none, so it would reach Stampli looking like a bill")


def as_document(template: Template, record: Mapping[str, Any]) -> tuple[Mapping[str, Any], str | None]:
    """The record with its document type in the template's words (and a credit note's amounts signed),
    or the record and why the template cannot carry it."""
    kind = record.get("document_type") or BILL
    if kind != CREDIT_NOTE:
        return {**record, "document_type": template.document_words[0]}, None
    if not template.carries_document_type:
        return record, NO_DOCUMENT_COLUMN
    shown: dict[str, Any] = {**record, "document_type": template.document_words[1]}
    if template.credit_note_sign == "negative":
        for name in HEADER_AMOUNTS:
            shown[name] = negated(record.get(name))
        lines = record.get("lines")
        if isinstance(lines, list):
            shown["lines"] = [{**line, **{name: negated(line.get(name)) for name in LINE_AMOUNTS if name in line}}
                              if isinstance(line, dict) else line for line in lines]
    return shown, None


def negated(value: Any) -> Any:
    """An amount's text with the other sign ("115.00" -> "-115.00"); zero, empty and non-numbers as they are."""
    if not isinstance(value, str) or not value:
        return value
    try:
        amount = Decimal(value)
    except InvalidOperation:
        return value
    if not amount.is_finite() or amount == 0:
        return value
    return value[1:] if value.startswith("-") else "-" + value.removeprefix("+")
