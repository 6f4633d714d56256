"""Finding purchase-order numbers in free text (a bill's reference), tolerant of real spellings.

Recognises `PO-0001`, `po 0001`, `P.O. 0001`, `PO0001 / delivery 2`, `PO#12`; refuses look-alikes such
as `POS-2231` and `PO Box 12`. Numbers compare by their digits, so `PO-0001` and `po 1` are one PO.
"""

from __future__ import annotations

import re

_PO = re.compile(r"(?<![A-Za-z0-9])P\.?\s?O\.?(?![A-Za-z])\s*[-#:]?\s*(\d{1,12})(?!\d)", re.IGNORECASE)


def find_po_keys(text: str) -> list[str]:
    """Distinct PO keys (digits without leading zeros) in order of appearance."""
    keys: list[str] = []
    for match in _PO.finditer(text or ""):
        key = match.group(1).lstrip("0") or "0"
        if key not in keys:
            keys.append(key)
    return keys


def po_key(number: str) -> str | None:
    """The key of a PurchaseOrderNumber as Xero holds it, e.g. `PO-0001` → `1`."""
    keys = find_po_keys(number)
    return keys[0] if keys else None
