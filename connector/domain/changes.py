"""What changed in Xero after a bill was delivered: the Stampli record we sent beside the bill Xero holds
now, said the way an AP clerk would check it (voided, paid, total, lines, dates, number)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any


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
    number = current.get("InvoiceNumber")
    if number is not None and delivered.get("invoice_number") not in (None, number):
        changes.append(f"number {delivered.get('invoice_number')!r} → {number!r}")
    return changes
