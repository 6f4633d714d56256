"""List-request mechanics shared by the endpoints: parameters, If-Modified-Since, order and paging.

Query parameter names are matched case-insensitively, as Xero does.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sandbox.xero import choices, msdate
from sandbox.xero.choices import DEFAULT_PAGE_SIZE, IDS_NOT_FOUND_AT, MAX_PAGE_SIZE
from sandbox.xero.where import Field

T = TypeVar("T")


class BadParameter(ValueError):
    """A parameter Xero would reject with a ValidationException."""


class TooManyIds(ValueError):
    """`IDs=` long enough that Xero answers 404 (its URL-length limit)."""


class Args:
    """Query arguments with case-insensitive names."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._values: dict[str, str] = {}
        for name, value in pairs:
            self._values.setdefault(name.lower(), value)

    def get(self, name: str) -> str | None:
        return self._values.get(name.lower())

    def flag(self, name: str) -> bool:
        return (self.get(name) or "").strip().lower() in ("true", "1", "yes")

    def csv(self, name: str) -> list[str] | None:
        raw = self.get(name)
        if raw is None or not raw.strip():
            return None
        return [part.strip().strip('"') for part in raw.split(",") if part.strip()]

    def guids(self, name: str) -> set[str] | None:
        """Comma-separated GUIDs, normalised; 53 or more raise TooManyIds."""
        values = self.csv(name)
        if values is None:
            return None
        if len(values) >= IDS_NOT_FOUND_AT:
            raise TooManyIds(name)
        try:
            return {str(uuid.UUID(v)) for v in values}
        except ValueError as exc:
            raise BadParameter(f"{name} must be a comma-separated list of GUIDs") from exc


@dataclass(frozen=True)
class Paging:
    page: int | None  # None: unpaged (every record, summary form)
    size: int
    asked_size: int | None

    @property
    def paged(self) -> bool:
        return self.page is not None


def paging(args: Args, *, paged_by_default: bool = False) -> Paging:
    """`page` turns paging on; `pageSize` above the maximum is clamped, below 1 falls back to the default."""
    asked = _int(args, "pageSize")
    page = _int(args, "page")
    if page is None and paged_by_default:
        page = 1
    size = DEFAULT_PAGE_SIZE if asked is None or asked < 1 else min(asked, MAX_PAGE_SIZE)
    return Paging(None if page is None else max(page, 1), size, asked)


def _int(args: Args, name: str) -> int | None:
    raw = args.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise BadParameter(f"{name} must be an integer") from exc


def modified_since(raw: str | None) -> datetime | None:
    """The If-Modified-Since header as a UTC instant; unreadable values are a BadParameter."""
    if raw is None or not raw.strip():
        return None
    try:
        return msdate.parse_if_modified_since(raw)
    except ValueError as exc:
        if not choices.REJECT_UNREADABLE_IF_MODIFIED_SINCE:
            return None
        raise BadParameter(f"If-Modified-Since is not a date: {raw!r}") from exc


def changed_since(records: Iterable[T], since: datetime | None, updated: Callable[[T], datetime]) -> list[T]:
    """Records whose UpdatedDateUTC, to the second, is at or after `since` to the second (inclusive)."""
    if since is None:
        return list(records)
    floor = msdate.floor_second(since)
    return [r for r in records if msdate.floor_second(updated(r)) >= floor]


def ordered(records: list[T], keys: Sequence[tuple[Field, bool]], ctx: Any) -> list[T]:
    """Stable multi-key sort; missing values sort last ascending. Ties keep creation order."""
    result = list(records)
    for field, descending in reversed(keys):
        get = field.get

        def key(record: T, get: Callable[[Any, Any], Any] = get) -> tuple[bool, Any]:
            value = get(record, ctx)
            return (value is None, 0 if value is None else value)

        result.sort(key=key, reverse=descending)
    return result


def page_of(records: Sequence[T], p: Paging) -> tuple[Sequence[T], dict[str, int] | None]:
    """The requested page and Xero's `pagination` object (None when unpaged)."""
    if p.page is None:
        whole = {"page": 1, "pageSize": len(records), "pageCount": 1, "itemCount": len(records)}
        return records, whole if choices.PAGINATION_ON_UNPAGED else None
    start = (p.page - 1) * p.size
    pagination = {"page": p.page, "pageSize": p.size, "pageCount": math.ceil(len(records) / p.size),
                  "itemCount": len(records)}
    return records[start:start + p.size], pagination
