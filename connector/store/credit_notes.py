"""Supplier credit notes in the ledger: rows of `bills` whose document_type is CREDIT_NOTE, under the same
life cycle, audit and batches as bills. What mapping a credit note reads (the states of the bills it is
allocated to) and the credit notes waiting for one of those bills."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Any, Final, NamedTuple

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from connector.domain.credit_notes import BILL, BILL_IN_STAMPLI, CREDIT_NOTE, WAITS_FOR_BILL, WITH_EXCLUDED_BILLS
from connector.domain.states import BillState
from connector.store.audit import record
from connector.store.models import Bill, Tenant


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



def awaited_bills(note: Bill) -> set[str]:
    """The InvoiceIDs a held credit note waits for, or an excluded one was excluded with (from its reasons)."""
    return {str(r.get("invoice_id")) for r in note.reasons if r.get("code") == WAITS_FOR_BILL} | _excluded_with(
        note.reasons)


def _excluded_with(reasons: Iterable[dict[str, Any]]) -> set[str]:
    """The InvoiceIDs of the bills a credit note was EXCLUDED with (allocated_bills_excluded)."""
    return {str(i) for r in reasons if r.get("code") == WITH_EXCLUDED_BILLS for i in r.get("invoice_ids") or []}


def excluded_with_delivered(session: Session, tenant_id: str, delivered: Collection[str]) -> list[Bill]:
    """The credit notes EXCLUDED with their bills (applied in full to bills the ledger excluded) that are
    allocated to one of these bills, just delivered: Xero let the bill go after all (a payment removed
    makes it AUTHORISED again), so Stampli has it and must have its credit too. Reads the reasons of the
    tenant's excluded PAID credit notes only, then the rows of those that match."""
    just = set(delivered)
    rows = session.execute(select(Bill.id, Bill.reasons).where(
        Bill.tenant_id == tenant_id, Bill.document_type == CREDIT_NOTE, Bill.state == BillState.EXCLUDED,
        Bill.xero_status == "PAID"))
    ids = [bill_id for bill_id, reasons in rows if _excluded_with(reasons or []) & just]
    return list(session.scalars(select(Bill).where(Bill.id.in_(ids)).order_by(Bill.id))) if ids else []


def reopen_waiting(session: Session, tenant_id: str, *, reason: str,
                   delivered: Collection[str] | None = None) -> list[Bill]:
    """Move back to DISCOVERED (audited) each credit note that waits for bills all of which Stampli has
    now, or that are all decided by now (in Stampli or EXCLUDED) in states other than it waited on (a
    credit applied in full to excluded bills is excluded with them; decided once, so not re-opened again);
    with `delivered`, only those waiting for one of these bills, and those EXCLUDED with one of them.
    Returns the credit notes moved; the caller sends them to be mapped once this transaction is committed
    (or the sweeper does)."""
    waiting = waiting_credit_notes(session, tenant_id)
    awaited = {note.invoice_id: awaited_bills(note) for note in waiting}
    if delivered is not None:
        just = set(delivered)
        waiting = [note for note in waiting if awaited[note.invoice_id] & just]
    states = bill_states(session, tenant_id, {i for note in waiting for i in awaited[note.invoice_id]})
    moved = []
    if delivered is not None:
        for note in excluded_with_delivered(session, tenant_id, delivered):
            record(session, note, BillState.DISCOVERED, reason=reason)
            moved.append(note)
    for note in waiting:
        now = {invoice_id: states.get(invoice_id) for invoice_id in awaited[note.invoice_id]}
        if all(state in BILL_IN_STAMPLI for state in now.values()) or (
                all(state in DECIDED for state in now.values()) and now != _waited_on(note)):
            record(session, note, BillState.DISCOVERED, reason=reason)
            moved.append(note)
    return moved


#: Bill states that no longer change by themselves: in Stampli, or kept out of it.
DECIDED: Final = BILL_IN_STAMPLI | {BillState.EXCLUDED.value}


def _waited_on(note: Bill) -> dict[str, str | None]:
    """The state of each bill a held credit note waits for, as it was when the note was mapped."""
    return {str(r.get("invoice_id")): r.get("state") for r in note.reasons if r.get("code") == WAITS_FOR_BILL}


def reopened_unsent(session: Session, tenant_id: str, delivered: Collection[str]) -> list[Bill]:
    """Credit notes waiting for one of these bills that were re-opened and whose map message was not sent."""
    just = set(delivered)
    found = session.scalars(select(Bill).where(
        Bill.tenant_id == tenant_id, Bill.document_type == CREDIT_NOTE, Bill.state == BillState.DISCOVERED,
        Bill.map_sent_at.is_(None)).order_by(Bill.id))
    return [note for note in found if awaited_bills(note) & just]


class CreditNoteReads(NamedTuple):
    read_at: datetime | None  # when the tenant's last credit-note read began
    asked_at: datetime | None  # when one was last asked for (a webhook, a credit seen on a bill)
    poll_interval_seconds: int


def credit_note_reads(session: Session, tenant_id: str) -> CreditNoteReads:
    """What decides whether this poll reads the tenant's credit notes (from the tenant's row as this session
    holds it: the poll reads it when it takes its lease)."""
    row = session.get_one(Tenant, tenant_id)
    return CreditNoteReads(row.credit_notes_read_at, row.credit_notes_asked_at, int(row.poll_interval_seconds or 0))


def credit_notes_read(session: Session, tenant_id: str, began_at: datetime) -> None:
    """A credit-note read that began at `began_at` finished: an ask after that is still to be answered."""
    session.execute(update(Tenant).where(Tenant.id == tenant_id).values(credit_notes_read_at=began_at)
                    .execution_options(synchronize_session=False))


def ask_for_credit_notes(session: Session, tenant_ids: Collection[str], now: datetime) -> None:
    """Xero announced credit notes of these tenants (a CREDITNOTE webhook): their next poll reads them."""
    if tenant_ids:
        session.execute(update(Tenant).where(Tenant.id.in_(list(tenant_ids))).values(credit_notes_asked_at=now)
                        .execution_options(synchronize_session=False))


def ask_since_read(session: Session, tenant_id: str, read_at: datetime) -> None:
    """A bill of this poll showed a credit applied: the credit notes are due until a read that begins after
    `read_at` (the last one) is done, so a poll that fails before reading them leaves the ask to its retry.
    Written with the bill's page; an ask already standing is kept."""
    session.execute(update(Tenant).where(Tenant.id == tenant_id).where(
        or_(Tenant.credit_notes_asked_at.is_(None), Tenant.credit_notes_asked_at < read_at))
        .values(credit_notes_asked_at=read_at).execution_options(synchronize_session=False))
