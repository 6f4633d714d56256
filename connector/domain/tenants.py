"""Tenant statuses, and the rule that stops a tenant whose polls keep dying from being polled forever."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Final


class TenantStatus(StrEnum):
    ACTIVE = "ACTIVE"              # polled on its cadence
    DISCONNECTED = "DISCONNECTED"  # Xero refused the tenant (403): a re-consent revives it
    PAUSED = "PAUSED"              # an operator stopped its polls


class PollEvent(StrEnum):
    """OperationalEvent kinds about poll liveness."""

    RESUMED = "poll_resumed"  # a poll's worker died; the tenant was dispatched again
    PARKED = "poll_parked"    # polls stopped until a person clears them


#: Polls that took the lease and never ended (the worker died, or the poll crashed on an error we did not
#: expect) before the tenant's polls are parked. A page that kills its worker (the OOM killer on a huge
#: page) would otherwise be fetched from Xero again and again without end.
POLL_RUN_LIMIT: Final = 3


def polls_exhausted(runs: int) -> bool:
    """True when this many consecutive unfinished runs mean the next one must not start."""
    return runs >= POLL_RUN_LIMIT


def poll_parked_reason(tenant_id: str, runs: int, last_lease_until: datetime | None) -> str:
    """What `connector status` shows for a tenant whose polls were parked."""
    reason = f"the poll of tenant {tenant_id} died {runs} times in a row without finishing"
    if last_lease_until is not None:
        reason += f": the last one stopped renewing its lease, which ran out at {last_lease_until.isoformat()}"
    return reason


class PollRefusal(StrEnum):
    """Why a poll message did not start a poll."""

    PARKED = "PARKED"        # a person must clear the tenant's polls first
    BUSY = "BUSY"            # another poll holds a live lease: one poll at a time per tenant
    EXHAUSTED = "EXHAUSTED"  # too many runs died in a row: park now


def why_not_started(lease_until: datetime | None, runs: int, parked_reason: str | None,
                    now: datetime) -> PollRefusal:
    """Given that the lease could not be taken, why (read from the tenant's row)."""
    if parked_reason is not None:
        return PollRefusal.PARKED
    if lease_until is not None and lease_until > now:
        return PollRefusal.BUSY
    if polls_exhausted(runs):
        return PollRefusal.EXHAUSTED
    return PollRefusal.BUSY  # taken by another poll between our attempt and this read
