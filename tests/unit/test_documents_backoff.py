"""A document Xero keeps failing to serve is asked for again on a backoff: at the next poll after the
first failure, then 15 minutes on, doubling, never more than a day apart."""

from __future__ import annotations

from datetime import timedelta

from connector.domain.backoff import documents_retry_wait


def test_the_first_failure_is_tried_again_at_the_next_poll() -> None:
    assert documents_retry_wait(1) == timedelta(0)


def test_each_failure_after_doubles_the_wait_from_a_quarter_of_an_hour() -> None:
    assert [documents_retry_wait(n) for n in (2, 3, 4, 5)] == [timedelta(minutes=m) for m in (15, 30, 60, 120)]


def test_the_wait_never_passes_a_day_however_many_failures() -> None:
    assert documents_retry_wait(9) == timedelta(days=1)  # 15 minutes doubled seven times is 32 hours
    assert documents_retry_wait(10_000) == timedelta(days=1)


def test_a_broken_document_is_asked_for_eight_times_in_its_first_day_then_once_a_day() -> None:
    """Polls every 15 minutes; the first failure waits for the next poll."""
    poll, at = timedelta(minutes=15), timedelta(0)
    tries: list[timedelta] = []
    while at < timedelta(days=3):
        tries.append(at)
        at += max(documents_retry_wait(len(tries)), poll)
    assert [t // timedelta(minutes=1) for t in tries if t < timedelta(days=1)] == [0, 15, 30, 60, 120, 240, 480, 960]
    assert [t // timedelta(hours=1) for t in tries if t >= timedelta(days=1)] == [32, 56]
