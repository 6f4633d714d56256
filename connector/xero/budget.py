"""Xero's rate limits, kept before we send rather than discovered by a 429.

Per tenant: 60 calls a minute, 5 in flight, 5,000 a day; per app: 10,000 a minute. Windows are counted
by `limits` in a storage every worker shares (Redis in production); "in flight" is a lease semaphore
whose leases expire, so a worker killed mid-call cannot hold a slot for ever. After a 429, or when
Xero's `X-*-Remaining` headers reach zero, the tenant (or the whole app) is blocked until the time Xero
gave. A refused call is raised as `XeroRateLimited` without touching the network.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from limits import RateLimitItem, RateLimitItemPerDay, RateLimitItemPerMinute
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from connector.errors import XeroRateLimited

APP = "app"


@dataclass(frozen=True)
class Limits:
    per_minute: int = 60
    per_day: int = 5000
    app_per_minute: int = 10000
    in_flight: int = 5
    lease_seconds: float = 120.0  # longer than any one request's timeout


class Leases(Protocol):
    """Counting semaphore with expiring leases, plus blocks that expire; shared or per process."""

    def acquire(self, key: str, limit: int, ttl: float) -> str | None: ...
    def release(self, key: str, token: str) -> None: ...
    def block(self, key: str, seconds: float) -> None: ...
    def blocked_for(self, key: str) -> float: ...


class RateBudget:
    def __init__(self, storage_uri: str, leases: Leases, limits: Limits | None = None) -> None:
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage_uri))
        self._leases = leases
        self.limits = limits or Limits()
        self._minute = RateLimitItemPerMinute(self.limits.per_minute)
        self._day = RateLimitItemPerDay(self.limits.per_day)
        self._app_minute = RateLimitItemPerMinute(self.limits.app_per_minute)

    @contextmanager
    def call(self, tenant_id: str) -> Iterator[None]:
        """Hold one slot of the tenant's budget for the duration of one request."""
        for key, problem in ((f"block:{APP}", "appminute"), (f"block:{tenant_id}", "minute")):
            wait = self._leases.blocked_for(key)
            if wait > 0:
                raise XeroRateLimited(f"tenant {tenant_id}: held back ({problem})", problem=problem, retry_after=wait)
        wait = self._leases.blocked_for(f"block-day:{tenant_id}")
        if wait > 0:
            raise XeroRateLimited(f"tenant {tenant_id}: day budget spent", problem="day", retry_after=wait)
        self._hit(self._app_minute, APP, "appminute", tenant_id)
        self._hit(self._minute, tenant_id, "minute", tenant_id)
        self._hit(self._day, tenant_id, "day", tenant_id)
        token = self._leases.acquire(f"inflight:{tenant_id}", self.limits.in_flight, self.limits.lease_seconds)
        if token is None:
            raise XeroRateLimited(f"tenant {tenant_id}: 5 calls already in flight", problem="concurrent",
                                  retry_after=1.0)
        try:
            yield
        finally:
            self._leases.release(f"inflight:{tenant_id}", token)

    def observe(self, tenant_id: str, headers: Mapping[str, str]) -> None:
        """Trust Xero's counters over ours: a zero remaining blocks until its window can have moved."""
        if _remaining(headers, "X-DayLimit-Remaining") == 0:
            self._leases.block(f"block-day:{tenant_id}", _retry_after(headers) or 3600.0)
        if _remaining(headers, "X-MinLimit-Remaining") == 0:
            self._leases.block(f"block:{tenant_id}", _retry_after(headers) or 60.0)
        if _remaining(headers, "X-AppMinLimit-Remaining") == 0:
            self._leases.block(f"block:{APP}", _retry_after(headers) or 60.0)

    def rejected(self, tenant_id: str, problem: str, retry_after: float | None) -> None:
        """Record a 429 so no worker sends for this tenant (or, for appminute, any tenant) until it passes."""
        if problem == "day":
            self._leases.block(f"block-day:{tenant_id}", retry_after or 3600.0)
        elif problem == "appminute":
            self._leases.block(f"block:{APP}", retry_after or 60.0)
        else:
            self._leases.block(f"block:{tenant_id}", retry_after or (1.0 if problem == "concurrent" else 60.0))

    def _hit(self, item: RateLimitItem, key: str, problem: str, tenant_id: str) -> None:
        if self._limiter.hit(item, "xero", key):
            return
        reset = self._limiter.get_window_stats(item, "xero", key).reset_time
        wait = max(0.5, reset - time.time())
        raise XeroRateLimited(f"tenant {tenant_id}: {problem} budget spent", problem=problem, retry_after=wait)


class LocalLeases:
    """Per-process leases and blocks, for the embedded mode (one worker process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[str, dict[str, float]] = {}
        self._blocks: dict[str, float] = {}

    def acquire(self, key: str, limit: int, ttl: float) -> str | None:
        now = time.monotonic()
        with self._lock:
            held = {t: until for t, until in self._held.get(key, {}).items() if until > now}
            if len(held) >= limit:
                self._held[key] = held
                return None
            token = uuid.uuid4().hex
            held[token] = now + ttl
            self._held[key] = held
            return token

    def release(self, key: str, token: str) -> None:
        with self._lock:
            self._held.get(key, {}).pop(token, None)

    def block(self, key: str, seconds: float) -> None:
        with self._lock:
            self._blocks[key] = max(self._blocks.get(key, 0.0), time.monotonic() + seconds)

    def blocked_for(self, key: str) -> float:
        with self._lock:
            return max(0.0, self._blocks.get(key, 0.0) - time.monotonic())


def _remaining(headers: Mapping[str, str], name: str) -> int | None:
    try:
        return int(headers[name])
    except (KeyError, ValueError):
        return None


def _retry_after(headers: Mapping[str, str]) -> float | None:
    try:
        return float(headers["Retry-After"])
    except (KeyError, ValueError):
        return None
