"""Faults on demand: targeted failures, random 500/503s (seeded), lost answers, latency, token expiry."""

from __future__ import annotations

import time

import pytest

from sandbox.xero import XeroSandbox
from tests.sandbox.conftest import Client

pytestmark = pytest.mark.sandbox


def test_fail_the_next_n_calls_to_a_path(client: Client) -> None:
    client.sandbox.faults.fail_next("/api.xro/2.0/Invoices", 2, 503)
    assert client.get("Organisation").status_code == 200
    first, second, third = (client.get("Invoices", page=1) for _ in range(3))
    assert (first.status_code, second.status_code, third.status_code) == (503, 503, 200)
    assert first.headers["Content-Type"].startswith("text/plain")
    assert "X-MinLimit-Remaining" in first.headers, "a failed call still went through the limiter"
    assert client.sandbox.stats()["faults_injected"] == 2
    assert client.sandbox.faults.snapshot()["fail_next"] == []


def test_faults_aimed_at_one_organisation_leave_the_others_alone(client: Client) -> None:
    """A slow or failing tenant beside healthy ones: latency and targeted failures for one tenant only."""
    slow, healthy = client.consent["tenant_ids"][:2]
    client.sandbox.faults.fail_next("/api.xro/2.0/Invoices", 5, 500, tenant=slow)
    client.sandbox.faults.configure(latency_ms=3000, tenant=slow)
    began = time.monotonic()
    assert client.get("Invoices", tenant=healthy).status_code == 200
    assert time.monotonic() - began < 2.0, "the healthy organisation's call does not carry the slow one's latency"
    began = time.monotonic()
    assert client.get("Invoices", tenant=slow).status_code == 500
    assert time.monotonic() - began >= 3.0
    assert client.sandbox.faults.snapshot()["tenant_latency_ms"] == {slow: 3000}
    client.sandbox.faults.clear()
    assert client.get("Invoices", tenant=slow).status_code == 200


def test_forced_429_carries_its_headers(client: Client) -> None:
    client.sandbox.faults.fail_next("/api.xro/2.0/", 1, 429, retry_after=3600, problem="day")
    answer = client.get("Contacts")
    assert answer.status_code == 429
    assert (answer.headers["X-Rate-Limit-Problem"], answer.headers["Retry-After"]) == ("day", "3600")


def test_error_rate_one_fails_every_api_call_but_not_identity(client: Client) -> None:
    client.sandbox.faults.configure(error_rate=1.0, error_statuses=[500])
    answer = client.get("Invoices")
    assert answer.status_code == 500
    assert answer.json()["Status"] == 500
    client.refresh()
    client.sandbox.faults.configure(error_rate=0)
    assert client.get("Invoices").status_code == 200


def _statuses(sandbox: XeroSandbox) -> list[int]:
    client = Client(sandbox, sandbox.consent())
    sandbox.faults.configure(error_rate=0.4)
    try:
        return [client.get("Organisation").status_code for _ in range(25)]
    finally:
        client.close()


def test_random_faults_are_seeded(fresh: XeroSandbox) -> None:
    with XeroSandbox(seed=7, tenants=1, bills=5) as twin:
        statuses = _statuses(fresh)
        assert statuses == _statuses(twin)
    assert {500, 503} <= set(statuses)
    assert 200 in statuses


def test_a_lost_refresh_answer_still_rotates_the_token(client: Client) -> None:
    client.sandbox.faults.fail_next("/connect/token", 1, 500, after=True)
    lost = client.token(grant_type="refresh_token", refresh_token=client.refresh_token)
    assert lost.status_code == 500
    retry = client.token(grant_type="refresh_token", refresh_token=client.refresh_token)
    assert retry.json() == {"error": "invalid_grant"}, "the sandbox gives no grace window (see choices.py)"


def test_added_latency(client: Client) -> None:
    client.sandbox.faults.configure(latency_ms=150)
    started = time.monotonic()
    assert client.get("Organisation").status_code == 200
    assert time.monotonic() - started >= 0.15
    client.sandbox.faults.clear()
    assert client.sandbox.faults.snapshot()["latency_ms"] == 0


def test_expire_tokens_now(client: Client) -> None:
    assert client.sandbox.expire_tokens() >= 1
    answer = client.get("Organisation")
    assert answer.status_code == 401
    assert answer.json()["Detail"].startswith("TokenExpired")
    client.refresh()
    assert client.get("Organisation").status_code == 200
