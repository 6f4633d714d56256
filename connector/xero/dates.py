"""Xero's `/Date(ms±hhmm)/` values and the If-Modified-Since header format."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

_MSDATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")


def parse_ms(value: str) -> int:
    """Milliseconds since the epoch, UTC. The offset suffix is informational: the ms are already UTC."""
    match = _MSDATE.match(value)
    if match is None:
        raise ValueError(f"not a Xero date: {value!r}")
    return int(match.group(1))


def ms_or_zero(value: object) -> int:
    """For stored or echoed stamps where a missing or unreadable one simply means "unknown" (0)."""
    try:
        return parse_ms(str(value)) if value else 0
    except ValueError:
        return 0


def parse_instant(value: str) -> datetime:
    return datetime.fromtimestamp(parse_ms(value) / 1000, tz=UTC)


def parse_date(value: str) -> date:
    """Date-only fields are midnight UTC: take the UTC date, never convert to local time first."""
    return parse_instant(value).date()


def if_modified_since(instant: datetime) -> str:
    """Xero compares to the second: send whole seconds (rounded down), UTC, no zone suffix."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def ms_to_datetime(ms: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
