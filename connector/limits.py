"""Hard time limits per queue, in one place: workers enforce them, services reason about them.

A task past its hard limit is killed by Celery; anything that must outlive a task (a delivery lease, a
poll lease, the sweeper's idea of "abandoned") is sized against these numbers.
"""

from __future__ import annotations

from typing import Final

#: Hard time limit in seconds of every task on each queue (the soft limit is 30 s earlier).
TIME_LIMITS: Final[dict[str, int]] = {"poll": 600, "map": 120, "batch": 600, "sftp": 900}
SOFT_LIMIT_MARGIN_SECONDS: Final = 30
