"""Bills as reconciliation reads them: what was delivered at which version, which InvoiceIDs the ledger
holds at all, and the mark for a delivered bill that Xero changed since."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from connector.domain.states import BillState
from connector.store.audit import record
from connector.store.models import Bill


def delivered_versions(session: Session, tenant_id: str) -> dict[str, int]:
    """InvoiceID → the Xero version the tenant's DELIVERED bills were mapped from (what Stampli has).
    Credit notes are not read back here: they are not Invoices in Xero."""
    return {b.invoice_id: b.mapped_version or b.version for b in session.scalars(
        select(Bill).where(Bill.tenant_id == tenant_id, Bill.state == BillState.DELIVERED,
                           Bill.document_type == "BILL"))}


def invoice_ids_in_ledger(session: Session, tenant_id: str, invoice_ids: Iterable[str | None]) -> set[str]:
    """Which of these InvoiceIDs the ledger holds for the tenant, in whatever state."""
    return set(session.scalars(select(Bill.invoice_id).where(
        Bill.tenant_id == tenant_id, Bill.invoice_id.in_(list(invoice_ids)))))


def mark_changed_after_delivery(session: Session, tenant_id: str, invoice_id: str, *, reason: str,
                                actor: str) -> bool:
    """A DELIVERED bill becomes CHANGED_AFTER_DELIVERY (audited); False when it is no longer DELIVERED."""
    bill = session.scalars(select(Bill).where(Bill.tenant_id == tenant_id, Bill.invoice_id == invoice_id)).one()
    if bill.state != BillState.DELIVERED:
        return False
    record(session, bill, BillState.CHANGED_AFTER_DELIVERY, reason=reason, actor=actor)
    return True


def bills_by_invoice_id(session: Session, tenant_id: str, invoice_ids: Iterable[str]) -> dict[str, Bill]:
    """The tenant's bills among these InvoiceIDs (a poll's page), by InvoiceID."""
    return {b.invoice_id: b for b in session.scalars(
        select(Bill).where(Bill.tenant_id == tenant_id, Bill.invoice_id.in_(list(invoice_ids))))}
