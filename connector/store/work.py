"""Marks that tell the sweeper which work has a message somewhere and which was never sent."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from connector.domain.states import BillState
from connector.store.bulk import among
from connector.store.models import Bill


def mark_map_sent(session: Session, tenant_id: str, invoice_ids: Iterable[str], now: datetime) -> None:
    """Record that map messages for these DISCOVERED bills were handed to the broker (one UPDATE)."""
    ids = list(invoice_ids)
    if not ids:
        return
    session.execute(
        update(Bill)
        .where(Bill.tenant_id == tenant_id, among(session, Bill.invoice_id, ids),
               Bill.state == BillState.DISCOVERED)
        .values(map_sent_at=now)
        .execution_options(synchronize_session=False)
    )
