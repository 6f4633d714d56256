"""Faults on demand: a random fraction of 500/503 answers, added latency, and "fail the next N calls to
this path with status S" (optionally *after* doing the work, to simulate an answer lost on the way back,
e.g. a token refresh that rotated the token but never reached the client). Latency and targeted rules can
be aimed at one organisation (its `xero-tenant-id`), so one slow or failing tenant sits beside healthy ones.

The random stream is seeded, so a test that makes the same calls in the same order sees the same faults.
Random errors hit only the Accounting API; targeted rules hit any non-admin path.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import asdict, dataclass
from http import HTTPStatus
from typing import Any

from werkzeug.wrappers import Response

from sandbox.xero.responses import problem

_XERO_500 = ("An error occurred in Xero. Check the API Status page http://status.developer.xero.com for current "
             "service status.")


@dataclass
class FailRule:
    path: str
    remaining: int
    status: int
    after: bool = False  # do the work, then answer with the failure
    retry_after: int | None = None
    problem: str | None = None  # X-Rate-Limit-Problem for a forced 429
    tenant: str | None = None  # only the API calls of this organisation (None: any caller)

    def matches(self, path: str, tenant: str | None = None) -> bool:
        if self.tenant is not None and self.tenant != tenant:
            return False
        return path.lower().rstrip("/").startswith(self.path.lower().rstrip("/"))


class Faults:
    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._rng = random.Random(f"xero-sandbox/faults/{seed}")
        self._lock = threading.Lock()
        self.error_rate = 0.0
        self.error_statuses: tuple[int, ...] = (500, 503)
        self.latency_ms = 0
        self.tenant_latency_ms: dict[str, int] = {}  # added latency for one organisation's API calls
        self.rules: list[FailRule] = []

    def configure(self, *, error_rate: float | None = None, error_statuses: list[int] | None = None,
                  latency_ms: int | None = None, tenant: str | None = None) -> dict[str, Any]:
        """With `tenant`, `latency_ms` is that organisation's alone (0 clears it)."""
        with self._lock:
            if error_rate is not None:
                if not 0 <= error_rate <= 1:
                    raise ValueError("error_rate must be between 0 and 1")
                self.error_rate = float(error_rate)
            if error_statuses is not None:
                self.error_statuses = tuple(int(s) for s in error_statuses) or (500,)
            if latency_ms is not None and tenant is not None:
                self.tenant_latency_ms[tenant] = max(0, int(latency_ms))
            elif latency_ms is not None:
                self.latency_ms = max(0, int(latency_ms))
        return self.snapshot()

    def fail_next(self, path: str, count: int, status: int, *, after: bool = False,
                  retry_after: int | None = None, problem: str | None = None, tenant: str | None = None) -> None:
        """Make the next `count` calls whose path starts with `path` (of organisation `tenant`, if given)
        answer `status`."""
        with self._lock:
            self.rules.append(FailRule(path, count, status, after, retry_after, problem, tenant))

    def clear(self) -> None:
        with self._lock:
            self.error_rate, self.latency_ms, self.error_statuses = 0.0, 0, (500, 503)
            self.tenant_latency_ms.clear()
            self.rules.clear()
            self._rng = random.Random(f"xero-sandbox/faults/{self._seed}")

    def pick(self, path: str, *, api: bool, tenant: str | None = None) -> FailRule | None:
        """The fault for this call, if any; consumes one use of a targeted rule."""
        with self._lock:
            for rule in self.rules:
                if rule.remaining > 0 and rule.matches(path, tenant):
                    rule.remaining -= 1
                    self.rules = [r for r in self.rules if r.remaining > 0]
                    return rule
            if api and self.error_rate and self._rng.random() < self.error_rate:
                return FailRule(path, 1, self._rng.choice(self.error_statuses))
        return None

    def delay(self, tenant: str | None = None) -> None:
        """Added latency, in real milliseconds; the call stays in flight meanwhile."""
        latency = self.tenant_latency_ms.get(tenant, 0) if tenant is not None else 0
        if self.latency_ms or latency:
            time.sleep((self.latency_ms + latency) / 1000)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"error_rate": self.error_rate, "error_statuses": list(self.error_statuses),
                    "latency_ms": self.latency_ms, "tenant_latency_ms": dict(self.tenant_latency_ms),
                    "fail_next": [asdict(r) for r in self.rules]}


def failure_response(rule: FailRule) -> Response:
    """What a failing call answers: 503 is plain text (Xero's maintenance page), the rest problem JSON."""
    if rule.status == 503:
        response = Response("Service Unavailable: the organisation is offline or under maintenance", 503,
                            content_type="text/plain; charset=utf-8")
    elif rule.status == 500:
        response = problem(500, "An error occurred", _XERO_500)
    else:
        try:
            title = HTTPStatus(rule.status).phrase
        except ValueError:
            title = "Error"
        response = problem(rule.status, title, title)
    if rule.retry_after is not None:
        response.headers["Retry-After"] = str(rule.retry_after)
    if rule.status == 429:
        response.headers["X-Rate-Limit-Problem"] = rule.problem or "minute"
        response.headers.setdefault("Retry-After", "1")
    return response
