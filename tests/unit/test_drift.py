"""What a reconcile calls drift: a delivered bill or credit note Xero no longer holds as it was sent.

Not every edit in Xero moves UpdatedDateUTC, so beside the version the figures Stampli acts on are
compared: the total, the supplier and a credit note's allocations. A payment (PAID) is no drift: Xero
makes a credit note applied in full PAID, and a bill is paid in the normal course."""

from __future__ import annotations

from typing import Any

import pytest

from connector.domain.changes import document_label, drift, only_credit_applied

STAMP = "/Date(1700000000000+0000)/"
LATER = "/Date(1700000060000+0000)/"
SENT: dict[str, Any] = {
    "CreditNoteID": "cn-1", "CreditNoteNumber": "CN-1", "Status": "AUTHORISED", "Total": 100, "UpdatedDateUTC": STAMP,
    "Contact": {"ContactID": "c-1", "Name": "Acme"},
    "Allocations": [{"Amount": 40, "Invoice": {"InvoiceID": "i-1", "InvoiceNumber": "INV-1"}},
                    {"Amount": 10.5, "Invoice": {"InvoiceID": "i-2", "InvoiceNumber": "INV-2"}}],
}


def now(**changes: Any) -> dict[str, Any]:
    return {**SENT, **changes}


@pytest.mark.parametrize(("current", "expected"), [
    (now(), None),
    (now(Total="100.0000", Allocations=list(reversed(SENT["Allocations"]))), None),  # same figures, other order
    (now(Status="PAID"), None),
    (None, "is no longer in Xero"),
    (now(Status="VOIDED"), "was voided in Xero after delivery"),
    (now(Status="DELETED", UpdatedDateUTC=LATER), "was deleted in Xero after delivery"),
    (now(UpdatedDateUTC=LATER), "was edited in Xero after delivery"),
    (now(UpdatedDateUTC=LATER, Total=90), "was edited in Xero after delivery: total 100.00 → 90.00"),
    (now(Total=90), "was changed in Xero after delivery without a new UpdatedDateUTC: total 100.00 → 90.00"),
    (now(Contact={"ContactID": "c-2", "Name": "Other Ltd"}),
     "was changed in Xero after delivery without a new UpdatedDateUTC: supplier Acme → Other Ltd"),
    (now(Allocations=SENT["Allocations"][:1]),
     "was changed in Xero after delivery without a new UpdatedDateUTC: "
     "allocations INV-1 40.00, INV-2 10.50 → INV-1 40.00"),
    (now(Allocations=[]), "was changed in Xero after delivery without a new UpdatedDateUTC: "
                          "allocations INV-1 40.00, INV-2 10.50 → none"),
])
def test_drift_of_a_delivered_credit_note(current: dict[str, Any] | None, expected: str | None) -> None:
    assert drift(SENT, 1700000000000, current) == expected


def test_a_bill_has_no_allocations_to_compare_and_an_older_mapped_version_is_an_edit() -> None:
    bill = {"InvoiceID": "i-1", "Status": "AUTHORISED", "Total": 5, "UpdatedDateUTC": STAMP,
            "Contact": {"ContactID": "c-1"}}
    assert drift(bill, 1700000000000, dict(bill)) is None
    assert drift(bill, 1699999999999, dict(bill)) == "was edited in Xero after delivery"
    assert drift(bill, 1700000000000, {**bill, "Contact": {"ContactID": "c-9"}}) == (
        "was changed in Xero after delivery without a new UpdatedDateUTC: supplier c-1 → c-9")


def test_a_report_names_the_document_by_kind_and_number() -> None:
    assert document_label("CREDIT_NOTE", "CN-1") == "credit note CN-1"
    assert document_label("BILL", "INV-7") == "bill INV-7"
    assert document_label("CREDIT_NOTE", "") == "credit note (no number)"


BILL: dict[str, Any] = {
    "InvoiceID": "i-1", "InvoiceNumber": "INV-1", "Status": "AUTHORISED", "Total": 100, "AmountDue": 100,
    "AmountPaid": 0, "AmountCredited": 0, "UpdatedDateUTC": STAMP, "Contact": {"ContactID": "c-1", "Name": "Acme"},
}
CREDITED = {**BILL, "AmountCredited": 25, "AmountDue": 75, "UpdatedDateUTC": LATER,
            "CreditNotes": [{"CreditNoteID": "cn-1", "AppliedAmount": 25}]}


@pytest.mark.parametrize(("after", "only_credit"), [
    pytest.param(CREDITED, True, id="a-credit-applied"),
    pytest.param({**CREDITED, "AmountPaid": 10, "AmountDue": 65}, False, id="and-a-payment"),
    pytest.param({**CREDITED, "Status": "PAID", "AmountDue": 0}, False, id="and-paid"),
    # Credited in full, Xero makes the bill PAID at once (and dates it): settled by the credit alone.
    pytest.param({**BILL, "AmountCredited": 100, "AmountDue": 0, "Status": "PAID", "FullyPaidOnDate": STAMP,
                  "UpdatedDateUTC": LATER, "CreditNotes": [{"CreditNoteID": "cn-1", "AppliedAmount": 100}]}, True,
                 id="credited-in-full-and-so-paid"),
    pytest.param({**BILL, "AmountCredited": 60, "AmountPaid": 40, "AmountDue": 0, "Status": "PAID",
                  "FullyPaidOnDate": STAMP, "UpdatedDateUTC": LATER}, False, id="credited-and-paid-in-full"),
    pytest.param({**BILL, "AmountCredited": 100, "AmountDue": 0, "Status": "VOIDED", "UpdatedDateUTC": LATER},
                 False, id="credited-and-voided"),
    pytest.param({**CREDITED, "Total": 90}, False, id="and-the-total"),
    pytest.param({**BILL, "UpdatedDateUTC": LATER}, False, id="stamped-with-no-credit"),
    pytest.param({**CREDITED, "LineItems": [{"Description": "x"}]}, False, id="and-the-lines"),
])
def test_a_credit_applied_to_a_bill_is_told_from_a_change_to_it(after: dict[str, Any], only_credit: bool) -> None:
    """Xero moves AmountCredited, AmountDue and CreditNotes and stamps the bill when a credit is applied:
    nothing Stampli was sent. Anything else beside it (a payment above all) is a change a clerk must see."""
    assert only_credit_applied(BILL, after) is only_credit
    assert (drift(BILL, 1700000000000, after) is None) is only_credit
