"""Xero's `/Date(ms±hhmm)/` values and the If-Modified-Since header format."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

_MSDATE = re.compile(r"^/Date\((-?\d{1,18})([+-]\d{4})?\)/$")
# The ISO forms Xero also sends (the *String helpers, some apps' dates): a date, or a date and time with an
# optional fraction (Xero's .NET sends 7 digits) and zone; a time without a zone is UTC.
_ISO = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:T(\d{2}:\d{2}(?::\d{2})?)(?:\.(\d{1,7}))?(Z|[+-]\d{2}:?\d{2})?)?$")
# What a datetime can hold (years 1 to 9999): beyond it a date is refused here rather than overflow later.
MIN_MS = -62135596800000
MAX_MS = 253402300799999


def parse_ms(value: str) -> int:
    """Milliseconds since the epoch, UTC, of `/Date(ms+zzzz)/` (the offset is informational: the ms are
    already UTC) or an ISO date or date-time. ValueError when it is neither or outside years 1 to 9999."""
    match = _MSDATE.match(value)
    ms = int(match.group(1)) if match is not None else _iso_ms(value)
    if not MIN_MS <= ms <= MAX_MS:
        raise ValueError("is outside the years 1 to 9999")
    return ms


def _iso_ms(value: str) -> int:
    match = _ISO.match(value)
    if match is None:
        raise ValueError("is not a Xero date")
    day, clock, fraction, zone = match.groups()
    text = day + (f"T{clock}" if clock else "") + (f".{(fraction or '')[:6]:0<6}" if fraction else "")
    text += "+00:00" if not zone or zone == "Z" else zone
    try:
        moment = datetime.fromisoformat(text if clock else f"{day}T00:00{text[len(day):]}")
    except ValueError:
        raise ValueError("is not a calendar date") from None
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * 1000 + delta.microseconds // 1000


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
