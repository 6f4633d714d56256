"""Xero's JSON date forms: `/Date(ms+0000)/`, the `*String` helpers and If-Modified-Since parsing.

Date-only fields are midnight UTC of the calendar date; timestamps are UTC instants with milliseconds.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from email.utils import parsedate_to_datetime

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the Unix epoch, exact (no float rounding)."""
    delta = moment.astimezone(UTC) - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1000 + delta.microseconds // 1000


def from_epoch_ms(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def date_field(day: date) -> str:
    """A date-only field such as `Date` or `DueDate`: midnight UTC with the `+0000` suffix."""
    return f"/Date({epoch_ms(datetime.combine(day, time(), UTC))}+0000)/"


def timestamp_field(moment: datetime) -> str:
    """A record timestamp such as `UpdatedDateUTC`, with milliseconds and the `+0000` suffix."""
    return f"/Date({epoch_ms(moment)}+0000)/"


def envelope_field(moment: datetime) -> str:
    """The envelope's `DateTimeUTC`, which Xero sends without an offset suffix."""
    return f"/Date({epoch_ms(moment)})/"


def date_string(day: date) -> str:
    """The `DateString` / `DueDateString` helper: ISO without a zone, e.g. `2019-03-12T00:00:00`."""
    return f"{day.isoformat()}T00:00:00"


def utc_string(moment: datetime) -> str:
    """The `UpdatedDateUTCString` helper: whole seconds with a `Z`, e.g. `2019-03-05T18:59:06Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse(value: str) -> datetime:
    """Read a `/Date(ms[+hhmm])/` value as a UTC instant; the suffix is informational (ms are UTC)."""
    match = _MS_DATE.match(value)
    if match is None:
        raise ValueError(f"not a Xero /Date()/ value: {value!r}")
    return from_epoch_ms(int(match.group(1)))


def parse_if_modified_since(value: str) -> datetime:
    """Read an If-Modified-Since header: ISO 8601 (zone-less means UTC) or an RFC 1123 HTTP date.

    Raises ValueError for anything else.
    """
    text = value.strip()
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError) as exc:
            raise ValueError(f"unreadable If-Modified-Since: {value!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def floor_second(moment: datetime) -> datetime:
    """Drop sub-second digits: Xero compares If-Modified-Since to the second."""
    return moment.replace(microsecond=0)
