"""cProfile inside a Celery pool process, for bench/map_throughput.py --profile: with BENCH_PROFILE_DIR set,
each pool process profiles its CPU time from its first `connector.map_invoice` on (the whole process: Celery's
own path around the task as well as the task) and writes its stats to `<dir>/<pid>.prof` every
DUMP_EVERY tasks. A worker imports it with `-I worker_profile` (bench/ on PYTHONPATH); without the
variable it does nothing."""

from __future__ import annotations

import cProfile
import os
import time
from pathlib import Path
from typing import Any

from celery.signals import task_postrun, task_prerun

DIRECTORY = os.environ.get("BENCH_PROFILE_DIR")
DUMP_EVERY = 200
_state: dict[str, Any] = {"profiler": None, "tasks": 0}

if DIRECTORY:

    @task_prerun.connect
    def _start(task: Any = None, **_: Any) -> None:
        if _state["profiler"] is None and getattr(task, "name", "") == "connector.map_invoice":
            # CPU time, not wall time: on a busy machine waiting would otherwise drown what costs
            profiler = _state["profiler"] = cProfile.Profile(time.process_time)
            profiler.enable()

    @task_postrun.connect
    def _dump(**_: Any) -> None:
        profiler: cProfile.Profile | None = _state["profiler"]
        if profiler is None:
            return
        _state["tasks"] += 1
        if _state["tasks"] % DUMP_EVERY == 0:
            profiler.dump_stats(str(Path(DIRECTORY) / f"{os.getpid()}.prof"))  # stops it: start it again
            profiler.enable()
