"""What mapping one bill reads and writes: the bill, its vendor chain, accounts, purchase orders (locked
while the bill is decided), what is already billed against them, its PO links and the mapping set."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol, cast

from sqlalchemy import Select, String, Table, any_, bindparam, delete, insert, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from connector.domain.states import BillState
from connector.store.models import AccountRow, Bill, BillPoLink, ContactRow, MappingSet, PurchaseOrderRow

# Bills that are going, or went, to Stampli: they count against their POs' totals.
COUNTED = (BillState.READY, BillState.BATCHED, BillState.DELIVERED, BillState.CHANGED_AFTER_DELIVERY,
           BillState.FAILED)


class BillRead(Protocol):
    """What mapping reads of a bill (and never writes through it): a Bill, or the CountedBill its run count
    read back."""

    @property
    def id(self) -> int: ...
    @property
    def tenant_id(self) -> str: ...
    @property
    def invoice_id(self) -> str: ...
    @property
    def document_type(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def state(self) -> str: ...
    @property
    def mapped_version(self) -> int | None: ...
    @property
    def payload(self) -> dict[str, Any]: ...
    @property
    def row_version(self) -> int: ...
    @property
    def map_runs(self) -> int: ...
    @property
    def documents_failures(self) -> int: ...


@dataclass(frozen=True, slots=True)
class CountedBill:
    """The columns of a bill mapping reads, as its run count returned them: no ORM object to build, and
    none of the columns mapping never reads (its last mapping and reasons, each a JSON document)."""

    id: int
    tenant_id: str
    invoice_id: str
    document_type: str
    version: int
    state: str
    mapped_version: int | None
    payload: dict[str, Any]
    row_version: int
    map_runs: int
    documents_failures: int


def bill(session: Session, tenant_id: str, invoice_id: str) -> Bill | None:
    return session.scalars(select(Bill).where(Bill.tenant_id == tenant_id, Bill.invoice_id == invoice_id)).one_or_none()


def contact(session: Session, tenant_id: str, contact_id: str) -> ContactRow | None:
    return session.get(ContactRow, (tenant_id, contact_id))


def accounts_by_code(session: Session, tenant_id: str, codes: Iterable[str]) -> list[AccountRow]:
    return list(session.scalars(select(AccountRow).where(AccountRow.tenant_id == tenant_id,
                                                         AccountRow.code.in_(list(codes)))))


def purchase_orders_locked(session: Session, tenant_id: str,
                           keys: Iterable[str]) -> list[tuple[str | None, dict[str, Any]]]:
    """The number key and payload of the POs with these keys, locked (in a fixed order, so two bills never
    deadlock) until the caller's transaction commits: two bills against one PO are mapped one after the
    other. Plain rows on the session's connection: mapping reads them for most bills."""
    rows = session.connection().execute(_PURCHASE_ORDERS_LOCKED[_on_postgresql(session)],
                                        {"tenant_id": tenant_id, "keys": list(keys)})
    return [(key, payload) for key, payload in rows]


def billed_against(session: Session, tenant_id: str, po_ids: Iterable[str]) -> dict[str, dict[str, Decimal]]:
    """Per PO, the bills going or gone to Stampli against it and their totals."""
    rows = session.connection().execute(_BILLED_AGAINST[_on_postgresql(session)],
                                        {"tenant_id": tenant_id, "po_ids": list(po_ids), "counted": _COUNTED})
    found: dict[str, dict[str, Decimal]] = {}
    for po_id, invoice_id, amount in rows:
        found.setdefault(po_id, {})[invoice_id] = Decimal(amount)
    return found


def _among(column: Any, name: str, postgresql: bool) -> Any:
    """`column IN (the list passed as `name`)`: on PostgreSQL `= ANY(array)`, one bound value whatever the
    list's length (SQLAlchemy rewrites an expanding IN for each execution, and each length is a statement
    of its own to the server); SQLite has no arrays."""
    if postgresql:
        return column == any_(bindparam(name, type_=ARRAY(String(64))))
    return column.in_(bindparam(name, expanding=True))


def _purchase_orders_locked_statement(postgresql: bool) -> Select[Any]:
    return (select(PurchaseOrderRow.key, PurchaseOrderRow.payload)
            .where(PurchaseOrderRow.tenant_id == bindparam("tenant_id", type_=String(64)),
                   _among(PurchaseOrderRow.key, "keys", postgresql))
            .order_by(PurchaseOrderRow.purchase_order_id).with_for_update())


def _billed_against_statement(postgresql: bool) -> Select[str, str, str]:
    return (select(BillPoLink.purchase_order_id, BillPoLink.invoice_id, BillPoLink.amount)
            .join(Bill, (Bill.tenant_id == BillPoLink.tenant_id) & (Bill.invoice_id == BillPoLink.invoice_id))
            .where(BillPoLink.tenant_id == bindparam("tenant_id", type_=String(64)),
                   _among(BillPoLink.purchase_order_id, "po_ids", postgresql),
                   _among(Bill.state, "counted", postgresql)))


# Built once per dialect (mapping runs them for most bills): building them each time cost more than sending them.
_PURCHASE_ORDERS_LOCKED = {postgresql: _purchase_orders_locked_statement(postgresql) for postgresql in (True, False)}
_BILLED_AGAINST = {postgresql: _billed_against_statement(postgresql) for postgresql in (True, False)}
_COUNTED = [str(state) for state in COUNTED]


def _on_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def replace_po_links(session: Session, bill: BillRead, po_ids: Iterable[str], amount: str, *,
                     had_links: bool = True) -> None:
    """The bill's links become exactly these POs (counted once the bill goes on); `had_links` False: the
    caller knows it has none yet, and nothing is deleted."""
    if had_links:
        session.execute(delete(BillPoLink).where(BillPoLink.tenant_id == bill.tenant_id,
                                                 BillPoLink.invoice_id == bill.invoice_id))
    links = [{"tenant_id": bill.tenant_id, "invoice_id": bill.invoice_id, "purchase_order_id": po_id,
              "amount": amount} for po_id in po_ids]
    if links:  # on the session's connection: the ORM's flush for a row or two cost more than the write
        session.connection().execute(insert(cast(Table, BillPoLink.__table__)), links)


def mapping_set_head(session: Session, tenant_id: str) -> tuple[int, int, datetime] | None:
    """The identity of the mapping set in force (row id, version, creation time), or None."""
    head = session.execute(
        select(MappingSet.id, MappingSet.version, MappingSet.created_at).where(MappingSet.tenant_id == tenant_id)
        .order_by(MappingSet.version.desc()).limit(1)
    ).first()
    return None if head is None else (head.id, head.version, head.created_at)


def mapping_set_data(session: Session, set_id: int) -> dict[str, Any]:
    return session.get_one(MappingSet, set_id).data
