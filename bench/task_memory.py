"""Loaded into a worker by the benches (`celery worker -I task_memory`, bench/ on PYTHONPATH): after each
task whose run raised its process's peak resident memory (VmHWM), one line `<task> <pid> peak <before> ->
<after> MiB, rss <after> MiB, <seconds> s` is appended to $BENCH_TASK_MEMORY_LOG, so a bench shows which
work set each worker's peak."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from celery.signals import task_postrun, task_prerun

_LOG = os.environ.get("BENCH_TASK_MEMORY_LOG")
_before: dict[str, tuple[int, float]] = {}


def _status() -> tuple[int, int]:
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmHWM"].split()[0]), int(fields["VmRSS"].split()[0])


@task_prerun.connect
def _prerun(task_id: str = "", **_: Any) -> None:
    _before[task_id] = (_status()[0], time.perf_counter())


@task_postrun.connect
def _postrun(task_id: str = "", sender: Any = None, **_: Any) -> None:
    peak_before, started = _before.pop(task_id, (0, time.perf_counter()))
    peak, rss = _status()
    if _LOG and peak - peak_before >= 256:  # kB: a quarter MiB or more
        with open(_LOG, "a") as log:
            log.write(f"{sender.name} {os.getpid()} peak {peak_before / 1024:.1f} -> {peak / 1024:.1f} MiB, "
                      f"rss {rss / 1024:.1f} MiB, {time.perf_counter() - started:.1f} s\n")
