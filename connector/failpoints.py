"""Failpoints: named places where a fault test can make this process die, as a crash would.

Off unless `CONNECTOR_FAILPOINTS` names them (`deliver.after_rename=exit` or `...=raise`, comma
separated, each fired once per process unless suffixed `*`; `=exit@2` fires the second time the process
reaches that point instead of the first). Production never sets it; the chaos and
fault tests arm one to prove that a crash at exactly that point still ends with every bill once.
"""

from __future__ import annotations

import os
import sys
from typing import Final

ENV: Final = "CONNECTOR_FAILPOINTS"
KILLED_EXIT_CODE: Final = 137  # what a SIGKILL'd process reports

_fired: set[str] = set()
_reached: dict[str, int] = {}


class FailpointHit(BaseException):
    """Raised by an armed `raise` failpoint; a BaseException so no `except Exception` swallows it."""


def failpoint(name: str) -> None:
    """Die (or raise) here when the environment arms this point; otherwise do nothing, cheaply."""
    armed = os.environ.get(ENV)
    if not armed:
        return
    for entry in armed.split(","):
        point, _, action = entry.strip().partition("=")
        if point != name:
            continue
        _reached[name] = _reached.get(name, 0) + 1
        action, _, nth = action.partition("@")
        repeat = action.endswith("*")
        action = action.rstrip("*") or "exit"
        if (name in _fired and not repeat) or _reached[name] < int(nth or 1):
            continue
        _fired.add(name)
        if action == "raise":
            raise FailpointHit(name)
        sys.stderr.write(f"failpoint {name}: the process dies here\n")  # for the test reading the log
        sys.stderr.flush()
        os._exit(KILLED_EXIT_CODE)
