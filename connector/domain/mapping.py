"""Deciding, per bill, READY (with its Stampli-ready record), HELD or EXCLUDED, with reasons. Pure.

Every check runs and every reason is kept, so an operator sees all that is wrong at once. Each reason
belongs to a class; the tenant's policy for that class decides: hold (a person must act), exclude (not
for Stampli) or deliver flagged (sent, with a flag column). Exclude outranks hold (a bill the tenant
keeps out of Stampli anyway needs no one's attention), and hold outranks flagged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from connector.domain.money import cents, check_totals
from connector.domain.po_numbers import find_po_keys
from connector.domain.reasons import Reason
from connector.domain.records import Account, LineItem, PurchaseOrder, Vendor, XeroBill
from connector.domain.rules import Maps, Policy, TenantRules, UnmappedTracking
from connector.domain.states import BillState

MERGE_DEPTH = 3


@dataclass(frozen=True)
class MappingContext:
    """Everything mapping needs about one tenant and one bill, loaded by the caller."""

    rules: TenantRules
    maps: Maps
    version: int = 0                                              # the mapping set in force
    vendors: Mapping[str, Vendor] = field(default_factory=dict)  # by ContactID (merge targets included)
    accounts: Mapping[str, Account] = field(default_factory=dict)  # by code
    purchase_orders: Mapping[str, Sequence[PurchaseOrder]] = field(default_factory=dict)  # by PO key
    # PO id → {InvoiceID: total} of the other bills already going to Stampli against that PO
    billed_against: Mapping[str, Mapping[str, Decimal]] = field(default_factory=dict)


@dataclass(frozen=True)
class MappingOutcome:
    state: BillState
    reasons: tuple[Reason, ...]
    record: dict[str, Any] | None  # the Stampli-ready record, JSON-safe (money as strings)


def map_bill(bill: XeroBill, context: MappingContext, fields: Mapping[str, str] | None = None) -> MappingOutcome:
    """`fields` holds the bill's text fields by Xero name, for tenants that carry PO numbers elsewhere."""
    rules = context.rules
    if bill.type != "ACCPAY":
        return MappingOutcome(BillState.EXCLUDED, (Reason("not_a_bill", {"type": bill.type}),), None)
    if bill.status not in rules.eligible_statuses:
        reason = Reason("status_not_eligible", {"status": bill.status, "eligible": ",".join(rules.eligible_statuses)})
        return MappingOutcome(BillState.EXCLUDED, (reason,), None)
    reasons: list[Reason] = []
    vendor = _vendor(bill, context, reasons)
    orders = _purchase_orders(bill, context, vendor, fields or {"InvoiceNumber": bill.invoice_number}, reasons)
    lines = [_line(line, context, reasons) for line in bill.lines]
    reasons += check_totals(bill)
    state, flags = _decide(reasons, rules)
    record = _record(bill, vendor, orders, lines, context, flags)
    return MappingOutcome(state, tuple(reasons), record)


def _decide(reasons: list[Reason], rules: TenantRules) -> tuple[BillState, list[str]]:
    policies = {rules.policy(r.reason_class) for r in reasons if r.reason_class is not None}
    if Policy.EXCLUDE in policies:
        return BillState.EXCLUDED, []
    if Policy.HOLD in policies:
        return BillState.HELD, []
    return BillState.READY, [r.text() for r in reasons]


def _vendor(bill: XeroBill, context: MappingContext, reasons: list[Reason]) -> Vendor | None:
    vendor = context.vendors.get(bill.contact_id)
    if vendor is None:
        reasons.append(Reason("vendor_unknown", {"contact": bill.contact_name or bill.contact_id}))
        return None
    for _ in range(MERGE_DEPTH):  # a merged (archived) duplicate stands for the contact it was merged into
        if not vendor.merged_to or vendor.merged_to not in context.vendors:
            break
        vendor = context.vendors[vendor.merged_to]
    if vendor.status != "ACTIVE":
        reasons.append(Reason("vendor_archived", {"name": vendor.name}))
    if not vendor.is_supplier:
        reasons.append(Reason("vendor_not_supplier", {"name": vendor.name}))
    if context.rules.require_tax_number and not vendor.tax_number.strip():
        reasons.append(Reason("vendor_no_tax_number", {"name": vendor.name}))
    if context.rules.require_vendor_map and vendor.contact_id not in context.maps.vendors:
        reasons.append(Reason("vendor_unmapped", {"name": vendor.name}))
    return vendor


def _purchase_orders(bill: XeroBill, context: MappingContext, vendor: Vendor | None, fields: Mapping[str, str],
                     reasons: list[Reason]) -> list[PurchaseOrder]:
    keys = po_keys_in(fields, context.rules.po_fields)
    if not keys:
        searched = ", ".join(context.rules.po_fields)
        reasons.append(Reason("no_po", {"fields": searched, "reference": bill.invoice_number}))
        return []
    supplier_ids = {bill.contact_id} | ({vendor.contact_id} if vendor else set())
    found: list[PurchaseOrder] = []
    for key in keys:
        candidates = list(context.purchase_orders.get(key, ()))
        if len(candidates) > 1:  # e.g. PO-0001 and PO-1: prefer the supplier's own, else it is ambiguous
            candidates = [po for po in candidates if po.contact_id in supplier_ids] or candidates
        if not candidates:
            reasons.append(Reason("unknown_po", {"number": f"PO {key}"}))
            continue
        if len(candidates) > 1:
            reasons.append(Reason("ambiguous_po", {"number": f"PO {key}",
                                                   "candidates": ", ".join(po.number for po in candidates)}))
            continue
        order = candidates[0]
        found.append(order)
        if order.contact_id not in supplier_ids:
            reasons.append(Reason("po_other_supplier", {"number": order.number}))
        if order.currency and bill.currency and order.currency != bill.currency:
            reasons.append(Reason("po_other_currency", {"number": order.number, "po_currency": order.currency,
                                                        "currency": bill.currency}))
        if order.status not in context.rules.billable_po_statuses:
            reasons.append(Reason("po_not_billable", {"number": order.number, "status": order.status}))
    if found and len(found) == len(keys):
        _compare_amounts(bill, found, context, reasons)
    return found


def po_keys_in(fields: Mapping[str, str], names: Sequence[str]) -> list[str]:
    """The PO keys found in the named fields, in order of appearance, each once."""
    keys: list[str] = []
    for name in names:
        keys += [key for key in find_po_keys(fields.get(name, "")) if key not in keys]
    return keys


def _compare_amounts(bill: XeroBill, orders: list[PurchaseOrder], context: MappingContext,
                     reasons: list[Reason]) -> None:
    """This bill against its POs, and every bill against them together: a PO is never billed past its total."""
    rules = context.rules
    po_total = cents(sum((po.total for po in orders), Decimal("0")))
    tolerance = max(rules.amount_tolerance, cents(po_total * rules.amount_tolerance_percent / 100))
    others: dict[str, Decimal] = {}
    for po in orders:
        others.update(context.billed_against.get(po.purchase_order_id, {}))
    others.pop(bill.invoice_id, None)
    already = cents(sum(others.values(), Decimal("0")))
    total = cents(bill.total)
    if already and total + already > po_total + tolerance:
        reasons.append(Reason("po_over_billed", {
            "numbers": ", ".join(po.number for po in orders), "billed": str(total + already),
            "already": str(already), "po_total": str(po_total), "tolerance": str(tolerance)}))
        return
    if rules.allow_partial_billing and total <= po_total:
        return
    difference = cents(abs(total - po_total))
    if difference > tolerance:
        reasons.append(Reason("po_amount_variance", {"bill_total": str(total), "po_total": str(po_total),
                                                     "difference": str(difference), "tolerance": str(tolerance)}))


def _line(line: LineItem, context: MappingContext, reasons: list[Reason]) -> dict[str, Any]:
    gl = ""
    if line.account_code is None:
        if line.line_amount:  # a description-only note line carries no money and needs no account
            reasons.append(Reason("line_without_account", {"line": line.line_number}))
    else:
        account = context.accounts.get(line.account_code)
        if account is not None and account.status != "ACTIVE":
            reasons.append(Reason("archived_account", {"line": line.line_number, "account": line.account_code}))
        gl = context.maps.gl.get(line.account_code, "")
        if not gl:
            reasons.append(Reason("unmapped_gl", {"line": line.line_number, "account": line.account_code}))
    return {
        "line_number": line.line_number,
        "description": line.description,
        "quantity": str(line.quantity),
        "unit_amount": str(line.unit_amount),
        "line_amount": str(cents(line.line_amount)),
        "tax_amount": str(cents(line.tax_amount)),
        "account_code": line.account_code or "",
        "gl_code": gl,
        "tracking": [{"category": t.category, "option": t.option} for t in line.tracking],
        "dimensions": _dimensions(line, context, reasons),
    }


def _dimensions(line: LineItem, context: MappingContext, reasons: list[Reason]) -> dict[str, str]:
    dimensions: dict[str, str] = {}
    tracking_map = context.maps.tracking
    for tracking in line.tracking:
        mapped = tracking_map.get((tracking.category, tracking.option)) or tracking_map.get((tracking.category, "*"))
        if mapped is not None:
            dimension, value = mapped
            dimensions[dimension] = tracking.option if value == "*" else value
        elif context.rules.unmapped_tracking is UnmappedTracking.PASS_THROUGH:
            dimensions[tracking.category] = tracking.option
        elif context.rules.unmapped_tracking is UnmappedTracking.HOLD:
            reasons.append(Reason("unmapped_dimension", {"line": line.line_number, "category": tracking.category,
                                                         "option": tracking.option}))
    return dimensions


def _record(bill: XeroBill, vendor: Vendor | None, orders: list[PurchaseOrder], lines: list[dict[str, Any]],
            context: MappingContext, flags: list[str]) -> dict[str, Any]:
    return {
        "invoice_id": bill.invoice_id,
        "invoice_number": bill.invoice_number,
        "vendor_id": vendor.contact_id if vendor else bill.contact_id,
        "vendor_name": vendor.name if vendor else bill.contact_name,
        "vendor_code": context.maps.vendors.get(vendor.contact_id if vendor else bill.contact_id, ""),
        "invoice_date": bill.issue_date.isoformat() if bill.issue_date else "",
        "due_date": bill.due_date.isoformat() if bill.due_date else "",
        "currency": bill.currency,
        "currency_rate": str(bill.currency_rate) if bill.currency_rate is not None else "",
        "line_amount_types": bill.line_amount_types,
        "sub_total": str(cents(bill.sub_total)),
        "total_tax": str(cents(bill.total_tax)),
        "total": str(cents(bill.total)),
        "po_numbers": [po.number for po in orders],
        "po_ids": [po.purchase_order_id for po in orders],
        "po": [{"number": po.number, "id": po.purchase_order_id, "status": po.status, "total": str(cents(po.total)),
                "date": po.issue_date.isoformat() if po.issue_date else "", "lines": list(po.lines)} for po in orders],
        "flagged": bool(flags),
        "flags": flags,
        "mapping_version": context.version,
        "lines": lines,
    }
