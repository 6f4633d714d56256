"""Marks that tell the sweeper which work has a message somewhere and which was never sent."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, cast

from sqlalchemy import String, Table, bindparam, select, update
from sqlalchemy.orm import Session

from connector.domain.states import BillState
from connector.store.models import Bill

_BILLS = cast(Table, Bill.__table__)


def _mark_statement() -> Any:
    """One bill's mark, found through (tenant, InvoiceID) alone, its state checked on the row found: with
    the state beside the tenant in the condition, a planner without fresh statistics (a tenant's first
    sync) walks the tenant's (tenant, state) index instead, every DISCOVERED bill of the tenant for each
    bill marked; and a set of InvoiceIDs (`IN`) is estimated no better than the tenant alone."""
    bill_id = select(_BILLS.c.id).where(_BILLS.c.tenant_id == bindparam("m_tenant_id", type_=String(64)),
                                        _BILLS.c.invoice_id == bindparam("m_invoice_id", type_=String(64)))
    return (update(_BILLS).where(_BILLS.c.id == bill_id.scalar_subquery(), _BILLS.c.state == BillState.DISCOVERED)
            .values(map_sent_at=bindparam("m_now", type_=_BILLS.c.map_sent_at.type)))


_MARK = _mark_statement()  # built once: it runs for every page of a poll and every chunk of a sweep


def mark_map_sent(session: Session, tenant_id: str, invoice_ids: Iterable[str], now: datetime) -> None:
    """Record that map messages for these DISCOVERED bills were handed to the broker: one statement run
    for each bill (one round trip for them all), each bill found by its unique key."""
    rows = [{"m_tenant_id": tenant_id, "m_invoice_id": invoice_id, "m_now": now} for invoice_id in invoice_ids]
    if rows:
        session.execute(_MARK, rows)
