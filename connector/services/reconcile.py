"""Reconcile what was delivered with what Xero holds now, and catch what the deltas missed.

Not every change in Xero moves `UpdatedDateUTC` (edits that post no journal do not), so a periodic
comparison without If-Modified-Since backs up the deltas. It reads the delivered bills back by `IDs=`
(50 a call) and the eligible bills whole, then the supplier credit notes whole (CreditNotes takes no
`IDs=`; one paged read serves both checks), all through connector.xero.delta with no watermark, then:
- a delivered bill or credit note edited, voided or deleted in Xero since it was sent, or whose total,
  supplier or allocations differ from what it was sent as → CHANGED_AFTER_DELIVERY (domain.changes);
- an eligible bill or credit note the ledger does not hold, or holds at an older version → stored and
  mapped as usual.
Nothing is sent to Stampli by the reconciliation itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from connector.config.loader import MappingSetData
from connector.domain.changes import document_label, drift
from connector.domain.credit_notes import BILL, CREDIT_NOTE
from connector.domain.intake import Checked
from connector.errors import ConnectorError
from connector.services.context import Services
from connector.services.credit_notes import CREDIT_NOTES_WHERE, upsert_credit_notes
from connector.services.credit_notes import ENDPOINT as CREDIT_NOTES_ENDPOINT
from connector.services.mappings import effective
from connector.services.messages import Message
from connector.services.poll import READ_PARAMS, TenantReader, upsert_bills
from connector.store.bills import (
    delivered_as_read,
    delivered_ids,
    invoice_ids_in_ledger,
    mark_changed_after_delivery,
)
from connector.store.db import Session
from connector.store.intake import column_lengths, hold_bad_bills
from connector.store.models import utcnow
from connector.store.reconciliations import record_reconcile
from connector.store.tenants import active_tenant_ids, get_tenant
from connector.xero.delta import DeltaPage, read_delta

IDS_PER_CALL = 50
DELIVERED_CHUNK = 1000  # delivered InvoiceIDs read from the ledger at a time (a multiple of IDS_PER_CALL)


@dataclass
class Reconciliation:
    tenant_id: str
    delivered_checked: int = 0  # delivered bills
    credit_notes_checked: int = 0  # delivered credit notes
    changed_after_delivery: list[str] = field(default_factory=list)  # "<InvoiceID> bill|credit note N <why>"
    missing_from_ledger: list[str] = field(default_factory=list)  # InvoiceIDs and CreditNoteIDs
    calls: int = 0


def reconcile(services: Services, tenant_id: str, emit: Callable[[Message], None]) -> Reconciliation:
    report = Reconciliation(tenant_id)
    with services.ledger.transaction() as session:
        grant_id = get_tenant(session, tenant_id).grant_id
        mapping_set = effective(session, tenant_id).data
    reader = TenantReader(services, tenant_id, grant_id)
    for ids in _delivered_in_chunks(services, tenant_id, BILL):
        for start in range(0, len(ids), IDS_PER_CALL):
            chunk = ids[start:start + IDS_PER_CALL]
            body = reader.get("Invoices", {"IDs": ",".join(chunk), "page": 1, "unitdp": "4"}, None)
            report.calls += 1
            seen = {r["InvoiceID"]: r for r in body.get("Invoices", []) if isinstance(r.get("InvoiceID"), str)}
            report.delivered_checked += len(chunk)
            _compare_delivered(services, tenant_id, {i: seen.get(i) for i in chunk}, report)
    _eligible_not_held(services, reader, tenant_id, mapping_set, report, emit)
    _credit_notes(services, reader, tenant_id, mapping_set, report, emit)
    return report


def _delivered_in_chunks(services: Services, tenant_id: str, document_type: str) -> Iterator[list[str]]:
    """The tenant's delivered bills (or credit notes), `DELIVERED_CHUNK` InvoiceIDs at a time in InvoiceID
    order, each chunk read in a transaction of its own once the one before it is compared: what reconcile
    holds of the ledger is a chunk, never the tenant (a bill marked changed meanwhile is behind the key)."""
    after = ""
    while True:
        with services.ledger.transaction() as session:
            ids = delivered_ids(session, tenant_id, document_type, after=after, limit=DELIVERED_CHUNK)
        if ids:
            yield ids
        if len(ids) < DELIVERED_CHUNK:
            return
        after = ids[-1]


def tenants_to_reconcile(services: Services) -> list[str]:
    """Beat's daily reconcile covers every ACTIVE tenant (a PAUSED one is neither polled nor reconciled)."""
    with services.ledger.transaction() as session:
        return active_tenant_ids(session)


def reconcile_and_record(services: Services, tenant_id: str, emit: Callable[[Message], None]) -> Reconciliation:
    """Reconcile one tenant and keep what it found (or why it failed) for `connector status`."""
    try:
        report = reconcile(services, tenant_id, emit)
    except ConnectorError as failure:
        with services.ledger.transaction() as session:
            record_reconcile(session, tenant_id, ok=False, found={"error": str(failure)}, at=utcnow())
        raise
    with services.ledger.transaction() as session:
        record_reconcile(session, tenant_id, ok=True, at=utcnow(), found={
            "delivered_checked": report.delivered_checked, "credit_notes_checked": report.credit_notes_checked,
            "calls": report.calls,
            "changed_after_delivery": len(report.changed_after_delivery),
            "missing_from_ledger": len(report.missing_from_ledger)})
    return report


def _compare_delivered(services: Services, tenant_id: str, current: dict[str, dict[str, Any] | None],
                       report: Reconciliation) -> None:
    """Compare these delivered documents with what Xero answered for each (None: nothing) and mark those
    that drifted (domain.changes), naming each; one still DELIVERED is marked, and reported, once."""
    with services.ledger.transaction() as session:
        delivered = delivered_as_read(session, tenant_id, current)
    drifted = {}
    for invoice_id, sent in delivered.items():
        why = drift(sent.sent, sent.version, current[invoice_id])
        if why:
            drifted[invoice_id] = f"{document_label(sent.document_type, sent.number)} {why}"
    if not drifted:
        return

    def work(session: Session) -> list[str]:
        return [invoice_id for invoice_id, why in drifted.items()
                if mark_changed_after_delivery(session, tenant_id, invoice_id, reason=f"reconciliation: {why}",
                                               actor="reconcile")]

    report.changed_after_delivery += [f"{i} {drifted[i]}" for i in services.ledger.retrying(work)]


def _eligible_not_held(services: Services, reader: TenantReader, tenant_id: str, mapping_set: MappingSetData,
                       report: Reconciliation, emit: Callable[[Message], None]) -> None:
    statuses = " OR ".join(f'Status=="{s}"' for s in mapping_set.rules().eligible_statuses)
    for page in read_delta(reader.get, services.settings, "Invoices", where=f'Type=="ACCPAY" AND ({statuses})',
                           params=READ_PARAMS, lengths=column_lengths()):
        report.calls += 1
        ids = [c.storage_id() for c in page.checked.records]
        with services.ledger.transaction() as session:
            held = invoice_ids_in_ledger(session, tenant_id, ids)
        report.missing_from_ledger += [i for i in ids if i not in held]
        for message in services.ledger.retrying(partial(_store_page, tenant_id=tenant_id, page=page)):
            emit(message)


def _store_page(session: Session, tenant_id: str, page: DeltaPage) -> list[Message]:
    """Bills the intake check refused are held as in a poll; the others are stored as a poll stores them."""
    hold_bad_bills(session, tenant_id, page.rejected)
    return upsert_bills(session, tenant_id, page.usable)


def _credit_notes(services: Services, reader: TenantReader, tenant_id: str, mapping_set: MappingSetData,
                  report: Reconciliation, emit: Callable[[Message], None]) -> None:
    """One paged read of every supplier credit note: each delivered one is compared with what Xero holds
    now (one the read never returned is no longer in Xero), each of an eligible status is stored as a poll
    stores it (the ledger lacking it, or holding an older version)."""
    # The read is in Xero's order, not ours: which delivered credit notes it never returned is known only
    # at its end, so their CreditNoteIDs are held (about 100 bytes each; credit notes are few beside bills).
    unchecked = {i for ids in _delivered_in_chunks(services, tenant_id, CREDIT_NOTE) for i in ids}
    report.credit_notes_checked = len(unchecked)
    eligible = set(mapping_set.rules().credit_note_statuses)
    for page in read_delta(reader.get, services.settings, CREDIT_NOTES_ENDPOINT, where=CREDIT_NOTES_WHERE,
                           params=READ_PARAMS, lengths=column_lengths()):
        report.calls += 1
        records = {c.storage_id(): c for c in page.checked.records}
        on_page = unchecked & set(records)
        unchecked -= on_page
        _compare_delivered(services, tenant_id, {i: _as_dict(records[i].data) for i in sorted(on_page)}, report)
        wanted = [i for i, c in records.items() if _as_dict(c.data).get("Status") in eligible]
        with services.ledger.transaction() as session:
            held = invoice_ids_in_ledger(session, tenant_id, wanted)
        report.missing_from_ledger += [i for i in wanted if i not in held]
        usable = [r for r in page.usable if r.get("Status") in eligible]
        rejected = [c for c in page.rejected if _as_dict(c.data).get("Status") in eligible]
        for message in services.ledger.retrying(partial(_store_credit_notes, tenant_id=tenant_id, usable=usable,
                                                        rejected=rejected)):
            emit(message)
    _compare_delivered(services, tenant_id, dict.fromkeys(sorted(unchecked)), report)


def _store_credit_notes(session: Session, tenant_id: str, usable: list[dict[str, Any]],
                        rejected: list[Checked]) -> list[Message]:
    hold_bad_bills(session, tenant_id, rejected, credit_notes=True)
    return upsert_credit_notes(session, tenant_id, usable)


def _as_dict(data: object) -> dict[str, Any]:
    return data if isinstance(data, dict) else {}
