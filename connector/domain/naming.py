"""Batch file names: tenant, sync time in UTC to the second, and a per-tenant sequence.

The sequence makes names unique even for two batches in one second, and names sort in delivery order
within a tenant because the timestamp and zero-padded sequence both only grow.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

_UNSAFE = re.compile(r"[^A-Za-z0-9-]+")


def batch_file_name(tenant_short_name: str, at: datetime, sequence: int, extension: str = "csv",
                    tenant_id: str = "") -> str:
    """Short names are for people and need not be unique: the tenant id's first 8 characters make it so."""
    tenant = _UNSAFE.sub("-", tenant_short_name).strip("-") or "tenant"
    if tenant_id:
        tenant = f"{tenant}-{_UNSAFE.sub('', tenant_id)[:8]}"
    stamp = at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"stampli_{tenant}_{stamp}_{sequence:06d}.{extension}"
