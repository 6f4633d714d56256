"""Beat's few entries: a cheap tick that asks the DB which tenants are due, the sweeper, the
scheduled token refresh, and the daily reconcile.

Per-tenant cadence lives in the database (tenants.next_poll_at), not one beat entry per tenant. Each
entry expires after its own interval, so ticks no worker picked up do not pile up.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from connector.settings import Settings

REFRESH_TICK_SECONDS = 300.0  # access tokens live 30 minutes and are refreshed in their last 5


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    tick = settings.beat_tick_seconds
    sweep = settings.sweep_interval_seconds
    reconcile = settings.reconcile_interval_seconds
    return {
        "dispatch-due-polls": {
            "task": "connector.dispatch_due_polls",
            "schedule": timedelta(seconds=tick),
            "options": {"expires": tick, "queue": "poll"},
        },
        "refresh-grants": {
            "task": "connector.refresh_grants",
            "schedule": timedelta(seconds=REFRESH_TICK_SECONDS),
            "options": {"expires": REFRESH_TICK_SECONDS, "queue": "poll"},
        },
        "sweep": {
            "task": "connector.sweep",
            "schedule": timedelta(seconds=sweep),
            "options": {"expires": sweep, "queue": "poll"},
        },
        # The only thing that finds a change Xero does not announce (an edit that moves no UpdatedDateUTC,
        # a GL recode): one reconcile per active tenant, its calls counted in the same rate budget as polls.
        "reconcile": {
            "task": "connector.reconcile_tenants",
            "schedule": timedelta(seconds=reconcile),
            "options": {"expires": reconcile, "queue": "poll"},
        },
    }
