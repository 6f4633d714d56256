"""Finding purchase-order numbers in free text (a bill's reference), tolerant of real spellings.

Recognises `PO-0001`, `po 0001`, `P.O. 0001`, `PO0001 / delivery 2`, `PO#12`, `PO No. 12`,
`PO Number 12`, `PO#: 12`, `P/O 12`, `PO–12` (an en dash), and numbers in several groups such as
`PO-2024-0017`; refuses look-alikes such as `POS-2231` and `PO Box 12`. Numbers compare by their digit
groups without leading zeros, so `PO-0001` and `po 1` are one PO, and `PO-2024-0017` is `2024-17`.
"""

from __future__ import annotations

import re

_PREFIX = r"(?<![A-Za-z0-9])(?:P\.?\s?O\.?|P/O)(?![A-Za-z])"
_LABEL = r"(?:\s*(?:No\.?|Nbr\.?|Number)(?![A-Za-z]))?"
_SEPARATOR = r"\s*[-–—#:]*\s*"
_NUMBER = r"(\d{1,12}(?:-\d{1,12})*)(?![\d-])"
_PO = re.compile(_PREFIX + _LABEL + _SEPARATOR + _NUMBER, re.IGNORECASE)


def _key(digits: str) -> str:
    return "-".join(group.lstrip("0") or "0" for group in digits.split("-"))


def find_po_keys(text: str) -> list[str]:
    """Distinct PO keys (digit groups without leading zeros) in order of appearance."""
    keys: list[str] = []
    for match in _PO.finditer(text or ""):
        key = _key(match.group(1))
        if key not in keys:
            keys.append(key)
    return keys


def po_key(number: str) -> str | None:
    """The key of a PurchaseOrderNumber as Xero holds it, e.g. `PO-0001` → `1`."""
    keys = find_po_keys(number)
    return keys[0] if keys else None
