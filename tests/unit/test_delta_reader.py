"""The one Xero delta reader: its requests follow the paging and watermark rules, its page size and overlap
come from the settings alone, and it asks for the next page only when the caller is done with this one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from connector.crypto import Vault
from connector.settings import Settings, load_settings
from connector.store.intake import column_lengths
from connector.xero.delta import read_delta

T0 = datetime(2026, 11, 1, 12, 0, 0, tzinfo=UTC)
MS0 = int(T0.timestamp() * 1000)
KEY = Vault.new_key()


def settings(tmp_path: Path, page_size: int, overlap: int) -> Settings:
    return load_settings({"CONNECTOR_FERNET_KEYS": KEY, "CONNECTOR_XERO_PAGE_SIZE": str(page_size),
                          "CONNECTOR_WATERMARK_OVERLAP_SECONDS": str(overlap)}, base_dir=tmp_path)


def contact(n: int, ms: int) -> dict[str, Any]:
    return {"ContactID": f"c0000000-0000-4000-8000-{n:012d}", "Name": f"Vendor {n}",
            "UpdatedDateUTC": f"/Date({ms}+0000)/"}


class FakeXero:
    """Contacts, each stamped; answers like Xero: If-Modified-Since to the second, inclusive, by page."""

    def __init__(self, records: list[Any]) -> None:
        self.records = records
        self.requests: list[tuple[str, dict[str, str | int], datetime | None]] = []

    def get(self, endpoint: str, params: dict[str, str | int], since: datetime | None) -> dict[str, Any]:
        self.requests.append((endpoint, dict(params), since))
        floor = -1 if since is None else int(since.timestamp()) * 1000
        found = [r for r in self.records if not isinstance(r, dict)
                 or int(r["UpdatedDateUTC"][6:-7]) // 1000 * 1000 >= floor]
        size, page = int(params["pageSize"]), int(params["page"])
        return {"DateTimeUTC": f"/Date({MS0 + 3_600_000}+0000)/",
                endpoint: found[(page - 1) * size: page * size]}


def test_every_request_is_ordered_by_update_at_the_settings_page_size_since_the_watermark_less_the_overlap(
    tmp_path: Path,
) -> None:
    xero = FakeXero([contact(n, MS0 + n * 1000) for n in range(5)])
    pages = list(read_delta(xero.get, settings(tmp_path, 2, 60), "Contacts", where="IsSupplier==true",
                            watermark=T0 + timedelta(seconds=30, milliseconds=500),
                            params={"includeArchived": "true"}, lengths=column_lengths()))
    endpoint, params, since = xero.requests[0]
    assert endpoint == "Contacts"
    assert params == {"includeArchived": "true", "order": "UpdatedDateUTC ASC", "pageSize": 2, "page": 1,
                      "where": "IsSupplier==true"}
    assert since == T0 - timedelta(seconds=30)  # 60 s before the watermark, to the second
    assert [len(p.usable) for p in pages] == [2, 2, 2, 2, 1]  # each full page re-read from its last second


def test_after_a_full_page_it_asks_again_from_page_one_at_the_last_records_second(tmp_path: Path) -> None:
    xero = FakeXero([contact(n, MS0 + n * 1000) for n in range(4)])
    list(read_delta(xero.get, settings(tmp_path, 2, 0), "Contacts", lengths=column_lengths()))
    assert [(p["page"], since) for _, p, since in xero.requests] == [
        (1, None), (1, T0 + timedelta(seconds=1)), (1, T0 + timedelta(seconds=2)), (1, T0 + timedelta(seconds=3))]


def test_the_next_request_waits_until_the_caller_asks_for_the_next_page(tmp_path: Path) -> None:
    xero = FakeXero([contact(n, MS0 + n * 1000) for n in range(4)])
    pages = read_delta(xero.get, settings(tmp_path, 2, 0), "Contacts", lengths=column_lengths())
    next(pages)
    assert len(xero.requests) == 1  # the caller commits the page before anything more is read


def test_a_pages_watermark_is_its_newest_record_never_past_xeros_clock_at_the_first_answer(tmp_path: Path) -> None:
    xero = FakeXero([contact(1, MS0 + 1_000), contact(2, MS0 + 7_200_000)])  # one stamped after the read began
    page = next(read_delta(xero.get, settings(tmp_path, 10, 0), "Contacts", lengths=column_lengths()))
    assert page.watermark(None) == T0 + timedelta(hours=1)
    assert page.watermark(T0 + timedelta(hours=2)) == T0 + timedelta(hours=2)  # never backwards


def test_a_record_the_intake_check_refuses_is_handed_over_apart_and_still_counts_for_paging(tmp_path: Path) -> None:
    bad = "not an object"
    xero = FakeXero([contact(1, MS0), bad, contact(3, MS0 + 2_000)])
    pages = list(read_delta(xero.get, settings(tmp_path, 3, 0), "Contacts", lengths=column_lengths()))
    assert len(pages[0].usable) == 2
    assert len(pages[0].rejected) == 1
    assert len(xero.requests) == 2  # the page was full: one more request
