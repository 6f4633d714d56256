"""map_invoice: turn one DISCOVERED bill into READY, HELD or EXCLUDED, with reasons and an audit row."""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import delete, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from connector.config.loader import MappingSetData
from connector.domain.intake import decision_failed
from connector.domain.mapping import MERGE_DEPTH, MappingContext, MappingOutcome, map_bill, po_keys_in
from connector.domain.reasons import Reason
from connector.domain.records import (
    Account,
    PurchaseOrder,
    Vendor,
    XeroBill,
    parse_bill,
    parse_purchase_order,
    parse_vendor,
)
from connector.domain.rules import Maps, TenantRules
from connector.domain.states import BillState
from connector.errors import RecordProblem
from connector.failpoints import failpoint
from connector.services.context import Services
from connector.services.messages import AssembleBatch, Message
from connector.store.audit import record
from connector.store.models import (
    AccountRow,
    Bill,
    BillPoLink,
    ContactRow,
    MappingSet,
    OperationalEvent,
    PurchaseOrderRow,
)
from connector.store.sweeps import count_map_run

log = logging.getLogger(__name__)


MAP_RUNS_LIMIT: Final = 3  # runs that never finished (each stopped its worker) before a bill is held
BILL_HELD_CRASHED_WORKER: Final = "bill_held_crashed_worker"  # OperationalEvent kind
BILL_HELD_BAD_RECORD: Final = "bill_held_bad_record"  # OperationalEvent kind: mapping the bill raised


def map_invoice(services: Services, tenant_id: str, invoice_id: str, version: int) -> list[Message]:
    """Idempotent: a message for an older version, or a bill no longer DISCOVERED, does nothing. If a poll
    stores a newer version meanwhile, this transaction loses the race and is re-run (and then does nothing).

    Each run is counted first, in its own committed transaction, and the decision resets the count: a
    bill whose runs keep stopping their worker (the OOM killer on a huge bill) would otherwise be
    redelivered for ever; past MAP_RUNS_LIMIT it is held for a person instead of mapped again."""
    runs = services.ledger.retrying(lambda s: count_map_run(s, tenant_id, invoice_id, version, services.clock()))
    if runs is None:
        return []
    if runs > MAP_RUNS_LIMIT:
        unfinished = runs - 1
        return services.ledger.retrying(lambda s: _hold_crashed(s, tenant_id, invoice_id, version, unfinished))
    failpoint("map.decide")  # a fault test arms this one (any bill) or the next (one bill)
    failpoint(f"map.decide.{invoice_id}")

    def work(session: Session) -> list[Message]:
        bill = session.scalars(
            select(Bill).where(Bill.tenant_id == tenant_id, Bill.invoice_id == invoice_id)
        ).one_or_none()
        if bill is None or bill.version != version or bill.state != BillState.DISCOVERED:
            return []
        try:
            outcome, mapping_version = _decide(session, tenant_id, bill)
        except SQLAlchemyError:
            raise  # the ledger's trouble, not the bill's: retried or reported as before
        except Exception as error:  # never left DISCOVERED: held, explained, and the batch asked for as usual
            held_for = decision_failed(error, f"tenant {tenant_id} invoice {invoice_id}")
            outcome, mapping_version = MappingOutcome(BillState.HELD, (held_for,), None), None
            session.add(OperationalEvent(kind=BILL_HELD_BAD_RECORD, tenant_id=tenant_id,
                                         message=f"bill {invoice_id}: {held_for.text()}"))
            log.exception("bill %s of tenant %s HELD: %s", invoice_id, tenant_id, held_for.text())
        bill.reasons = [r.as_json() for r in outcome.reasons]
        bill.mapping = outcome.record
        bill.mapped_version = bill.version
        bill.mapping_version = mapping_version
        bill.map_runs = 0
        _link_purchase_orders(session, bill, outcome.record)
        reason = "; ".join(r.text() for r in outcome.reasons) or None
        record(session, bill, outcome.state, reason=reason)
        session.flush()
        log.info("bill %s of tenant %s: %s", invoice_id, tenant_id, outcome.state)
        return _batch_once_all_mapped(session, tenant_id)

    return services.ledger.retrying(work)


def _hold_crashed(session: Session, tenant_id: str, invoice_id: str, version: int, runs: int) -> list[Message]:
    bill = session.scalars(select(Bill).where(Bill.tenant_id == tenant_id, Bill.invoice_id == invoice_id)).one()
    if bill.version != version or bill.state != BillState.DISCOVERED:
        return []
    held_for = Reason("crashed_worker", {"runs": runs})
    bill.reasons = [held_for.as_json()]
    bill.mapping = None
    bill.map_runs = 0
    record(session, bill, BillState.HELD, reason=held_for.text())
    session.add(OperationalEvent(kind=BILL_HELD_CRASHED_WORKER, tenant_id=tenant_id,
                                 message=f"bill {invoice_id}: {held_for.text()}"))
    session.flush()
    log.error("bill %s of tenant %s HELD: %s", invoice_id, tenant_id, held_for.text())
    return _batch_once_all_mapped(session, tenant_id)


def _batch_once_all_mapped(session: Session, tenant_id: str) -> list[Message]:
    """One file per cycle: the last bill of the tenant to be mapped asks for the batch. If that message
    is lost, the sweeper asks for it once the READY bills are stale."""
    still_to_map = session.scalar(
        select(func.count()).where(Bill.tenant_id == tenant_id, Bill.state == BillState.DISCOVERED)
    )
    return [AssembleBatch(tenant_id)] if still_to_map == 0 else []


def _decide(session: Session, tenant_id: str, bill: Bill) -> tuple[MappingOutcome, int]:
    version, rules, maps = _mapping(session, tenant_id)
    try:
        parsed = parse_bill(bill.payload, tenant_id=tenant_id)
    except RecordProblem as problem:
        return MappingOutcome(BillState.HELD, (Reason("bad_record", {"problem": str(problem)}),), None), version
    fields = bill_fields(bill.payload)
    keys = po_keys_in(fields, rules.po_fields)
    orders = _purchase_orders(session, tenant_id, keys)
    context = MappingContext(
        rules=rules, maps=maps, version=version,
        vendors=_vendors(session, tenant_id, parsed.contact_id),
        accounts=_accounts(session, tenant_id, parsed),
        purchase_orders=orders,
        billed_against=_billed_against(session, tenant_id, [po.purchase_order_id for group in orders.values()
                                                            for po in group]),
    )
    return map_bill(parsed, context, fields), version


def bill_fields(payload: dict[str, Any]) -> dict[str, str]:
    """The bill's text fields a tenant may name as carrying PO numbers."""
    lines = payload.get("LineItems") or []
    return {
        "InvoiceNumber": str(payload.get("InvoiceNumber") or ""),
        "Reference": str(payload.get("Reference") or ""),
        "LineDescriptions": "\n".join(str(line.get("Description") or "") for line in lines),
    }


def _vendors(session: Session, tenant_id: str, contact_id: str) -> dict[str, Vendor]:
    """The bill's contact and the chain of contacts it was merged into."""
    found: dict[str, Vendor] = {}
    wanted: str | None = contact_id
    for _ in range(MERGE_DEPTH + 1):
        if wanted is None or wanted in found:
            break
        row = session.get(ContactRow, (tenant_id, wanted))
        if row is None or row.unusable_reason:  # Xero sent it unusable: an unknown vendor until it is fixed
            break
        found[wanted] = parse_vendor(row.payload)
        wanted = row.merged_to
    return found


def _accounts(session: Session, tenant_id: str, bill: XeroBill) -> dict[str, Account]:
    codes = {line.account_code for line in bill.lines if line.account_code}
    if not codes:
        return {}
    rows = session.scalars(select(AccountRow).where(AccountRow.tenant_id == tenant_id, AccountRow.code.in_(codes)))
    return {row.code: Account(row.code, row.status) for row in rows if row.code}


def _purchase_orders(session: Session, tenant_id: str, keys: list[str]) -> dict[str, list[PurchaseOrder]]:
    if not keys:
        return {}
    found: dict[str, list[PurchaseOrder]] = {}
    # Locked (in a fixed order, so two bills never deadlock) until this mapping commits: two bills against
    # one PO are mapped one after the other, and the second sees the first in the PO's running total.
    rows = session.scalars(
        select(PurchaseOrderRow).where(PurchaseOrderRow.tenant_id == tenant_id, PurchaseOrderRow.key.in_(keys))
        .order_by(PurchaseOrderRow.purchase_order_id).with_for_update()
    )
    for row in rows:
        if not row.key:
            continue
        try:
            found.setdefault(row.key, []).append(parse_purchase_order(row.payload, tenant_id=tenant_id))
        except RecordProblem as problem:  # one bad PO must not stop every bill that names it
            log.warning("%s; the PO is left out of matching", problem)
    return found


# Bills that are going, or went, to Stampli: they count against their POs' totals.
COUNTED = (BillState.READY, BillState.BATCHED, BillState.DELIVERED, BillState.CHANGED_AFTER_DELIVERY,
           BillState.FAILED)


def _billed_against(session: Session, tenant_id: str, po_ids: list[str]) -> dict[str, dict[str, Decimal]]:
    if not po_ids:
        return {}
    rows = session.execute(
        select(BillPoLink.purchase_order_id, BillPoLink.invoice_id, BillPoLink.amount)
        .join(Bill, (Bill.tenant_id == BillPoLink.tenant_id) & (Bill.invoice_id == BillPoLink.invoice_id))
        .where(BillPoLink.tenant_id == tenant_id, BillPoLink.purchase_order_id.in_(po_ids), Bill.state.in_(COUNTED))
    ).tuples()
    found: dict[str, dict[str, Decimal]] = {}
    for po_id, invoice_id, amount in rows:
        found.setdefault(po_id, {})[invoice_id] = Decimal(amount)
    return found


def _link_purchase_orders(session: Session, bill: Bill, record: dict[str, Any] | None) -> None:
    """Replace the bill's links with the POs this mapping matched (counted once the bill goes on)."""
    session.execute(delete(BillPoLink).where(BillPoLink.tenant_id == bill.tenant_id,
                                             BillPoLink.invoice_id == bill.invoice_id))
    for po_id in (record or {}).get("po_ids", []):
        session.add(BillPoLink(tenant_id=bill.tenant_id, invoice_id=bill.invoice_id, purchase_order_id=po_id,
                               amount=str(record["total"] if record else "0")))


_PARSED: dict[tuple[str, int, datetime], tuple[TenantRules, Maps]] = {}
_DEFAULTS = (MappingSetData().rules(), MappingSetData().maps())


def _mapping(session: Session, tenant_id: str) -> tuple[int, TenantRules, Maps]:
    """The mapping set in force, parsed once per process: a set never changes once stored, so only its
    identity is read per bill (version and creation time), and its data only when first seen."""
    head = session.execute(
        select(MappingSet.id, MappingSet.version, MappingSet.created_at).where(MappingSet.tenant_id == tenant_id)
        .order_by(MappingSet.version.desc()).limit(1)
    ).first()
    if head is None:
        return 0, *_DEFAULTS
    key = (tenant_id, head.version, head.created_at)
    if key not in _PARSED:
        if len(_PARSED) > 1000:
            _PARSED.clear()
        data = MappingSetData.from_json(session.get_one(MappingSet, head.id).data)
        _PARSED[key] = (data.rules(), data.maps())
    return head.version, *_PARSED[key]
