"""Supplier credit notes through the bills' own life cycle: stored from each CreditNotes page as rows of
`bills` (document_type CREDIT_NOTE, keyed by CreditNoteID), mapped, batched and delivered exactly as bills
are; a credit note waiting for a bill it is allocated to is sent to be mapped again once every such bill
is in Stampli (each poll looks, after its reads)."""

from __future__ import annotations

import logging
from typing import Any, Final

from connector.domain.credit_notes import CREDIT_NOTE
from connector.domain.states import REMAPPABLE, BillState
from connector.errors import RecordProblem
from connector.services.context import Services
from connector.services.messages import MapInvoice, Message
from connector.store.audit import BillPage
from connector.store.credit_notes import reopen_waiting, reopened_unsent
from connector.store.db import Session
from connector.store.deliveries import delivered_bills as batch_bills
from connector.xero.dates import ms_or_zero

log = logging.getLogger(__name__)

ENDPOINT: Final = "CreditNotes"
CREDIT_NOTES_WHERE: Final = 'Type=="ACCPAYCREDIT"'  # supplier credit notes only, never sales ones


def upsert_credit_notes(session: Session, tenant_id: str, records: list[dict[str, Any]]) -> list[Message]:
    """As for bills: new or changed credit notes go (back) to DISCOVERED; a re-seen version does nothing;
    one Stampli already has is marked CHANGED_AFTER_DELIVERY. A few statements per page (store.audit)."""
    page = BillPage(session, tenant_id)
    existing = page.read(r["CreditNoteID"] for r in records if isinstance(r.get("CreditNoteID"), str))
    messages: list[Message] = []
    for data in records:
        note_id = data.get("CreditNoteID")
        if not isinstance(note_id, str) or not note_id:
            log.error("%s", RecordProblem(f"tenant {tenant_id} credit note <unknown>", "CreditNoteID", "is missing"))
            continue
        version = ms_or_zero(data.get("UpdatedDateUTC"))
        row = existing.get(note_id)
        if row is not None and row.document_type != CREDIT_NOTE:
            log.error("tenant %s: credit note %s has the id of a bill in the ledger; left alone", tenant_id, note_id)
            continue
        if row is not None and row.version >= version:
            continue
        if row is None:
            row = existing[note_id] = page.new(note_id, document_type=CREDIT_NOTE)
        row.set(version=version, payload=data, invoice_number=str(data.get("CreditNoteNumber") or "")[:255],
                xero_status=str(data.get("Status") or ""))
        if row.state is None or BillState(row.state) in REMAPPABLE:
            row.set(reasons=[])
            page.record(row, BillState.DISCOVERED, reason="new" if row.id is None else "changed in Xero")
            messages.append(MapInvoice(tenant_id, note_id, version))
        elif row.state == BillState.DELIVERED:
            page.record(row, BillState.CHANGED_AFTER_DELIVERY, reason="changed in Xero after delivery")
        else:
            log.info("credit note %s changed in Xero while %s", note_id, row.state)
    page.write()
    return messages


def reopen_credit_notes_whose_bills_arrived(session: Session, tenant_id: str) -> list[Message]:
    """Credit notes held waiting for bills that Stampli now has go back to DISCOVERED; their map messages,
    to be sent once the caller's transaction (the end of a poll) has committed."""
    moved = reopen_waiting(session, tenant_id, reason="re-evaluated: the bills it is allocated to are in Stampli now")
    session.flush()
    if moved:
        log.info("tenant %s: %s credit notes re-opened, their bills being in Stampli", tenant_id, len(moved))
    return [MapInvoice(tenant_id, note.invoice_id, note.version) for note in moved]


def maps_after_delivery(services: Services, batch_id: int) -> list[Message]:
    """After a file of bills is delivered: map messages for the credit notes its delivery re-opened (in the
    settle's own transaction, `store.deliveries`), so each goes in the next file of the same cycle."""
    with services.ledger.transaction() as session:
        carried = batch_bills(session, batch_id)
        if carried is None:
            return []
        tenant_id, delivered = carried
        return [MapInvoice(tenant_id, note.invoice_id, note.version)
                for note in reopened_unsent(session, tenant_id, delivered)]
