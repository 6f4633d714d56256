"""Watermark rules: move forward only after commit, never past Xero's clock, always re-read an overlap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connector.domain.watermark import next_watermark, read_from

T0 = datetime(2026, 11, 1, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("previous", "newest", "started", "expected"),
    [
        pytest.param(None, None, at(100), None, id="first-sync-saw-nothing"),
        pytest.param(None, at(50), at(100), at(50), id="first-sync"),
        pytest.param(at(10), at(50), at(100), at(50), id="moves-forward"),
        pytest.param(at(60), at(50), at(100), at(60), id="never-backwards"),
        pytest.param(at(10), None, at(100), at(10), id="idle-cycle-keeps-it"),
        pytest.param(at(10), at(150), at(100), at(100), id="never-past-xero-clock-at-start"),
        pytest.param(at(10), at(50), None, at(50), id="no-server-clock"),
    ],
)
def test_next_watermark(previous: datetime | None, newest: datetime | None, started: datetime | None,
                        expected: datetime | None) -> None:
    assert next_watermark(previous, newest, started) == expected


def test_reads_start_an_overlap_before_the_watermark_in_whole_seconds() -> None:
    assert read_from(at(300.789), timedelta(seconds=300)) == at(0)
    assert read_from(None, timedelta(seconds=300)) is None
