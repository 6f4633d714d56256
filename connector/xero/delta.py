"""The one delta reader for Xero's paged lists: bills, purchase orders, contacts and reconcile's full reads.

    for page in read_delta(get, settings, "Invoices", where='Type=="ACCPAY"', watermark=mark, lengths=...):
        store page.usable, then page.watermark(previous) in one transaction

Every request is `order=UpdatedDateUTC ASC` at the settings' page size, If-Modified-Since the watermark
minus the settings' overlap (domain.watermark), and the next request follows domain.paging: after a full
page, page 1 again from the last record's second. Each page is checked record by record (domain.intake)
before it is handed over, and the next request is made only once the caller asks for the next page, so a
caller that commits each page before it continues resumes, after any failure, from what it committed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from connector.domain.intake import Checked, ColumnLengths, Page, RecordKind, check_page, server_time
from connector.domain.paging import Cursor, next_cursor
from connector.domain.watermark import next_watermark, read_from
from connector.settings import Settings
from connector.xero.client import is_last_page
from connector.xero.dates import ms_to_datetime

#: One GET of a tenant: endpoint, query parameters, If-Modified-Since (None: none) -> Xero's answer.
Get = Callable[[str, dict[str, str | int], datetime | None], dict[str, Any]]

ORDER = "UpdatedDateUTC ASC"  # the paging rule needs it: a page's last record is its newest


@dataclass(frozen=True)
class DeltaPage:
    """One answer of a delta read, its records checked."""

    endpoint: str
    cursor: Cursor  # the request that fetched it
    body: dict[str, Any]  # Xero's whole answer
    checked: Page
    sync_started: datetime | None  # Xero's clock at the read's first answer: no watermark passes it
    following: Cursor | None = None  # the next request (None: this was the last page); a read resumes there

    @property
    def usable(self) -> list[dict[str, Any]]:
        return self.checked.usable

    @property
    def rejected(self) -> list[Checked]:
        return self.checked.rejected

    @property
    def newest(self) -> datetime | None:
        """The newest UpdatedDateUTC on the page, if any is readable."""
        stamps = self.checked.stamps
        return ms_to_datetime(max(stamps)) if stamps and max(stamps) > 0 else None

    def watermark(self, previous: datetime | None) -> datetime | None:
        """The endpoint's watermark once this page is committed (domain.watermark)."""
        return next_watermark(previous, self.newest, self.sync_started)


def read_delta(
    get: Get, settings: Settings, endpoint: str, *, lengths: ColumnLengths, where: str | None = None,
    watermark: datetime | None = None, params: Mapping[str, str | int] | None = None, start: Cursor | None = None,
) -> Iterator[DeltaPage]:
    """Every record of `endpoint` changed since `watermark` (less the overlap; None: everything), a page at
    a time. `params` adds the endpoint's own parameters (unitdp, includeArchived); `start`, a page's
    `following` request, resumes a read there."""
    page_size = settings.xero_page_size
    overlap = timedelta(seconds=settings.watermark_overlap_seconds)
    query: dict[str, str | int] = {**(params or {}), "order": ORDER, "pageSize": page_size}
    if where:
        query["where"] = where
    kind = RecordKind(endpoint)
    cursor: Cursor | None = start or Cursor(read_from(watermark, overlap), 1)
    started: datetime | None = None
    while cursor is not None:
        body = get(endpoint, {**query, "page": cursor.page}, cursor.since)
        checked = check_page(kind, body.get(endpoint), lengths)
        started = started or server_time(body.get("DateTimeUTC"))
        final = is_last_page(body, cursor.page, checked.count, page_size)
        following = next_cursor(cursor, page_size, checked.stamps, final=final)
        yield DeltaPage(endpoint, cursor, body, checked, started, following)
        cursor = following
