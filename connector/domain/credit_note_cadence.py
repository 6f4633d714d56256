"""When a poll reads the tenant's supplier credit notes: on a cadence of their own, and at once when Xero
announces one.

Credit notes are far rarer than bills, so reading them in every poll made an idle cycle three calls
instead of two. They are read when the tenant has never read them, when their own cadence has come
(CONNECTOR_CREDIT_NOTE_INTERVAL_SECONDS, an hour by default: the backstop), when a CREDITNOTE webhook
asked since the last read began, or when the poll's bills show a credit allocation that moved (Xero
raises a bill's AmountCredited and stamps it anew when a credit note is applied to it, so the bill comes
back in the delta read just before). A credit note applied to a bill therefore arrives in the same poll
as the bill's change, and an announced one in the poll its webhook wakes. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any


def credit_notes_due(read_at: datetime | None, asked_at: datetime | None, now: datetime,
                     interval_seconds: float, poll_interval_seconds: float = 0.0) -> bool:
    """Whether this poll reads credit notes, by the tenant's last read (when it began) and last ask. The
    cadence falls on the poll nearest it (within half a poll interval), not the first one after it: polls
    start a few seconds either side of their slot, and an hour must not become an hour and a quarter."""
    if read_at is None:
        return True
    if asked_at is not None and asked_at >= read_at:
        return True
    return read_at + timedelta(seconds=interval_seconds - poll_interval_seconds / 2) <= now


def _amount(value: object) -> Decimal:
    try:
        return Decimal(str(value)) if value not in (None, "") else Decimal(0)
    except InvalidOperation:
        return Decimal(0)


def credit_allocation_moved(arriving: Mapping[str, Any], stored: Mapping[str, Any] | None) -> bool:
    """The bill's AmountCredited differs from the copy we hold (a new bill: from zero)."""
    before = _amount(stored.get("AmountCredited")) if stored is not None else Decimal(0)
    return _amount(arriving.get("AmountCredited")) != before
