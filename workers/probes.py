"""Probe files for Kubernetes: cheap to check, and true to what matters.

- ready: written when the worker has connected and is consuming, removed at shutdown;
- alive: touched on every worker heartbeat (every 2 s). Heartbeats come from the consumer's event loop,
  so a worker whose loop is stuck (a half-open broker connection, a wedged consumer) stops touching it.
A probe is then `test -e ready` and "alive changed in the last minute": no Python start-up, no broker
round trip, never a false failure because Redis is briefly away.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from celery.signals import heartbeat_sent, worker_ready, worker_shutdown

PROBE_DIR = Path(os.environ.get("CONNECTOR_PROBE_DIR", "/tmp"))  # noqa: S108 (a pod-local emptyDir)
READY = PROBE_DIR / "celery-ready"
ALIVE = PROBE_DIR / "celery-alive"


def _touch(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    except OSError:
        pass  # a probe file must never take a worker down


@worker_ready.connect
def _ready(**_: Any) -> None:
    _touch(READY)
    _touch(ALIVE)


@heartbeat_sent.connect
def _alive(**_: Any) -> None:
    _touch(ALIVE)


@worker_shutdown.connect
def _stopping(**_: Any) -> None:
    READY.unlink(missing_ok=True)
