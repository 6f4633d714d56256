"""The Xero rate budget, shared through the real Redis: refuse before sending, never after."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
import redis

from connector.errors import XeroRateLimited
from connector.xero.budget import Limits, LocalLeases, RateBudget
from connector.xero.redis_leases import RedisLeases

SMALL = Limits(per_minute=6, per_day=10, app_per_minute=100, in_flight=2, lease_seconds=0.5)


@pytest.fixture
def budgets(redis_url: str) -> Iterator[tuple[RateBudget, RateBudget]]:
    """Two budgets over one Redis, as two workers on two pods would hold."""
    client = redis.Redis.from_url(redis_url)
    yield RateBudget(redis_url, RedisLeases(client), SMALL), RateBudget(redis_url, RedisLeases(client), SMALL)
    client.close()


def spend(budget: RateBudget, tenant: str) -> None:
    with budget.call(tenant):
        pass


def test_the_minute_budget_is_shared_by_every_worker(budgets: tuple[RateBudget, RateBudget]) -> None:
    first, second = budgets
    for _ in range(3):
        spend(first, "t-1")
        spend(second, "t-1")
    with pytest.raises(XeroRateLimited) as refused:
        spend(second, "t-1")
    assert refused.value.problem == "minute"
    assert 0 < (refused.value.retry_after or 0) <= 60
    spend(first, "t-2")  # another tenant has its own budget


def test_at_most_the_in_flight_limit_run_at_once_and_a_dead_holder_frees_its_slot(
    budgets: tuple[RateBudget, RateBudget], redis_url: str,
) -> None:
    first, second = budgets
    with ExitStack() as stack:
        stack.enter_context(first.call("t-1"))
        stack.enter_context(second.call("t-1"))
        with pytest.raises(XeroRateLimited) as refused:
            spend(first, "t-1")
        assert refused.value.problem == "concurrent"
    spend(first, "t-1")
    # A worker killed mid-call never releases; its lease expires instead.
    leases = RedisLeases(redis.Redis.from_url(redis_url))
    assert leases.acquire("inflight:t-3", 1, 0.3)
    assert leases.acquire("inflight:t-3", 1, 0.3) is None
    time.sleep(0.4)
    assert leases.acquire("inflight:t-3", 1, 0.3)


@pytest.mark.parametrize(
    ("problem", "other_tenant_blocked"),
    [("day", False), ("minute", False), ("appminute", True)],
)
def test_a_429_blocks_the_tenant_or_for_appminute_every_tenant(
    budgets: tuple[RateBudget, RateBudget], problem: str, other_tenant_blocked: bool,
) -> None:
    first, second = budgets
    first.rejected("t-1", problem, retry_after=30)
    with pytest.raises(XeroRateLimited) as refused:
        spend(second, "t-1")
    assert (refused.value.retry_after or 0) > 25
    if other_tenant_blocked:
        with pytest.raises(XeroRateLimited):
            spend(second, "t-2")
    else:
        spend(second, "t-2")


def test_xero_counters_at_zero_hold_the_tenant_back(budgets: tuple[RateBudget, RateBudget]) -> None:
    first, second = budgets
    first.observe("t-1", {"X-MinLimit-Remaining": "0", "X-DayLimit-Remaining": "100"})
    with pytest.raises(XeroRateLimited) as refused:
        spend(second, "t-1")
    assert refused.value.problem == "minute"


def test_the_embedded_budget_works_without_redis() -> None:
    budget = RateBudget("memory://", LocalLeases(), SMALL)
    for _ in range(6):
        spend(budget, "t-1")
    with pytest.raises(XeroRateLimited):
        spend(budget, "t-1")
