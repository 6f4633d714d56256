"""What each reconcile found, kept as operational events so `connector status` can show the last one
per tenant (a scheduled reconcile runs in a worker, where nobody reads its output)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connector.store.models import OperationalEvent

RECONCILED = "reconciled"
RECONCILE_FAILED = "reconcile_failed"


@dataclass(frozen=True)
class LastReconcile:
    tenant_id: str
    at: datetime
    ok: bool
    found: dict[str, Any]  # counts when ok, {"error": ...} when not


def record_reconcile(session: Session, tenant_id: str, *, ok: bool, found: dict[str, Any], at: datetime) -> None:
    session.add(OperationalEvent(kind=RECONCILED if ok else RECONCILE_FAILED, tenant_id=tenant_id, at=at,
                                 message=json.dumps(found, sort_keys=True)[:8000]))


def last_reconciles(session: Session, tenant_id: str | None = None) -> list[LastReconcile]:
    """The newest reconcile event of each tenant (or of one)."""
    kinds = (RECONCILED, RECONCILE_FAILED)
    newest = select(OperationalEvent.tenant_id, func.max(OperationalEvent.id).label("id")) \
        .where(OperationalEvent.kind.in_(kinds)).group_by(OperationalEvent.tenant_id)
    if tenant_id is not None:
        newest = newest.where(OperationalEvent.tenant_id == tenant_id)
    ids = [row.id for row in session.execute(newest)]
    if not ids:
        return []
    events = session.scalars(select(OperationalEvent).where(OperationalEvent.id.in_(ids))
                             .order_by(OperationalEvent.tenant_id))
    return [LastReconcile(str(e.tenant_id), e.at, e.kind == RECONCILED, _parsed(e.message)) for e in events]


def _parsed(message: str) -> dict[str, Any]:
    try:
        found = json.loads(message)
    except ValueError:
        return {"error": message}
    return found if isinstance(found, dict) else {"error": message}
