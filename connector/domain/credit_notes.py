"""Supplier credit notes (`ACCPAYCREDIT`): parsed and mapped by the rules of bills, with their allocations.

A credit note is a bill with the other sign: the same vendor checks, the same GL and dimension maps per
line, the same totals that must add up, its own eligible statuses (`credit_note_statuses`, default
AUTHORISED and PAID: Xero makes a credit applied in full PAID at once). A purchase order is matched only
where the credit note names one (a credit without a PO number is no reason to hold it) and its amount
is never compared with the PO's. Its allocations say which bills it is applied to, for how much and
when; a credit applied to a bill Stampli does not have yet (not DELIVERED) is a reason of class
`allocation`, whose tenant policy decides: `hold` (the default) waits for the bill and is re-opened by
itself once the bill is delivered, `deliver_flagged` sends it flagged, `exclude` keeps it out. A credit
applied in full (PAID) to bills the ledger EXCLUDED (a bill credited in full before it went is PAID, so
never sent) has nothing for Stampli: it is EXCLUDED too, never left waiting for a bill that will not come;
should one of those bills reach Stampli after all (a payment removed in Xero makes it AUTHORISED again),
its delivery re-opens the credit note as it re-opens a waiting one. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from typing import Any, Final

from connector.domain.mapping import (
    MappingContext,
    MappingOutcome,
    _decide,
    _line,
    _purchase_orders,
    _record,
    _vendor,
    po_keys_in,
)
from connector.domain.money import cents, check_totals
from connector.domain.reasons import Reason
from connector.domain.records import XeroBill, parse_bill
from connector.domain.rules import ReasonClass
from connector.domain.states import BillState
from connector.errors import RecordProblem
from connector.xero.dates import parse_date

SUPPLIER_CREDIT: Final = "ACCPAYCREDIT"
BILL: Final = "BILL"
CREDIT_NOTE: Final = "CREDIT_NOTE"
#: States in which the bill a credit is applied to is in Stampli already.
BILL_IN_STAMPLI: Final = frozenset({BillState.DELIVERED.value, BillState.CHANGED_AFTER_DELIVERY.value})
WAITS_FOR_BILL: Final = "allocated_bill_not_delivered"
#: A credit applied in full to bills the ledger excluded: excluded with them.
WITH_EXCLUDED_BILLS: Final = "allocated_bills_excluded"
# The audit reason of a credit note re-opened by the delivery of its bills' file (the file's name follows).
REOPENED_BY_DELIVERY: Final = "re-opened: the bills it is allocated to were delivered in file"


@dataclass(frozen=True)
class Allocation:
    """Part of a credit note applied to one bill."""

    invoice_id: str
    invoice_number: str
    amount: Decimal
    day: date | None


@dataclass(frozen=True)
class XeroCreditNote:
    """A credit note: its figures read as a bill's (`note`), plus what only a credit note has."""

    note: XeroBill
    reference: str
    allocations: tuple[Allocation, ...]


def parse_credit_note(data: dict[str, Any], *, tenant_id: str) -> XeroCreditNote:
    """Parse one CreditNotes record; a bad field raises RecordProblem naming tenant, credit note and field."""
    note_id = data.get("CreditNoteID")
    label = f"tenant {tenant_id} credit note {note_id if isinstance(note_id, str) and note_id else '<unknown>'}"
    if not isinstance(note_id, str) or not note_id:
        raise RecordProblem(label, "CreditNoteID", "is missing")
    as_bill = {**data, "InvoiceID": note_id, "InvoiceNumber": data.get("CreditNoteNumber"), "DueDate": None}
    note = parse_bill(as_bill, tenant_id=tenant_id, label="credit note")
    allocations = []
    for number, raw in enumerate(data.get("Allocations") or [], start=1):
        where = f"Allocations[{number}]"
        invoice = raw.get("Invoice") if isinstance(raw, dict) else None
        if not isinstance(invoice, dict) or not isinstance(invoice.get("InvoiceID"), str) or not invoice["InvoiceID"]:
            raise RecordProblem(label, f"{where}.Invoice.InvoiceID", "is missing")
        allocations.append(Allocation(
            invoice_id=invoice["InvoiceID"], invoice_number=str(invoice.get("InvoiceNumber") or ""),
            amount=_amount(label, f"{where}.Amount", raw.get("Amount")),
            day=_day(label, f"{where}.Date", raw.get("Date")),
        ))
    reference = data.get("Reference")
    return XeroCreditNote(note, reference if isinstance(reference, str) else "", tuple(allocations))


def credit_note_fields(data: dict[str, Any]) -> dict[str, str]:
    """The credit note's text fields a tenant may name as carrying PO numbers (as for a bill: its number
    stands in the bill's InvoiceNumber)."""
    lines = data.get("LineItems") or []
    return {
        "InvoiceNumber": str(data.get("CreditNoteNumber") or ""),
        "Reference": str(data.get("Reference") or ""),
        "LineDescriptions": "\n".join(str(line.get("Description") or "") for line in lines if isinstance(line, dict)),
    }


def map_credit_note(credit: XeroCreditNote, context: MappingContext, fields: Mapping[str, str],
                    bill_states: Mapping[str, str]) -> MappingOutcome:
    """READY, HELD or EXCLUDED with every reason, as for a bill; `bill_states` holds the ledger state of
    each bill the credit is allocated to (a bill the ledger does not hold is absent)."""
    note, rules = credit.note, context.rules
    if note.type != SUPPLIER_CREDIT:
        return MappingOutcome(BillState.EXCLUDED, (Reason("not_a_supplier_credit", {"type": note.type}),), None)
    if note.status not in rules.credit_note_statuses:
        reason = Reason("status_not_eligible", {"status": note.status,
                                                "eligible": ",".join(rules.credit_note_statuses)})
        return MappingOutcome(BillState.EXCLUDED, (reason,), None)
    if note.status == "PAID" and credit.allocations and all(
            bill_states.get(a.invoice_id) == BillState.EXCLUDED.value for a in credit.allocations):
        numbers = ", ".join(a.invoice_number or a.invoice_id for a in credit.allocations)
        # The bills' ids are kept with it: the delivery of one of them (Xero let it go after all) re-opens it.
        ids = sorted({a.invoice_id for a in credit.allocations})
        return MappingOutcome(BillState.EXCLUDED, (Reason(WITH_EXCLUDED_BILLS, {"numbers": numbers,
                                                                                "invoice_ids": ids}),), None)
    reasons: list[Reason] = []
    vendor = _vendor(note, context, reasons)
    orders = []
    if po_keys_in(fields, rules.po_fields):
        # A PO only where one is named, and a credit's amount is never compared with the PO's total.
        po_reasons: list[Reason] = []
        orders = _purchase_orders(note, replace(context, billed_against={}), vendor, fields, po_reasons)
        reasons += [r for r in po_reasons if r.reason_class is not ReasonClass.AMOUNT_VARIANCE]
    lines = [_line(line, context, reasons) for line in note.lines]
    reasons += check_totals(note)
    for allocation in credit.allocations:
        state = bill_states.get(allocation.invoice_id)
        if state not in BILL_IN_STAMPLI:
            reasons.append(Reason(WAITS_FOR_BILL, {"number": allocation.invoice_number or allocation.invoice_id,
                                                   "invoice_id": allocation.invoice_id,
                                                   "state": state or "not read from Xero"}))
    state, flags = _decide(reasons, rules)
    record = _record(note, vendor, orders, lines, context, flags)
    record.update({
        "document_type": CREDIT_NOTE,
        "reference": credit.reference,
        "allocations": [{"invoice_id": a.invoice_id, "invoice_number": a.invoice_number,
                         "amount": str(cents(a.amount)), "date": a.day.isoformat() if a.day else ""}
                        for a in credit.allocations],
        "applied_to_invoice_ids": [a.invoice_id for a in credit.allocations],
        "applied_to_invoice_numbers": [a.invoice_number for a in credit.allocations],
        "applied_amounts": [str(cents(a.amount)) for a in credit.allocations],
    })
    return MappingOutcome(state, tuple(reasons), record)


def _amount(label: str, field: str, value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise RecordProblem(label, field, f"must be a number, got {value!r}")
    try:
        amount = Decimal(str(value))
    except ArithmeticError:
        raise RecordProblem(label, field, f"must be a number, got {value!r}") from None
    if not amount.is_finite():
        raise RecordProblem(label, field, f"must be a number, got {value!r}")
    return amount


def _day(label: str, field: str, value: object) -> date | None:
    if value in (None, ""):
        return None
    try:
        return parse_date(str(value))
    except ValueError:
        raise RecordProblem(label, field, f"is not a Xero date: {value!r}") from None
