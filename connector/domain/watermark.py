"""Where the next delta read starts. Pure rules, kept apart from I/O so they can be tested as a table.

- The watermark moves only to an `UpdatedDateUTC` that was committed, never backwards.
- It never passes Xero's own clock at the start of the sync (`DateTimeUTC` of the first answer), so a
  record stamped while we paged is read again next time rather than skipped.
- Every read starts `overlap` before the watermark (whole seconds: Xero compares to the second); the
  re-seen records are no-ops because their version has not changed.
"""

from __future__ import annotations

from datetime import datetime, timedelta


def next_watermark(previous: datetime | None, newest_committed: datetime | None,
                   sync_started: datetime | None) -> datetime | None:
    candidate = newest_committed
    if candidate is not None and sync_started is not None:
        candidate = min(candidate, sync_started)
    if previous is None:
        return candidate
    if candidate is None:
        return previous
    return max(previous, candidate)


def read_from(watermark: datetime | None, overlap: timedelta) -> datetime | None:
    """The If-Modified-Since of the next read: watermark minus overlap, rounded down to the second."""
    if watermark is None:
        return None
    return (watermark - overlap).replace(microsecond=0)
