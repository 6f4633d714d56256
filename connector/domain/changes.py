"""What changed in Xero after a bill or credit note was delivered: the Stampli record we sent beside what
Xero holds now, said the way an AP clerk would check it (voided, paid, total, lines, dates, number), and
the drift a reconcile looks for even when Xero's UpdatedDateUTC did not move."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from connector.xero.dates import ms_or_zero

GONE = ("VOIDED", "DELETED")


def _amount(value: Any) -> Decimal | None:
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return amount.quantize(Decimal("0.01")) if amount.is_finite() else None


def what_changed(delivered: Mapping[str, Any] | None, current: Mapping[str, Any]) -> list[str]:
    """Each difference as a short phrase; empty when none of the fields an AP clerk checks moved."""
    changes = []
    status = str(current.get("Status") or "")
    if status in ("VOIDED", "DELETED", "PAID"):
        changes.append(status.lower())
    if not delivered:
        return changes
    sent, now = _amount(delivered.get("total")), _amount(current.get("Total"))
    if sent is not None and now is not None and sent != now:
        changes.append(f"total {sent} → {now}")
    sent_lines, now_lines = len(delivered.get("lines") or []), len(current.get("LineItems") or [])
    if now_lines and sent_lines != now_lines:
        changes.append(f"lines {sent_lines} → {now_lines}")
    number = current.get("InvoiceNumber", current.get("CreditNoteNumber"))
    if number is not None and delivered.get("invoice_number") not in (None, number):
        changes.append(f"number {delivered.get('invoice_number')!r} → {number!r}")
    return changes


#: What Xero moves on a bill when a supplier credit is applied to it (and stamps it anew for): none of it
#: is in what Stampli was sent, and the credit reaches Stampli as its own credit note.
CREDIT_APPLIED_FIELDS = frozenset({"AmountCredited", "AmountDue", "CreditNotes", "UpdatedDateUTC",
                                   "UpdatedDateUTCString"})


#: What Xero moves besides when the credits cover the whole bill: it is PAID at once, dated that day.
CREDITED_IN_FULL_FIELDS = frozenset({"Status", "FullyPaidOnDate", "FullyPaidOnDateString"})


def only_credit_applied(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    """Whether a bill's newer Xero record differs from `before` only by a credit applied to it: its
    AmountCredited moved and nothing else did but the fields that move with it (with the PAID status
    and its date when the credits leave nothing due). A payment (AmountPaid, Payments, a PAID status
    beside one) is not: Xero paying a bill Stampli is to pay is what a clerk must see."""
    if _amount(before.get("AmountCredited")) == _amount(after.get("AmountCredited")):
        return False
    moving = CREDIT_APPLIED_FIELDS
    credited = (_amount(after.get("AmountCredited")) or 0) - (_amount(before.get("AmountCredited")) or 0)
    if before.get("Status") == "AUTHORISED" and after.get("Status") == "PAID" and _amount(
            after.get("AmountDue")) == 0 and credited == _amount(before.get("AmountDue")):
        moving = moving | CREDITED_IN_FULL_FIELDS  # AmountPaid and Payments are still compared below
    return all(before.get(key) == after.get(key) for key in (before.keys() | after.keys()) - moving)


def document_label(document_type: str, number: str | None) -> str:
    """How a report names a bill or a credit note: `credit note CN-1001`, `bill INV-7`."""
    kind = "credit note" if document_type == "CREDIT_NOTE" else "bill"
    return f"{kind} {number}" if number else f"{kind} (no number)"


def drift(sent: Mapping[str, Any] | None, sent_version: int, current: Mapping[str, Any] | None) -> str | None:
    """Why a delivered bill or credit note no longer matches Xero, in one phrase; None when it still does.

    `sent` is the Xero record as read when it was mapped for delivery, `sent_version` that version
    (UpdatedDateUTC in ms), `current` what Xero answers now (None: Xero returned nothing for it). Not
    every edit moves UpdatedDateUTC, so the figures Stampli acts on are compared too: the total, the
    supplier and a credit note's allocations (which bills, how much)."""
    if current is None:
        return "is no longer in Xero"
    status = str(current.get("Status") or "")
    if status in GONE:
        return f"was {status.lower()} in Xero after delivery"
    moved = figures_changed(sent or {}, current)
    if ms_or_zero(current.get("UpdatedDateUTC")) > sent_version and not only_credit_applied(sent or {}, current):
        return "was edited in Xero after delivery" + (f": {', '.join(moved)}" if moved else "")
    if moved:
        return f"was changed in Xero after delivery without a new UpdatedDateUTC: {', '.join(moved)}"
    return None


def figures_changed(sent: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """The differences between two Xero records of one document that Stampli acts on, each a short phrase."""
    changes = []
    before, after = _amount(sent.get("Total")), _amount(current.get("Total"))
    if before is not None and after is not None and before != after:
        changes.append(f"total {before} → {after}")
    was, now = _contact(sent), _contact(current)
    if was[0] and now[0] and was[0] != now[0]:
        changes.append(f"supplier {was[1]} → {now[1]}")
    if "Allocations" in sent or "Allocations" in current:
        was_applied, now_applied = _allocations(sent), _allocations(current)
        if _key(was_applied) != _key(now_applied):
            changes.append(f"allocations {_said(was_applied)} → {_said(now_applied)}")
    return changes


def _contact(record: Mapping[str, Any]) -> tuple[str, str]:
    contact = record.get("Contact")
    if not isinstance(contact, Mapping):
        return "", ""
    contact_id = str(contact.get("ContactID") or "")
    return contact_id, str(contact.get("Name") or contact_id)


def _allocations(record: Mapping[str, Any]) -> list[tuple[str, str, Decimal | None]]:
    """(InvoiceID, the bill's number or id, amount) for each allocation of a credit note."""
    found = []
    for allocation in record.get("Allocations") or []:
        if not isinstance(allocation, Mapping):
            continue
        invoice = allocation.get("Invoice")
        invoice = invoice if isinstance(invoice, Mapping) else {}
        invoice_id = str(invoice.get("InvoiceID") or "")
        found.append((invoice_id, str(invoice.get("InvoiceNumber") or invoice_id), _amount(allocation.get("Amount"))))
    return found


def _key(allocations: list[tuple[str, str, Decimal | None]]) -> list[tuple[str, str]]:
    return sorted((invoice_id, str(amount)) for invoice_id, _, amount in allocations)


def _said(allocations: list[tuple[str, str, Decimal | None]]) -> str:
    return ", ".join(f"{number} {amount}" for _, number, amount in sorted(allocations, key=str)) or "none"
