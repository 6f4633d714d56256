"""Failpoints fire where a fault test arms them: once, every time (`*`), or only the n-th time the process
reaches the point (`@n`), so a test can kill a worker in the middle of a loop (its second document)."""

from __future__ import annotations

import pytest

from connector import failpoints
from connector.failpoints import FailpointHit, failpoint


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(failpoints, "_fired", set())
    monkeypatch.setattr(failpoints, "_reached", {})


def hits(times: int) -> list[bool]:
    fired = []
    for _ in range(times):
        try:
            failpoint("deliver.document_before_rename")
        except FailpointHit:
            fired.append(True)
        else:
            fired.append(False)
    return fired


@pytest.mark.parametrize(("armed", "fired"), [
    pytest.param("deliver.document_before_rename=raise", [True, False, False, False], id="once"),
    pytest.param("deliver.document_before_rename=raise*", [True, True, True, True], id="every-time"),
    pytest.param("deliver.document_before_rename=raise@2", [False, True, False, False], id="the-second-time"),
    pytest.param("deliver.document_before_rename=raise*@3", [False, False, True, True], id="from-the-third"),
    pytest.param("deliver.after_rename=raise", [False, False, False, False], id="another-point"),
])
def test_a_failpoint_fires_where_and_when_it_is_armed(monkeypatch: pytest.MonkeyPatch, armed: str,
                                                       fired: list[bool]) -> None:
    monkeypatch.setenv(failpoints.ENV, armed)
    assert hits(4) == fired
