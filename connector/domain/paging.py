"""Paging a delta read by its own timestamps, so records that change while we page are never skipped.

Offset paging over `order=UpdatedDateUTC ASC` shifts when a record on an earlier page is edited mid-run:
it jumps to the end and the record after the page boundary slides into a page already read, and is
lost. Instead, after each full page the next request asks again from page 1 with If-Modified-Since set to
the last record's second (Xero compares to the second, inclusive): edited records come back at the end,
and the few re-read records of that second are no-ops. Only a page that lies wholly inside one second
falls back to the next offset, since asking from that second again would return the same page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from connector.xero.dates import ms_to_datetime


@dataclass(frozen=True)
class Cursor:
    since: datetime | None  # If-Modified-Since of the request
    page: int


class PagingLoop(RuntimeError):
    """A bug guard: the next request would repeat the one just made."""


def next_cursor(cursor: Cursor, page_size: int, updated_ms: list[int], *, final: bool = False) -> Cursor | None:
    """Where the next request starts, or None when this page was the last (short, or `final` by Xero's count)."""
    if final or len(updated_ms) < page_size:
        return None
    first, last = _second(min(updated_ms)), _second(max(updated_ms))
    following = Cursor(cursor.since, cursor.page + 1) if first == last else Cursor(last, 1)
    if following == cursor:
        raise PagingLoop(f"paging would repeat {cursor}")
    return following


def _second(ms: int) -> datetime:
    return ms_to_datetime(ms).replace(microsecond=0)
