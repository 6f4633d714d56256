"""Delta paging by timestamp: full pages move If-Modified-Since forward, never loop, never skip."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connector.domain.paging import Cursor, next_cursor

T0 = datetime(2026, 11, 1, tzinfo=UTC)
MS0 = int(T0.timestamp() * 1000)


def test_a_short_page_is_the_last() -> None:
    assert next_cursor(Cursor(None, 1), 3, [MS0, MS0 + 10]) is None


def test_a_full_page_asks_again_from_its_last_second_at_page_one() -> None:
    cursor = next_cursor(Cursor(None, 1), 3, [MS0, MS0 + 1_500, MS0 + 2_700])
    assert cursor == Cursor(datetime(2026, 11, 1, 0, 0, 2, tzinfo=UTC), 1)


def test_a_full_page_inside_one_second_moves_to_the_next_offset() -> None:
    since = datetime(2026, 11, 1, tzinfo=UTC)
    assert next_cursor(Cursor(since, 1), 3, [MS0 + 1, MS0 + 5, MS0 + 999]) == Cursor(since, 2)


@pytest.mark.parametrize("page", [1, 2, 7])
def test_it_never_repeats_the_request_just_made(page: int) -> None:
    since = datetime(2026, 11, 1, 0, 0, 2, tzinfo=UTC)
    following = next_cursor(Cursor(since, page), 2, [MS0 + 2_000, MS0 + 2_900])
    assert following != Cursor(since, page)


def simulate(records: list[int], page_size: int, edit_after_first_page: int | None = None) -> set[int]:
    """A toy Xero: records are (id → updated ms); one is edited (moves to the end) after page one."""
    store = dict(enumerate(records))
    seen: set[int] = set()
    cursor: Cursor | None = Cursor(None, 1)
    requests = 0
    while cursor is not None:
        requests += 1
        since_ms = int(cursor.since.timestamp() * 1000) if cursor.since else -1
        ordered = sorted((ms, rid) for rid, ms in store.items() if ms >= since_ms)
        page = ordered[(cursor.page - 1) * page_size: cursor.page * page_size]
        seen |= {rid for _, rid in page}
        if requests == 1 and edit_after_first_page is not None:
            store[edit_after_first_page] = max(store.values()) + 5_000
        cursor = next_cursor(cursor, page_size, [ms for ms, _ in page])
    return seen


def test_a_record_edited_while_paging_does_not_hide_another() -> None:
    records = [MS0 + i * 1_000 for i in range(10)]
    assert simulate(records, page_size=3, edit_after_first_page=1) == set(range(10))


def test_many_records_in_one_second_are_all_read() -> None:
    records = [MS0 + i for i in range(7)] + [MS0 + 5_000 + i for i in range(4)]
    assert simulate(records, page_size=3) == set(range(11))
