"""A file's delivery backs off 5 s doubling with each failed try, up to a cap (15 minutes unless the operator
sets CONNECTOR_DELIVERY_BACKOFF_CAP_SECONDS): every kill, duplicate message and outage is a failed try of some
file, so without a cap a file a busy day failed often waits far longer than the server stayed down."""

from __future__ import annotations

from functools import partial

from connector.domain.delivery import (
    AttemptFacts,
    BatchState,
    Commit,
    Failure,
    delivery_backoff,
    settle,
)


def test_the_wait_doubles_from_five_seconds_up_to_fifteen_minutes_by_default() -> None:
    assert 2.5 <= delivery_backoff(1) <= 5
    assert 20 <= delivery_backoff(4) <= 40
    assert all(450 <= delivery_backoff(n) <= 900 for n in range(9, 30))


def test_a_lower_cap_bounds_every_wait() -> None:
    assert all(delivery_backoff(n, cap=20) <= 20 for n in range(1, 30))


def test_a_failed_try_is_scheduled_within_the_cap_it_is_settled_with() -> None:
    facts = AttemptFacts(batch_state=BatchState.STAGED, owns_lease=True, commit=Commit.NOT_REACHED,
                         failure=Failure.TRANSIENT, attempts=12)
    capped = settle(facts, backoff=partial(delivery_backoff, cap=20))
    assert capped.retry_in is not None
    assert capped.retry_in <= 20
    uncapped = settle(facts)
    assert uncapped.retry_in is not None
    assert uncapped.retry_in >= 450
