"""Which running workers a key rotation would strand. Pure.

After `keys rotate` every secret is encrypted under the newest key, so a worker that does not hold that
key can no longer read a token or an SFTP password: each delivery and each poll it takes fails. A worker
counts as running while its last heartbeat record is recent; one that stopped cleanly removed its record.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

#: How often a worker writes its key ids with its heartbeat, and how long after the last one it counts
#: as running (three missed records: a worker killed without a clean stop stops counting after that).
RECORD_EVERY = timedelta(seconds=30)
LIVE_FOR = 3 * RECORD_EVERY


@dataclass(frozen=True)
class WorkerKeys:
    worker: str                  # Celery node name, e.g. poll@host
    key_ids: tuple[str, ...]     # fingerprints of the keys it was started with, newest first
    started_at: datetime         # when it first recorded this key list
    heartbeat_at: datetime

    def live(self, now: datetime) -> bool:
        return now - self.heartbeat_at <= LIVE_FOR


def stranded_by_rotation(workers: Iterable[WorkerKeys], newest_key_id: str, now: datetime) -> list[WorkerKeys]:
    """The running workers that lack the key a rotation would encrypt everything under."""
    return [w for w in workers if w.live(now) and newest_key_id not in w.key_ids]
