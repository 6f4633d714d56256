"""Xero's rate limits on the sandbox clock: per tenant 60 a rolling minute, 5 in flight, 5,000 a day;
per app 10,000 a rolling minute.

A call that passes is counted and marked in flight until `release`. A call that fails gets the problem
name Xero sends in `X-Rate-Limit-Problem` and a Retry-After in sandbox seconds. Remaining-count headers
go on every answer that reached the limiter.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass, field, replace

from sandbox.xero import choices
from sandbox.xero.clock import SandboxClock


@dataclass(frozen=True)
class Limits:
    minute: int = choices.TENANT_MINUTE_LIMIT
    day: int = choices.TENANT_DAY_LIMIT
    concurrent: int = choices.TENANT_CONCURRENT_LIMIT
    app_minute: int = choices.APP_MINUTE_LIMIT


@dataclass(frozen=True)
class Verdict:
    """The limiter's answer for one call."""

    problem: str | None  # None: allowed; else minute | day | concurrent | appminute
    retry_after: int | None
    minute_remaining: int
    day_remaining: int
    app_minute_remaining: int

    @property
    def allowed(self) -> bool:
        return self.problem is None

    def headers(self) -> dict[str, str]:
        out = {
            "X-MinLimit-Remaining": str(self.minute_remaining),
            "X-DayLimit-Remaining": str(self.day_remaining),
            "X-AppMinLimit-Remaining": str(self.app_minute_remaining),
        }
        if self.problem is not None:
            out["X-Rate-Limit-Problem"] = self.problem
            out["Retry-After"] = str(self.retry_after)
        return out


@dataclass
class _Tenant:
    calls: deque[float] = field(default_factory=deque)
    day_start: float | None = None
    day_count: int = 0
    in_flight: int = 0


class RateLimiter:
    def __init__(self, clock: SandboxClock, limits: Limits | None = None) -> None:
        self.clock = clock
        self.limits = limits or Limits()
        self._lock = threading.Lock()
        self._tenants: dict[str, _Tenant] = {}
        self._apps: dict[str, deque[float]] = {}

    def set_limits(self, **changes: int) -> Limits:
        """Change some limits (e.g. a Starter-tier day limit of 1,000, or tiny limits in a test)."""
        with self._lock:
            self.limits = replace(self.limits, **changes)
            return self.limits

    def reset(self) -> None:
        with self._lock:
            self._tenants.clear()
            self._apps.clear()

    def acquire(self, tenant_id: str, app_id: str) -> Verdict:
        now = self.clock.seconds()
        limits = self.limits
        with self._lock:
            tenant = self._tenants.setdefault(tenant_id, _Tenant())
            app = self._apps.setdefault(app_id, deque())
            _prune(tenant.calls, now)
            _prune(app, now)
            if tenant.day_start is not None and now >= tenant.day_start + choices.DAY_WINDOW_SECONDS:
                tenant.day_start, tenant.day_count = None, 0
            breaches = {
                "day": tenant.day_count >= limits.day,
                "appminute": len(app) >= limits.app_minute,
                "minute": len(tenant.calls) >= limits.minute,
                "concurrent": tenant.in_flight >= limits.concurrent,
            }
            problem = next((name for name in choices.LIMIT_CHECK_ORDER if breaches[name]), None)
            if problem is None or choices.REJECTED_CALLS_COUNT:
                tenant.calls.append(now)
                app.append(now)
                if tenant.day_start is None:
                    tenant.day_start = now
                tenant.day_count += 1
            if problem is None:
                tenant.in_flight += 1
            return Verdict(
                problem=problem,
                retry_after=None if problem is None else self._retry_after(problem, tenant, app, now),
                minute_remaining=max(0, limits.minute - len(tenant.calls)),
                day_remaining=max(0, limits.day - tenant.day_count),
                app_minute_remaining=max(0, limits.app_minute - len(app)),
            )

    def release(self, tenant_id: str) -> None:
        with self._lock:
            tenant = self._tenants.get(tenant_id)
            if tenant is not None and tenant.in_flight > 0:
                tenant.in_flight -= 1

    def _retry_after(self, problem: str, tenant: _Tenant, app: deque[float], now: float) -> int:
        if problem == "day":
            start = now if tenant.day_start is None else tenant.day_start
            return max(1, math.ceil(start + choices.DAY_WINDOW_SECONDS - now))
        if problem == "minute":
            return max(1, math.ceil(tenant.calls[0] + choices.MINUTE_WINDOW_SECONDS - now))
        if problem == "appminute":
            return max(1, math.ceil(app[0] + choices.MINUTE_WINDOW_SECONDS - now))
        return choices.CONCURRENT_RETRY_AFTER_SECONDS


def _prune(calls: deque[float], now: float) -> None:
    horizon = now - choices.MINUTE_WINDOW_SECONDS
    while calls and calls[0] <= horizon:
        calls.popleft()
