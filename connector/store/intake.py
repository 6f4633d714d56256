"""Storing what the intake check refused: a bill as far as it can be stored, HELD `bad_record`; reference
data marked unusable with the reason (mapping treats it as unknown). The column sizes the check measures
text against are read here, from the models: one place for the limits."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import replace
from functools import cache
from typing import Any, TypeVar

from sqlalchemy import String
from sqlalchemy.exc import DataError, StatementError

from connector.domain.intake import Checked, ColumnLengths, Page, Problem, clip, storable
from connector.domain.states import REMAPPABLE, BillState
from connector.store.audit import record
from connector.store.bills import bills_by_invoice_id
from connector.store.db import Ledger, Session
from connector.store.models import (
    AccountRow,
    Base,
    Bill,
    ContactRow,
    OperationalEvent,
    PurchaseOrderRow,
    TrackingCategoryRow,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

UNUSABLE_RECORD = "unusable_xero_record"  # OperationalEvent kind: reference data Xero sent we cannot use
UNUSABLE_STATUS = "UNUSABLE"  # stored in a reference row's status: no Xero status, so never "ACTIVE"


@cache
def column_lengths() -> ColumnLengths:
    """Every sized text column of the ledger, as "table.column" -> length."""
    return {f"{table.name}.{column.name}": column.type.length
            for table in Base.metadata.tables.values() for column in table.columns
            if isinstance(column.type, String) and column.type.length}


def hold_bad_bills(session: Session, tenant_id: str, rejected: list[Checked], *, credit_notes: bool = False) -> int:
    """Store each refused bill as far as it can be (its id, a storable copy of what Xero sent, the status
    and number clipped to their columns) and HOLD it `bad_record`, naming the field. A bill already in a
    file is left to delivery (it compares versions), as for any change. Returns how many were held."""
    if not rejected:
        return 0
    lengths = column_lengths()
    existing = bills_by_invoice_id(session, tenant_id, [c.storage_id() for c in rejected])
    held = 0
    for checked in rejected:
        invoice_id = checked.storage_id()
        reason = _first(checked.problems).reason()
        held_for = [{**reason.as_json(), "problem": checked.summary()[:4000]}]
        bill = existing.get(invoice_id)
        version = checked.version_ms or 0
        if bill is not None:
            same = bill.state == BillState.HELD and bill.reasons == held_for
            if same or version < bill.version or (version == bill.version and checked.version_ms is not None
                                                  and bill.state != BillState.HELD):
                continue
            if BillState(bill.state) not in REMAPPABLE:
                log.warning("bill %s changed in Xero while %s, and is unusable: %s", invoice_id, bill.state,
                            checked.summary())
                continue
        else:
            bill = Bill(tenant_id=tenant_id, invoice_id=invoice_id, state=None, reasons=[], version=0,
                        document_type="CREDIT_NOTE" if credit_notes else "BILL")
            session.add(bill)
        data = checked.data if isinstance(checked.data, dict) else {}
        bill.version = max(version, bill.version or 0)
        bill.payload = storable(data) if data else {"Xero sent": storable(checked.data)}
        number = data.get("CreditNoteNumber" if credit_notes else "InvoiceNumber")
        bill.invoice_number = clip(number or "", lengths["bills.invoice_number"])
        bill.xero_status = clip(data.get("Status") or "", lengths["bills.xero_status"])
        bill.mapping = None
        bill.reasons = held_for
        if bill.state is not None and bill.state != BillState.DISCOVERED:
            record(session, bill, BillState.DISCOVERED, reason="changed in Xero")
        record(session, bill, BillState.HELD, reason=reason.text() if len(checked.problems) == 1
               else f"Xero record is unusable: {checked.summary()}")
        log.error("tenant %s: bill %s HELD: %s", tenant_id, invoice_id, checked.summary())
        held += 1
    session.flush()
    return held


def mark_unusable_purchase_orders(session: Session, tenant_id: str, rejected: list[Checked]) -> None:
    """A refused PO is stored without its key, so no bill matches it (a bill naming it is held for an
    unknown PO), with the reason; a good version later replaces it."""
    lengths = column_lengths()
    for checked in rejected:
        po_id = checked.storage_id()
        row = session.get(PurchaseOrderRow, (tenant_id, po_id))
        version = checked.version_ms or 0
        if row is not None and row.version > version:
            continue
        if row is None:
            row = PurchaseOrderRow(tenant_id=tenant_id, purchase_order_id=po_id)
            session.add(row)
        data = checked.data if isinstance(checked.data, dict) else {}
        row.number = clip(data.get("PurchaseOrderNumber") or "", lengths["purchase_orders.number"])
        row.key = None
        row.contact_id = None
        row.status = UNUSABLE_STATUS
        row.version = version
        row.payload = storable(data)
        if row.unusable_reason != checked.summary():
            _event(session, tenant_id, checked)
        row.unusable_reason = checked.summary()


def mark_unusable_contacts(session: Session, tenant_id: str, rejected: list[Checked], *, read_at: Any) -> None:
    """A refused contact is held as unusable: mapping treats its bills' vendor as unknown, and it is not
    fetched again and again by `IDs=`; a good version later replaces it."""
    lengths = column_lengths()
    for checked in rejected:
        contact_id = checked.storage_id()
        row = session.get(ContactRow, (tenant_id, contact_id))
        if row is None:
            row = ContactRow(tenant_id=tenant_id, contact_id=contact_id)
            session.add(row)
        data = checked.data if isinstance(checked.data, dict) else {}
        row.name = clip(data.get("Name") or "", lengths["contacts.name"])
        row.status = UNUSABLE_STATUS
        row.is_supplier = False
        row.merged_to = None
        row.version = checked.version_ms or 0
        row.payload = storable(data)
        row.read_at = read_at
        if row.unusable_reason != checked.summary():
            _event(session, tenant_id, checked)
        row.unusable_reason = checked.summary()


def mark_unusable_accounts(session: Session, tenant_id: str, rejected: list[Checked]) -> None:
    """A refused account is stored without its code (mapping then knows no account by that code)."""
    lengths = column_lengths()
    for checked in rejected:
        account_id = checked.storage_id()
        row = session.get(AccountRow, (tenant_id, account_id))
        if row is None:
            row = AccountRow(tenant_id=tenant_id, account_id=account_id)
            session.add(row)
        data = checked.data if isinstance(checked.data, dict) else {}
        row.code = None
        row.name = clip(data.get("Name") or "", lengths["accounts.name"])
        row.status = UNUSABLE_STATUS
        row.version = checked.version_ms or 0
        if row.unusable_reason != checked.summary():
            _event(session, tenant_id, checked)
        row.unusable_reason = checked.summary()


def add_unusable_tracking_categories(session: Session, tenant_id: str, rejected: list[Checked]) -> None:
    """After the tenant's categories were replaced: the refused ones, marked unusable with the reason."""
    lengths = column_lengths()
    for checked in rejected:
        data = checked.data if isinstance(checked.data, dict) else {}
        session.merge(TrackingCategoryRow(
            tenant_id=tenant_id, category_id=checked.storage_id(),
            name=clip(data.get("Name") or "", lengths["tracking_categories.name"]), status=UNUSABLE_STATUS,
            options=[], unusable_reason=checked.summary()))
        _event(session, tenant_id, checked)


def _event(session: Session, tenant_id: str, checked: Checked) -> None:
    message = f"Xero {checked.label} is unusable and treated as unknown: {checked.summary()}"
    log.error("tenant %s: %s", tenant_id, message)
    session.add(OperationalEvent(kind=UNUSABLE_RECORD, tenant_id=tenant_id, message=message[:8000]))


def _first(problems: tuple[Problem, ...]) -> Problem:
    return problems[0]


def refused_by_ledger(error: BaseException) -> str | None:
    """Why the database (or its driver) refused a value, when that is what `error` is: a value no check
    foresaw (too long, a NUL, a character the driver cannot encode). None for any other failure."""
    if isinstance(error, DataError):
        return str(error.orig).splitlines()[0] if error.orig else "the ledger refused a value"
    if isinstance(error, StatementError) and isinstance(error.orig, ValueError | UnicodeError):
        return f"{type(error.orig).__name__}: {error.orig}"
    return None


def commit_record_by_record(ledger: Ledger, commit: Callable[..., list[T]], page: Page, mark: Any,
                            committed: Callable[[], None]) -> list[T]:
    """The page again, one record per transaction, after the ledger refused it whole: a record it refuses
    alone is stored as refused (a bill HELD, reference data unusable) with the ledger's words, and the
    watermark moves only after every record was dealt with. `committed` runs after each commit (the
    poll's lease heartbeat moved with it)."""
    def one(checked: Checked) -> Callable[[Session], list[T]]:
        good = [storable(checked.data)] if checked.ok else []

        def work(session: Session) -> list[T]:
            return commit(session, records=good, rejected=[] if checked.ok else [checked], mark=None)
        return work

    found: list[T] = []
    for checked in page.records:
        try:
            found += ledger.retrying(one(checked))
            committed()
            continue
        except Exception as error:
            why = refused_by_ledger(error)
            if why is None:
                raise
        kept = json.dumps(storable(checked.data), ensure_ascii=True)[:4000]  # what the ledger takes for sure
        refused = replace(checked, data={"Xero sent (first 4,000 characters)": kept},
                          problems=(*checked.problems, Problem(checked.label, "", f"the ledger refused it: {why}")))
        try:
            ledger.retrying(one(refused))
            committed()
        except Exception as error:
            if refused_by_ledger(error) is None:
                raise
            log.error("%s; not stored at all: %s", refused.summary(), error)
    def last(session: Session) -> list[T]:
        return commit(session, records=[], rejected=[], mark=mark)
    found += ledger.retrying(last)
    committed()
    return found
