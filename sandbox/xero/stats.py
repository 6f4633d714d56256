"""What the sandbox saw, for tests and benchmarks to assert on: calls by endpoint and status, 429s by
kind, token grants and refreshes, records served and the largest pageSize asked. Admin calls are not
counted.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict, deque
from typing import Any

TIMELINE_LIMIT = 100_000  # calls kept in the timeline; a first sync of 10,000 bills makes a few dozen


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clear()

    def reset(self) -> None:
        with self._lock:
            self._clear()

    def _clear(self) -> None:
        self._calls: defaultdict[str, Counter[int]] = defaultdict(Counter)
        self._limited: Counter[str] = Counter({"minute": 0, "day": 0, "concurrent": 0, "appminute": 0})
        self._tokens: Counter[str] = Counter()
        self._token_errors: Counter[str] = Counter()
        self._served: Counter[str] = Counter()
        self._largest_page_size: int | None = None
        self._faults = 0
        self._timeline: deque[tuple[float, str, int]] = deque(maxlen=TIMELINE_LIMIT)
        self._received: Counter[str] = Counter()

    def call(self, endpoint: str, status: int) -> None:
        with self._lock:
            self._calls[endpoint][status] += 1
            self._timeline.append((time.monotonic(), endpoint, status))

    def receive(self, path: str) -> None:
        """A request arrived (counted before any latency or answer, unlike `call`)."""
        with self._lock:
            self._received[path] += 1

    def received(self, path_prefix: str) -> int:
        """Requests arrived so far whose path starts with `path_prefix`, answered or not."""
        with self._lock:
            return sum(count for path, count in self._received.items() if path.startswith(path_prefix))

    def rate_limited(self, problem: str) -> None:
        with self._lock:
            self._limited[problem] += 1

    def token(self, grant_type: str, error: str | None = None) -> None:
        with self._lock:
            if error is None:
                self._tokens[grant_type] += 1
            else:
                self._token_errors[error] += 1

    def served(self, collection: str, count: int, asked_page_size: int | None) -> None:
        with self._lock:
            if collection:
                self._served[collection] += count
            if asked_page_size is not None:
                self._largest_page_size = max(self._largest_page_size or 0, asked_page_size)

    def fault(self) -> None:
        with self._lock:
            self._faults += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            by_endpoint = {name: {str(code): n for code, n in sorted(codes.items())}
                           for name, codes in sorted(self._calls.items())}
            return {
                "calls": sum(sum(codes.values()) for codes in self._calls.values()),
                "calls_by_endpoint": by_endpoint,
                "rate_limited": dict(self._limited),
                "token_grants": dict(self._tokens),
                "token_refreshes": self._tokens["refresh_token"],
                "token_errors": dict(self._token_errors),
                "records_served": dict(self._served),
                "records_served_total": sum(self._served.values()),
                "largest_page_size_asked": self._largest_page_size,
                "faults_injected": self._faults,
            }

    def timeline(self) -> list[tuple[float, str, int]]:
        """Every counted call as (monotonic seconds, endpoint, status), oldest first: a test can check that
        the caller waited Retry-After after a 429 instead of trusting its own logs."""
        with self._lock:
            return list(self._timeline)
