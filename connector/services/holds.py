"""Held bills come back by themselves when what held them may have changed: a purchase order arrives or
changes in Xero, or a mapping is replaced. They go back to DISCOVERED (audited) and are mapped again."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.domain.states import BillState
from connector.services.messages import MapInvoice, Message
from connector.store.audit import record
from connector.store.models import Bill

PO_REASONS = frozenset({"unknown_po"})
MAPPING_REASONS = frozenset({"unmapped_gl"})


def reopen_held(session: Session, tenant_id: str, codes: Iterable[str], *, why: str,
                actor: str = "connector") -> list[Message]:
    """Re-open the tenant's HELD bills held for any of `codes`; returns their map messages."""
    wanted = set(codes)
    messages: list[Message] = []
    for bill in session.scalars(select(Bill).where(Bill.tenant_id == tenant_id, Bill.state == BillState.HELD)):
        if any(reason.get("code") in wanted for reason in bill.reasons):
            record(session, bill, BillState.DISCOVERED, reason=f"re-evaluated: {why}", actor=actor)
            messages.append(MapInvoice(tenant_id, bill.invoice_id, bill.version))
    return messages
