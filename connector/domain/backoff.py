"""Backoff: the one rule for how long to wait before trying again, used at every retry site."""

from __future__ import annotations

import random
from collections.abc import Callable


def backoff(attempt: int, *, base: float, cap: float, retry_after: float | None = None,
            rand: Callable[[float, float], float] = random.uniform) -> float:
    """Exponential, jittered in the upper half so that many tenants failing together do not retry in
    lockstep, never sooner than the server's `retry_after`, never longer than `cap`.

    `attempt` counts from 1: the wait lies between half and all of min(cap, base * 2**(attempt - 1))."""
    ceiling = min(cap, base * 2 ** max(0, min(attempt, 64) - 1))
    return min(cap, max(rand(ceiling / 2, ceiling), retry_after or 0.0))
