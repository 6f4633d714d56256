"""An empty task on the connector's own Celery app (same broker, routes, acks, prefetch and events), routed
to the map queue: what Celery moves through Redis per second with no work, the ceiling map throughput is
measured beside. A worker imports it with `-I celery_empty` (bench/ on PYTHONPATH)."""

from __future__ import annotations

import os

import redis

from workers.app import app

_counter = redis.Redis.from_url(os.environ["CONNECTOR_BROKER_URL"])
DONE_KEY = "bench:empty:done"


@app.task(name="bench.empty", bind=True)
def empty(self: object, tenant_id: str, invoice_id: str, version: int) -> None:
    """Takes a map message's arguments and only counts itself, so the bench sees when the last one ran."""
    _counter.incr(DONE_KEY)
