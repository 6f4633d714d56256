"""A supplier credit note in a Stampli file: its document type in the template's words, its amounts in the
sign the template asks for (Xero's are positive), and never in a template that cannot tell it from a bill."""

from __future__ import annotations

from typing import Any

import pytest

from connector.errors import ConfigurationError
from connector.stampli import default_template, render
from connector.stampli.documents import NO_DOCUMENT_COLUMN, negated
from tests.unit.test_stampli_render import csv_rows, record, template

COLUMNS = """\
  - {name: Id, source: invoice_id}
  - {name: Type, source: document_type}
  - {name: Total, source: total, format: {decimal: 2}}
  - {name: AppliedTo, source: applied_to_invoice_numbers, format: {join: ";"}}
  - {name: Applied, source: applied_amounts, format: {decimal: 2, join: ";"}}
  - {name: Unit, source: line.unit_amount, format: {decimal: 2}}
  - {name: Amount, source: line.line_amount, format: {decimal: 2}}
  - {name: Tax, source: line.tax_amount, format: {decimal: 2}}
"""


def credit(**fields: Any) -> dict[str, Any]:
    return record("cn-1", document_type="CREDIT_NOTE", total="115.00", applied_to_invoice_numbers=["SUP-1"],
                  applied_amounts=["50.00"], lines=[{"line_number": 1, "unit_amount": "100.00",
                                                     "line_amount": "100.00", "tax_amount": "15.00"}], **fields)


def test_by_default_a_credit_note_goes_negative_beside_its_document_type() -> None:
    rows = csv_rows(render(template(COLUMNS), [record(), credit()]).content)
    assert rows[1][:2] == ["inv-1", "BILL"]
    assert rows[2] == ["cn-1", "CREDIT_NOTE", "-115.00", "SUP-1", "50.00", "-100.00", "-100.00", "-15.00"]


def test_a_template_may_ask_for_positive_amounts_and_its_own_words() -> None:
    chosen = template(COLUMNS, credit_notes="{sign: positive, bill_word: Invoice, credit_note_word: Credit Memo}")
    rows = csv_rows(render(chosen, [record(), credit()]).content)
    assert rows[1][1] == "Invoice"
    assert rows[2][:3] == ["cn-1", "Credit Memo", "115.00"]


def test_a_template_without_a_document_type_column_carries_no_credit_note_but_the_bills_go() -> None:
    plain = template("  - {name: Id, source: invoice_id}\n  - {name: Total, source: total}\n")
    rendered = render(plain, [record(), credit()])
    assert rendered.invoice_ids == ("inv-1",)
    assert rendered.problems == {"cn-1": NO_DOCUMENT_COLUMN}


@pytest.mark.parametrize("credit_notes", ["{sign: upside-down}", "{bill_word: X, credit_note_word: X}",
                                          "{colour: red}"])
def test_credit_note_settings_are_checked_when_the_template_is_loaded(credit_notes: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        template(COLUMNS, credit_notes=credit_notes)
    assert "credit_notes" in str(refused.value.problems)


@pytest.mark.parametrize(("text", "shown"), [("115.00", "-115.00"), ("-2.50", "2.50"), ("0.00", "0.00"), ("", ""),
                                             ("+3", "-3"), ("n/a", "n/a"), (None, None)])
def test_negating_an_amount_keeps_its_digits(text: str | None, shown: str | None) -> None:
    assert negated(text) == shown


@pytest.mark.parametrize("fmt", ["csv", "xml"])
def test_the_default_templates_carry_credit_notes(fmt: str) -> None:
    chosen = default_template(fmt)  # type: ignore[arg-type]
    assert chosen.carries_document_type
    assert chosen.credit_note_sign == "negative"
    assert chosen.document_words == ("BILL", "CREDIT_NOTE")
