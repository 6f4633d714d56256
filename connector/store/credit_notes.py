"""Supplier credit notes in the ledger: rows of `bills` whose document_type is CREDIT_NOTE, under the same
life cycle, audit and batches as bills. What mapping a credit note reads (the states of the bills it is
allocated to) and the credit notes waiting for one of those bills."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.domain.credit_notes import BILL, CREDIT_NOTE, WAITS_FOR_BILL
from connector.domain.states import BillState
from connector.store.models import Bill


def bill_states(session: Session, tenant_id: str, invoice_ids: Iterable[str]) -> dict[str, str]:
    """InvoiceID → the state of each of these bills the ledger holds (credit notes are never bills)."""
    ids = sorted(set(invoice_ids))
    if not ids:
        return {}
    rows = session.execute(select(Bill.invoice_id, Bill.state).where(
        Bill.tenant_id == tenant_id, Bill.invoice_id.in_(ids), Bill.document_type == BILL))
    return {invoice_id: state for invoice_id, state in rows}


def waiting_credit_notes(session: Session, tenant_id: str) -> list[Bill]:
    """The tenant's HELD credit notes that wait for a bill they are allocated to."""
    held = session.scalars(select(Bill).where(Bill.tenant_id == tenant_id, Bill.state == BillState.HELD,
                                              Bill.document_type == CREDIT_NOTE).order_by(Bill.id))
    return [note for note in held if any(r.get("code") == WAITS_FOR_BILL for r in note.reasons)]

