"""The sandbox's compressed clock: token expiry and rate-limit windows run on it, not on the wall clock.

`time_scale` is sandbox seconds per real second (60 makes a real second a sandbox minute), and
`advance` jumps forward at once, so a 30-minute token expiry or a rate-limit minute is reachable in a
test without sleeping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


class SandboxClock:
    """A monotonic, scalable clock that can only move forward."""

    def __init__(
        self,
        start: datetime | None = None,
        time_scale: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if time_scale < 0:
            raise ValueError("time_scale must be >= 0")
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._base = (start or datetime.now(UTC)).astimezone(UTC)
        self._real_base = monotonic()
        self._scale = float(time_scale)

    @property
    def time_scale(self) -> float:
        return self._scale

    def now(self) -> datetime:
        with self._lock:
            return self._now_locked()

    def seconds(self) -> float:
        """Sandbox time as epoch seconds, for window arithmetic."""
        return self.now().timestamp()

    def advance(self, seconds: float) -> datetime:
        """Jump the sandbox clock forward; refuses to go back because tokens and windows assume it."""
        if seconds < 0:
            raise ValueError("the sandbox clock only moves forward")
        with self._lock:
            self._base = self._now_locked() + timedelta(seconds=seconds)
            self._real_base = self._monotonic()
            return self._base

    def set_time_scale(self, time_scale: float) -> None:
        """Change speed from now on; time already elapsed keeps the old scale."""
        if time_scale < 0:
            raise ValueError("time_scale must be >= 0")
        with self._lock:
            self._base = self._now_locked()
            self._real_base = self._monotonic()
            self._scale = float(time_scale)

    def real_seconds_for(self, sandbox_seconds: float) -> float:
        """How long a real sleep covers `sandbox_seconds`; infinite when the clock is frozen."""
        if self._scale == 0:
            return float("inf")
        return sandbox_seconds / self._scale

    def _now_locked(self) -> datetime:
        elapsed = (self._monotonic() - self._real_base) * self._scale
        return self._base + timedelta(seconds=elapsed)
