"""map_invoice: turn one DISCOVERED bill into READY, HELD or EXCLUDED, with reasons and an audit row."""

from __future__ import annotations

import logging

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connector.domain.mapping import MappingContext, MappingOutcome, map_bill
from connector.domain.po_numbers import find_po_keys
from connector.domain.reasons import Reason, render
from connector.domain.records import parse_bill, parse_purchase_order
from connector.domain.states import BillState
from connector.errors import RecordProblem
from connector.services.context import Services
from connector.services.messages import AssembleBatch, Message
from connector.store.audit import record
from connector.store.models import Bill, GlMapping, PurchaseOrderRow, Tenant

log = logging.getLogger(__name__)


def map_invoice(services: Services, tenant_id: str, invoice_id: str, version: int) -> list[Message]:
    """Idempotent: a message for an older version, or a bill no longer DISCOVERED, does nothing. If a poll
    stores a newer version meanwhile, this transaction loses the race and is re-run (and then does nothing)."""

    def work(session: Session) -> list[Message]:
        bill = session.scalars(
            select(Bill).where(Bill.tenant_id == tenant_id, Bill.invoice_id == invoice_id)
        ).one_or_none()
        if bill is None or bill.version != version or bill.state != BillState.DISCOVERED:
            return []
        outcome = _decide(session, tenant_id, bill)
        bill.reasons = [r.as_json() for r in outcome.reasons]
        bill.mapping = outcome.record
        bill.mapped_version = bill.version
        reason = "; ".join(render(r.as_json()) for r in outcome.reasons) or None
        record(session, bill, outcome.state, reason=reason)
        session.flush()
        log.info("bill %s of tenant %s: %s", invoice_id, tenant_id, outcome.state)
        # One file per cycle: the last bill of the tenant to be mapped asks for the batch. If that
        # message is lost, the sweeper asks for it once the READY bills are stale.
        still_to_map = session.scalar(
            select(func.count()).where(Bill.tenant_id == tenant_id, Bill.state == BillState.DISCOVERED)
        )
        return [AssembleBatch(tenant_id)] if still_to_map == 0 else []

    return services.ledger.retrying(work)


def _decide(session: Session, tenant_id: str, bill: Bill) -> MappingOutcome:
    try:
        parsed = parse_bill(bill.payload, tenant_id=tenant_id)
    except RecordProblem as problem:
        return MappingOutcome(BillState.HELD, (Reason("bad_record", {"problem": str(problem)}),), None)
    return map_bill(parsed, _context(session, tenant_id, parsed.invoice_number))


def _context(session: Session, tenant_id: str, reference: str) -> MappingContext:
    tenant = session.get_one(Tenant, tenant_id)
    keys = find_po_keys(reference)
    orders: list[PurchaseOrderRow] = []
    if keys:
        orders = list(
            session.scalars(
                select(PurchaseOrderRow).where(PurchaseOrderRow.tenant_id == tenant_id, PurchaseOrderRow.key.in_(keys))
            )
        )
    gl_codes = {
        code: gl
        for code, gl in session.execute(
            select(GlMapping.xero_account_code, GlMapping.stampli_gl_code).where(GlMapping.tenant_id == tenant_id)
        ).tuples()
    }
    return MappingContext(
        gl_codes=gl_codes,
        purchase_orders={row.key: parse_purchase_order(row.payload, tenant_id=tenant_id) for row in orders if row.key},
        eligible_statuses=tuple(tenant.eligible_statuses),
    )

