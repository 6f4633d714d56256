"""Loaded into a test's worker (`celery worker -I tests.support.sent_trail`): after each task, the number of
sent messages its request still holds (Celery's `request.children`) is kept in the broker's Redis under
`test:trail:<task name>` (the largest seen), and `test:ran:<task name>` counts the tasks that ran."""

from __future__ import annotations

import os
from typing import Any

import redis
from celery.signals import task_postrun

_redis = redis.Redis.from_url(os.environ["CONNECTOR_BROKER_URL"])


@task_postrun.connect
def _record_trail(sender: Any = None, **_: Any) -> None:
    held = len(sender.request.children or [])
    _redis.incr(f"test:ran:{sender.name}")
    if held > int(_redis.get(f"test:trail:{sender.name}") or 0):
        _redis.set(f"test:trail:{sender.name}", held)
