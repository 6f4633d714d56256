"""Batch file names: tenant, sync time in UTC to the second, and a per-tenant sequence.

The sequence makes names unique even for two batches in one second, and names sort in delivery order
within a tenant because the timestamp and zero-padded sequence both only grow.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

_UNSAFE = re.compile(r"[^A-Za-z0-9-]+")


def batch_file_name(tenant_short_name: str, at: datetime, sequence: int, extension: str = "csv") -> str:
    tenant = _UNSAFE.sub("-", tenant_short_name).strip("-") or "tenant"
    stamp = at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"stampli_{tenant}_{stamp}_{sequence:06d}.{extension}"
