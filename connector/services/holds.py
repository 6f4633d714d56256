"""Held bills: they come back by themselves when what held them may have changed (a purchase order
arrives or changes in Xero, a mapping set is replaced), and a person can release one, audited."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from connector.domain.reasons import Reason, render
from connector.domain.states import BillState
from connector.errors import ConnectorError
from connector.services.messages import MapInvoice, Message
from connector.store.audit import record
from connector.store.db import Session
from connector.store.holds import bills_with_invoice_id, held_bills, reopen_held_for
from connector.store.models import Bill

PO_REASONS = frozenset({"unknown_po", "ambiguous_po", "po_other_supplier", "po_other_currency", "po_not_billable",
                        "po_amount_variance"})
VENDOR_REASONS = frozenset({"vendor_unknown", "vendor_archived", "vendor_not_supplier", "vendor_no_tax_number"})
ACCOUNT_REASONS = frozenset({"archived_account"})
# Nothing was decided (a crash), or a document Xero failed to serve: a release means "try once more", now.
DOCUMENT_UNAVAILABLE = "attachment_unavailable"
MAP_AGAIN_ON_RELEASE = frozenset({"crashed_worker", DOCUMENT_UNAVAILABLE})


def reopen_held(session: Session, tenant_id: str, codes: Iterable[str], *, why: str,
                actor: str = "connector", due_by: datetime | None = None) -> list[Message]:
    """Re-open the tenant's HELD bills held for any of `codes` (only those whose document retry is due by
    `due_by`, when given); returns their map messages."""
    reopened = reopen_held_for(session, tenant_id, codes, reason=f"re-evaluated: {why}", actor=actor,
                               due_by=due_by)
    return [MapInvoice(tenant_id, bill.invoice_id, bill.version) for bill in reopened]


class ReleaseRefused(ConnectorError):
    exit_code = 4


def release(session: Session, tenant_id: str | Iterable[str] | None, invoice_id: str, *, by: str, why: str,
            actor: str | None = None, without_documents: bool = False) -> Bill:
    """Send a held bill on, on a person's word: it goes READY, marked released with who released it, why,
    and what had held it. `tenant_id` (one or several) narrows where the InvoiceID is looked for."""
    bills = bills_with_invoice_id(session, invoice_id, tenant_id)
    if len(bills) != 1:
        raise ReleaseRefused(f"{len(bills)} bills have InvoiceID {invoice_id}" + (": name the tenant" if bills else ""))
    return release_bill(session, bills[0], by=by, why=why, actor=actor, without_documents=without_documents)


def releasable_for(session: Session, tenant_ids: Iterable[str], codes: Iterable[str]) -> list[Bill]:
    """The HELD bills of these tenants held for nothing but these reason codes (a release by reason)."""
    wanted = set(codes)
    return [bill for bill in held_bills(session, list(tenant_ids))
            if bill.reasons and {str(r.get("code")) for r in bill.reasons} <= wanted]


def release_bill(session: Session, bill: Bill, *, by: str, why: str, actor: str | None = None,
                 without_documents: bool = False) -> Bill:
    """Release this HELD bill (see `release`); refused, saying why, when it cannot be. A bill held only for a
    document Xero failed to serve is mapped again (its documents fetched again), unless `without_documents`:
    then it goes as it is, with the documents that were fetched (the file Xero lost is not asked for again)."""
    invoice_id = bill.invoice_id
    if not why.strip():
        raise ReleaseRefused("say why the bill is released (--why): the audit keeps it")
    if bill.state != BillState.HELD:
        raise ReleaseRefused(f"bill {invoice_id} is {bill.state}, not HELD")
    if any(r.get("code") == "unrenderable" for r in bill.reasons):
        raise ReleaseRefused(f"bill {invoice_id} cannot go in the tenant's file as it is; fix the text in Xero "
                             "or the template (it is re-evaluated by itself)")
    map_again = MAP_AGAIN_ON_RELEASE - {DOCUMENT_UNAVAILABLE} if without_documents else MAP_AGAIN_ON_RELEASE
    if bill.reasons and all(r.get("code") in map_again for r in bill.reasons):
        # Held because mapping it crashed: released, it is mapped again (the sweeper sends it), not sent as is.
        note = Reason("released", {"by": by, "why": why}).text()
        bill.reasons = []
        bill.documents_failures, bill.documents_retry_at = 0, None  # its documents' backoff starts over
        record(session, bill, BillState.DISCOVERED, reason=f"{note}: mapped again", actor=actor or by)
        return bill
    if bill.mapping is None:
        raise ReleaseRefused(f"bill {invoice_id} cannot be sent: {'; '.join(render(r) for r in bill.reasons)}")
    note = Reason("released", {"by": by, "why": why}).text()
    held_for = "; ".join(render(r) for r in bill.reasons)
    # Released, not on hold: the file marks it so (a template with no column for it flags it instead).
    bill.mapping = {**bill.mapping, "released": True, "release_note": f"{note} (was held: {held_for})"}
    bill.documents_failures, bill.documents_retry_at = 0, None  # sent on: its documents are not tried again
    record(session, bill, BillState.READY, reason=f"{note} (was held: {held_for})", actor=actor or by)
    return bill
