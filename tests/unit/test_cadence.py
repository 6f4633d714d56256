"""A tenant's next poll falls in its own slot of its cadence (connector.domain.cadence)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from connector.domain.cadence import next_poll_slot, slot_offset_ms

NOW = datetime(2026, 3, 2, 9, 30, 17, 250000, tzinfo=UTC)
CADENCE = 900


def test_the_slot_is_the_same_every_cycle_and_every_poll_lands_on_it() -> None:
    first = next_poll_slot("tenant-a", CADENCE, NOW)
    second = next_poll_slot("tenant-a", CADENCE, first + timedelta(seconds=2))  # polled a tick after its slot
    assert second - first == timedelta(seconds=CADENCE)
    assert next_poll_slot("tenant-a", CADENCE, NOW) == first  # any worker, any restart: the same slot


def test_the_next_poll_is_between_half_a_cadence_and_one_and_a_half_away() -> None:
    for minutes in range(0, 31):
        now = NOW + timedelta(minutes=minutes, seconds=7)
        gap = (next_poll_slot("tenant-b", CADENCE, now) - now).total_seconds()
        assert CADENCE / 2 <= gap <= CADENCE * 1.5


def test_slots_spread_evenly_over_the_cadence() -> None:
    offsets = [slot_offset_ms(f"tenant-{n}", CADENCE) for n in range(3000)]
    tenths = [0] * 10
    for offset in offsets:
        assert 0 <= offset < CADENCE * 1000
        tenths[offset * 10 // (CADENCE * 1000)] += 1
    assert min(tenths) > 250, tenths
    assert max(tenths) < 350, tenths


def test_a_naive_time_gives_a_naive_slot() -> None:
    naive = NOW.replace(tzinfo=None)
    assert next_poll_slot("tenant-c", CADENCE, naive) == next_poll_slot("tenant-c", CADENCE, NOW).replace(tzinfo=None)
