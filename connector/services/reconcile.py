"""Reconcile what was delivered with what Xero holds now, and catch what the deltas missed.

Not every change in Xero moves `UpdatedDateUTC` (edits that post no journal do not), so a periodic
comparison without If-Modified-Since backs up the deltas. It reads the delivered bills back by `IDs=`
(50 a call) and the eligible bills whole (connector.xero.delta, no watermark), then:
- a delivered bill changed, voided or deleted in Xero since it was sent → CHANGED_AFTER_DELIVERY;
- an eligible bill the ledger does not hold, or holds at an older version → stored and mapped as usual.
Nothing is sent to Stampli by the reconciliation itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from connector.config.loader import MappingSetData
from connector.errors import ConnectorError
from connector.services.context import Services
from connector.services.mappings import effective
from connector.services.messages import Message
from connector.services.poll import READ_PARAMS, TenantReader, upsert_bills
from connector.store.bills import delivered_versions, invoice_ids_in_ledger, mark_changed_after_delivery
from connector.store.db import Session
from connector.store.intake import column_lengths, hold_bad_bills
from connector.store.models import utcnow
from connector.store.reconciliations import record_reconcile
from connector.store.tenants import active_tenant_ids, get_tenant
from connector.xero.dates import ms_or_zero
from connector.xero.delta import DeltaPage, read_delta

IDS_PER_CALL = 50


@dataclass
class Reconciliation:
    tenant_id: str
    delivered_checked: int = 0
    changed_after_delivery: list[str] = field(default_factory=list)  # "<InvoiceID> <why>"
    missing_from_ledger: list[str] = field(default_factory=list)
    calls: int = 0


def reconcile(services: Services, tenant_id: str, emit: Callable[[Message], None]) -> Reconciliation:
    report = Reconciliation(tenant_id)
    with services.ledger.transaction() as session:
        grant_id = get_tenant(session, tenant_id).grant_id
        mapping_set = effective(session, tenant_id).data
        delivered = delivered_versions(session, tenant_id)
    reader = TenantReader(services, tenant_id, grant_id)
    ids = sorted(delivered)
    for start in range(0, len(ids), IDS_PER_CALL):
        chunk = ids[start:start + IDS_PER_CALL]
        body = reader.get("Invoices", {"IDs": ",".join(chunk), "page": 1, "unitdp": "4"}, None)
        report.calls += 1
        seen = {r["InvoiceID"]: r for r in body.get("Invoices", []) if isinstance(r.get("InvoiceID"), str)}
        for invoice_id in chunk:
            report.delivered_checked += 1
            why = _why_changed(seen.get(invoice_id), delivered[invoice_id])
            if why:
                _mark_changed(services, tenant_id, invoice_id, why)
                report.changed_after_delivery.append(f"{invoice_id} {why}")
    _eligible_not_held(services, reader, tenant_id, mapping_set, report, emit)
    return report


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
            "delivered_checked": report.delivered_checked, "calls": report.calls,
            "changed_after_delivery": len(report.changed_after_delivery),
            "missing_from_ledger": len(report.missing_from_ledger)})
    return report


def _why_changed(current_record: dict[str, Any] | None, delivered_version: int) -> str | None:
    if current_record is None:
        return "is no longer in Xero"
    status = str(current_record.get("Status") or "")
    if status in ("VOIDED", "DELETED"):
        return f"was {status.lower()} in Xero after delivery"
    version = ms_or_zero(current_record.get("UpdatedDateUTC"))
    return "was edited in Xero after delivery" if version > delivered_version else None


def _mark_changed(services: Services, tenant_id: str, invoice_id: str, why: str) -> None:
    def work(session: Session) -> None:
        mark_changed_after_delivery(session, tenant_id, invoice_id, reason=f"reconciliation: {why}",
                                    actor="reconcile")

    services.ledger.retrying(work)


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
