"""Each 429 kind with its headers, on a frozen or advanced sandbox clock."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
import requests

from sandbox.xero.clock import SandboxClock
from sandbox.xero.ratelimit import Limits, RateLimiter
from tests.sandbox.conftest import Client

pytestmark = pytest.mark.sandbox


def _problem(answer: requests.Response) -> tuple[int, str | None, str | None]:
    return answer.status_code, answer.headers.get("X-Rate-Limit-Problem"), answer.headers.get("Retry-After")


def test_sixty_a_minute_then_429_minute(client: Client) -> None:
    client.sandbox.set_time_scale(0)
    remaining = [int(client.get("Organisation").headers["X-MinLimit-Remaining"]) for _ in range(60)]
    assert remaining == list(range(59, -1, -1))
    refused = client.get("Organisation")
    assert _problem(refused) == (429, "minute", "60")
    assert refused.headers["X-MinLimit-Remaining"] == "0"
    assert refused.headers["X-DayLimit-Remaining"] == "4940"
    client.sandbox.advance(30)
    assert _problem(client.get("Organisation")) == (429, "minute", "30")
    client.sandbox.advance(30)
    assert client.get("Organisation").status_code == 200
    assert client.sandbox.stats()["rate_limited"]["minute"] == 2


def test_the_minute_window_rolls(client: Client) -> None:
    client.sandbox.set_time_scale(0)
    for _ in range(30):
        client.get("Organisation")
    client.sandbox.advance(40)
    for _ in range(30):
        assert client.get("Organisation").status_code == 200
    assert _problem(client.get("Organisation")) == (429, "minute", "20")
    client.sandbox.advance(20)  # the first 30 calls leave the window
    assert client.get("Organisation").headers["X-MinLimit-Remaining"] == "29"


def test_day_limit_and_its_retry_after(client: Client) -> None:
    client.sandbox.set_time_scale(0)
    client.sandbox.set_limits(day=3)
    for expected in ("2", "1", "0"):
        assert client.get("Organisation").headers["X-DayLimit-Remaining"] == expected
    client.sandbox.advance(1000)
    refused = client.get("Organisation")
    assert _problem(refused) == (429, "day", str(86400 - 1000))
    other = client.get("Organisation", tenant=client.sandbox.tenant_ids[1])
    assert other.status_code == 200, "limits are per tenant"
    client.sandbox.advance(86400 - 1000)
    client.refresh()  # the access token died long ago
    assert client.get("Organisation").headers["X-DayLimit-Remaining"] == "2"


def test_five_in_flight_then_429_concurrent(client: Client) -> None:
    client.sandbox.faults.configure(latency_ms=400)
    start = threading.Barrier(6)
    answers: list[requests.Response] = []
    lock = threading.Lock()

    def call() -> None:
        session = requests.Session()
        start.wait()
        answer = session.get(f"{client.urls['api']}/Organisation", timeout=10, headers={
            "Authorization": f"Bearer {client.access_token}", "xero-tenant-id": client.tenant_id})
        session.close()
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    refused = [a for a in answers if a.status_code == 429]
    assert len(refused) == 1
    assert _problem(refused[0]) == (429, "concurrent", "1")
    assert sorted(a.status_code for a in answers) == [200] * 5 + [429]
    assert client.sandbox.stats()["rate_limited"]["concurrent"] == 1


def test_app_minute_limit_spans_tenants(client: Client) -> None:
    client.sandbox.set_time_scale(0)
    client.sandbox.set_limits(app_minute=4)
    first, second = client.sandbox.tenant_ids
    for tenant in (first, second, first, second):
        assert client.get("Organisation", tenant=tenant).status_code == 200
    refused = client.get("Organisation", tenant=second)
    assert _problem(refused) == (429, "appminute", "60")
    assert refused.headers["X-AppMinLimit-Remaining"] == "0"
    assert refused.headers["X-MinLimit-Remaining"] == "58"


def test_limit_headers_are_on_every_api_answer(client: Client) -> None:
    for answer in (client.get("Invoices", page=1), client.get("Invoices", where="nonsense =="),
                   client.get("Invoices/00000000-0000-0000-0000-000000000000")):
        assert {"X-MinLimit-Remaining", "X-DayLimit-Remaining", "X-AppMinLimit-Remaining"} <= set(answer.headers)
    assert client.get("Invoices", tenant=None).status_code == 403
    assert client.sandbox.stats()["calls_by_endpoint"]["GET /api.xro/2.0/Invoices"] == {"200": 1, "400": 1, "403": 1}


def test_rejected_calls_do_not_count() -> None:
    clock = SandboxClock(datetime(2026, 1, 1, tzinfo=UTC), time_scale=0)
    limiter = RateLimiter(clock, Limits(minute=2, day=100))
    assert limiter.acquire("t", "app").allowed
    assert limiter.acquire("t", "app").allowed
    for _ in range(5):
        verdict = limiter.acquire("t", "app")
        assert (verdict.problem, verdict.day_remaining) == ("minute", 98)
    limiter.release("t")
    clock.advance(60)
    assert limiter.acquire("t", "app").minute_remaining == 1
