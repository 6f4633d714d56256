"""Hard time limits per queue, in one place: workers enforce them, services reason about them.

A task past its hard limit is killed by Celery; anything that must outlive a task (a delivery lease, a
poll lease, the sweeper's idea of "abandoned") is sized against these numbers.
"""

from __future__ import annotations

from typing import Final

#: Hard time limit in seconds of every task on each queue (the soft limit is 30 s earlier).
TIME_LIMITS: Final[dict[str, int]] = {"poll": 600, "map": 60, "batch": 600, "sftp": 900}
SOFT_LIMIT_MARGIN_SECONDS: Final = 30


def soft_time_limit(hard: float) -> float:
    """The soft limit (time to clean up) before a hard one: 30 s earlier, or a quarter earlier for a short
    hard limit, so a short limit still leaves the task most of its time."""
    return hard - min(SOFT_LIMIT_MARGIN_SECONDS, hard / 4)

#: Lease an attempt must still hold at the commit point beyond two SFTP timeouts (the rename and the look
#: after it); the delivery lease is validated to exceed the delivery time limit plus this margin.
COMMIT_FENCE_SLACK_SECONDS: Final = 5.0
