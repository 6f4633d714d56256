"""State changes of bills, each written with its audit row in the same transaction."""

from __future__ import annotations

from sqlalchemy.orm import Session

from connector.domain.states import BillState, can_move
from connector.store import backlog
from connector.store.models import Bill, BillTransition, utcnow


class IllegalTransition(RuntimeError):
    """A bug: code tried a move the state table forbids."""


def record(
    session: Session,
    bill: Bill,
    to_state: BillState,
    *,
    reason: str | None = None,
    batch_id: int | None = None,
    file_name: str | None = None,
    actor: str = "connector",
    mapped_with: str | None = None,
) -> None:
    """Move `bill` to `to_state` and append the audit row; refuses moves the state table forbids."""
    source = BillState(bill.state) if bill.state else None
    if source is not None and source != to_state and not can_move(source, to_state):
        raise IllegalTransition(f"bill {bill.invoice_id}: {source} → {to_state} is not allowed")
    backlog.note(session, bill.tenant_id, bill.state, to_state)
    bill.state = to_state
    bill.state_changed_at = utcnow()
    if to_state == BillState.DISCOVERED:  # a new version to map: it needs a message and a file of its own
        bill.batch_id = None
        bill.map_sent_at = None
        bill.map_started_at = None
        bill.map_runs = 0
    session.add(
        BillTransition(
            tenant_id=bill.tenant_id,
            invoice_id=bill.invoice_id,
            from_state=source,
            to_state=to_state,
            reason=reason,
            version=bill.version,
            batch_id=batch_id,
            file_name=file_name,
            actor=actor,
            mapped_with=mapped_with,
        )
    )
