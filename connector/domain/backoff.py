"""Backoff: the one rule for how long to wait before trying again, used at every retry site, and the
schedule on which a supplier document Xero keeps failing to serve is asked for again."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta
from typing import Final


def backoff(attempt: int, *, base: float, cap: float, retry_after: float | None = None,
            rand: Callable[[float, float], float] = random.uniform) -> float:
    """Exponential, jittered in the upper half so that many tenants failing together do not retry in
    lockstep, never sooner than the server's `retry_after`, never longer than `cap`.

    `attempt` counts from 1: the wait lies between half and all of min(cap, base * 2**(attempt - 1))."""
    ceiling = min(cap, base * 2 ** max(0, min(attempt, 64) - 1))
    return min(cap, max(rand(ceiling / 2, ceiling), retry_after or 0.0))


DOCUMENTS_FIRST_WAIT: Final = timedelta(minutes=15)  # the second try's wait; each try after doubles it
DOCUMENTS_LONGEST_WAIT: Final = timedelta(days=1)


def documents_retry_wait(failures: int) -> timedelta:
    """How long a bill whose supplier document Xero failed to serve `failures` times in a row (counted from
    1) waits before it is tried again: the first failure at the next poll (no wait: Xero's trouble is often
    brief), then 15 minutes, 30, an hour, ... never more than a day. Each try costs the tenant's daily
    call budget (a list and a file), so a document that stays broken costs a few calls a day, not two a
    poll for ever. Not jittered: polls already spread the tenants, and the ledger says when."""
    if failures <= 1:
        return timedelta(0)
    doubled: timedelta = DOCUMENTS_FIRST_WAIT * 2 ** min(failures - 2, 32)
    return min(DOCUMENTS_LONGEST_WAIT, doubled)
