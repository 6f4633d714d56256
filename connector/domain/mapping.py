"""Deciding, per bill, READY (with its Stampli-ready record), HELD or EXCLUDED, with reasons. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from connector.domain.po_numbers import find_po_keys
from connector.domain.reasons import Reason
from connector.domain.records import PurchaseOrder, XeroBill
from connector.domain.states import BillState


@dataclass(frozen=True)
class MappingContext:
    """Everything mapping needs about one tenant, loaded once per task."""

    gl_codes: Mapping[str, str]
    purchase_orders: Mapping[str, PurchaseOrder]  # by PO key (see po_numbers.po_key)
    eligible_statuses: Sequence[str]


@dataclass(frozen=True)
class MappingOutcome:
    state: BillState
    reasons: tuple[Reason, ...]
    record: dict[str, Any] | None  # the Stampli-ready record, JSON-safe (money as strings)


def map_bill(bill: XeroBill, context: MappingContext) -> MappingOutcome:
    if bill.type != "ACCPAY":
        return MappingOutcome(BillState.EXCLUDED, (Reason("not_a_bill", {"type": bill.type}),), None)
    if bill.status not in context.eligible_statuses:
        reason = Reason("status_not_eligible", {"status": bill.status, "eligible": ",".join(context.eligible_statuses)})
        return MappingOutcome(BillState.EXCLUDED, (reason,), None)
    reasons: list[Reason] = []
    orders = _purchase_orders(bill, context, reasons)
    gl_codes = _gl_codes(bill, context, reasons)
    if reasons:
        return MappingOutcome(BillState.HELD, tuple(reasons), None)
    return MappingOutcome(BillState.READY, (), _record(bill, orders, gl_codes))


def _purchase_orders(bill: XeroBill, context: MappingContext, reasons: list[Reason]) -> list[PurchaseOrder]:
    keys = find_po_keys(bill.invoice_number)
    if not keys:
        reasons.append(Reason("no_po", {"reference": bill.invoice_number}))
        return []
    found = []
    for key in keys:
        order = context.purchase_orders.get(key)
        if order is None:
            reasons.append(Reason("unknown_po", {"number": f"PO {key}"}))
        else:
            found.append(order)
    return found


def _gl_codes(bill: XeroBill, context: MappingContext, reasons: list[Reason]) -> list[str]:
    codes = []
    for line in bill.lines:
        if line.account_code is None:
            reasons.append(Reason("line_without_account", {"line": line.line_number}))
            codes.append("")
            continue
        gl = context.gl_codes.get(line.account_code)
        if gl is None:
            reasons.append(Reason("unmapped_gl", {"line": line.line_number, "account": line.account_code}))
        codes.append(gl or "")
    return codes


def _record(bill: XeroBill, orders: list[PurchaseOrder], gl_codes: list[str]) -> dict[str, Any]:
    return {
        "invoice_id": bill.invoice_id,
        "invoice_number": bill.invoice_number,
        "vendor_id": bill.contact_id,
        "vendor_name": bill.contact_name,
        "invoice_date": bill.issue_date.isoformat() if bill.issue_date else "",
        "due_date": bill.due_date.isoformat() if bill.due_date else "",
        "currency": bill.currency,
        "currency_rate": str(bill.currency_rate) if bill.currency_rate is not None else "",
        "sub_total": str(bill.sub_total),
        "total_tax": str(bill.total_tax),
        "total": str(bill.total),
        "po_numbers": [o.number for o in orders],
        "po_ids": [o.purchase_order_id for o in orders],
        "lines": [
            {
                "line_number": line.line_number,
                "description": line.description,
                "quantity": str(line.quantity),
                "unit_amount": str(line.unit_amount),
                "line_amount": str(line.line_amount),
                "tax_amount": str(line.tax_amount),
                "account_code": line.account_code or "",
                "gl_code": gl,
                "tracking": [{"category": t.category, "option": t.option} for t in line.tracking],
            }
            for line, gl in zip(bill.lines, gl_codes, strict=True)
        ],
    }
