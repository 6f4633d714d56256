"""When a tenant's next poll falls: in its own slot of its cadence, the same slot every cycle.

Tenants onboarded together are all polled at once first (an operator expects a new tenant to sync
straight away); were the next poll one cadence after the last, they would stay together forever, and
10,000 of them would fall due at one tick of every cycle. Instead each tenant owns a fixed offset within
its cadence, derived from its id (a hash, so slots spread evenly and survive restarts and re-onboarding),
and every poll sets the next one to the tenant's slot. A poll that came early (a webhook's wake) does not
move the slot: the next poll is the first slot at least half a cadence away, so no two polls come closer
than that on the cadence alone, and none further apart than one and a half cadences.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

_MS = timedelta(milliseconds=1)


def slot_offset_ms(tenant_id: str, interval_seconds: int) -> int:
    """The tenant's offset within its cadence, in milliseconds: stable, and uniform over the cadence."""
    digest = hashlib.sha256(tenant_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % max(1, interval_seconds * 1000)


def next_poll_slot(tenant_id: str, interval_seconds: int, now: datetime) -> datetime:
    """The first of the tenant's slots at least half a cadence after `now` (slots are counted from the
    Unix epoch, so every worker computes the same ones)."""
    if interval_seconds <= 0:
        return now
    period = interval_seconds * 1000
    epoch = datetime(1970, 1, 1, tzinfo=now.tzinfo)
    earliest = (now - epoch) // _MS + period // 2
    offset = slot_offset_ms(tenant_id, interval_seconds)
    cycles = -(-(earliest - offset) // period)  # ceiling division
    return epoch + (cycles * period + offset) * _MS
