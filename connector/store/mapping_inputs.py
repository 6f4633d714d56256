"""What mapping one bill reads and writes: the bill, its vendor chain, accounts, purchase orders (locked
while the bill is decided), what is already billed against them, its PO links and the mapping set."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol, cast

from sqlalchemy import (
    JSON,
    Select,
    String,
    Table,
    Text,
    Update,
    any_,
    bindparam,
    delete,
    false,
    func,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy import cast as cast_
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from connector.domain.states import BillState
from connector.store.db import needs_transaction
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
    other. Plain rows on the session's connection: mapping reads them for most bills.

    SQLite has no row locks, and its driver begins a transaction only at the first write, so the POs and
    what is billed against them would be read outside any (two map processes on one file would each miss
    the other's bill): the POs' rows are written first (nothing changes), which takes SQLite's one write
    lock until the commit and starts the transaction there, so what is read after it is current."""
    needs_transaction(session)  # a lock held to the commit
    postgresql = _on_postgresql(session)
    keys = list(keys)
    if not postgresql:
        session.connection().execute(_TOUCH_BY_KEY, {"p_tenant_id": tenant_id, "p_keys": keys})
    rows = session.connection().execute(_PURCHASE_ORDERS_LOCKED[postgresql], {"tenant_id": tenant_id, "keys": keys})
    return [(key, payload) for key, payload in rows]


def purchase_orders_locked_and_billed(
        session: Session, tenant_id: str, keys: Iterable[str],
) -> tuple[list[tuple[str | None, dict[str, Any]]], dict[str, dict[str, Decimal]] | None]:
    """purchase_orders_locked, and on PostgreSQL what is billed against those POs read by the same statement
    when that read is known to be current; None when it is not (SQLite, or a PO changed while it was
    locked), and the caller reads it again with billed_against, after the locks.

    Why the check: a statement reads as of its start, so a bill mapped against the PO by the transaction
    this one waited for is not in its read (the second of two bills against one PO would miss the first).
    Every decision that links a bill to a PO also writes the PO's row (touch_linked_pos), so such a
    transaction leaves a newer row version, which the lock returns (the lock follows the row to its newest
    version); when that version is not the one the statement's own read saw, the read is stale."""
    needs_transaction(session)  # a lock held to the commit
    if not _on_postgresql(session):
        return purchase_orders_locked(session, tenant_id, keys), None
    rows = session.connection().execute(_LOCKED_AND_BILLED, {"tenant_id": tenant_id, "keys": list(keys),
                                                             "counted": _COUNTED}).all()
    found: dict[str, dict[str, Decimal]] = {}
    for po_id, _key, _payload, current, billed in rows:
        if not current:
            return [(key, payload) for _, key, payload, _, _ in rows], None
        for invoice_id, amount in billed or ():
            found.setdefault(po_id, {})[invoice_id] = Decimal(amount)
    return [(key, payload) for _, key, payload, _, _ in rows], found


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


def _locked_and_billed_statement() -> Select[Any]:
    """Per PO locked (in purchase_order_id order, as purchase_orders_locked): its key and payload, whether
    the row version the lock returned is the one this statement's read sees, and the bills counted against
    it in that read, as a JSON array of [invoice_id, amount]."""
    orders = cast(Table, PurchaseOrderRow.__table__)
    locked = (select(orders.c.purchase_order_id, orders.c.key, orders.c.payload,
                     cast_(literal_column("purchase_orders.xmin"), Text).label("locked_xmin"))
              .where(orders.c.tenant_id == bindparam("tenant_id", type_=String(64)),
                     _among(orders.c.key, "keys", True))
              .order_by(orders.c.purchase_order_id).with_for_update().cte("locked").prefix_with("MATERIALIZED"))
    seen = orders.alias("seen")
    links, bills = cast(Table, BillPoLink.__table__), cast(Table, Bill.__table__)
    billed = (select(func.json_agg(func.json_build_array(links.c.invoice_id, links.c.amount), type_=JSON))
              .select_from(links.join(bills, (bills.c.tenant_id == links.c.tenant_id)
                                      & (bills.c.invoice_id == links.c.invoice_id)))
              .where(links.c.tenant_id == bindparam("tenant_id", type_=String(64)),
                     links.c.purchase_order_id == locked.c.purchase_order_id,
                     _among(bills.c.state, "counted", True))
              .scalar_subquery())
    current = func.coalesce(cast_(literal_column("seen.xmin"), Text) == locked.c.locked_xmin, false())
    return (select(locked.c.purchase_order_id, locked.c.key, locked.c.payload, current, billed)
            .select_from(locked.outerjoin(seen, (seen.c.tenant_id == bindparam("tenant_id", type_=String(64)))
                                          & (seen.c.purchase_order_id == locked.c.purchase_order_id)))
            .order_by(locked.c.purchase_order_id))


def touch_linked_pos(session: Session, tenant_id: str, po_ids: Sequence[str]) -> None:
    """Write the rows of the POs a decision links its bill to (nothing changes but the row version), so a
    mapping that waited for their locks sees that its read is stale (purchase_orders_locked_and_billed).
    PostgreSQL only: SQLite has one writer at a time."""
    if po_ids and _on_postgresql(session):
        session.connection().execute(_TOUCH, {"tenant_id": tenant_id, "po_ids": list(po_ids)})


def touch_statement(tenant_id: Any, po_ids: Any) -> Update:
    """The write of touch_linked_pos, for the PO ids and tenant given as SQL expressions."""
    orders = cast(Table, PurchaseOrderRow.__table__)
    return (update(orders).where(orders.c.tenant_id == tenant_id, orders.c.purchase_order_id == any_(po_ids))
            .values(purchase_order_id=orders.c.purchase_order_id))


# Built once per dialect (mapping runs them for most bills): building them each time cost more than sending them.
_PURCHASE_ORDERS_LOCKED = {postgresql: _purchase_orders_locked_statement(postgresql) for postgresql in (True, False)}
_BILLED_AGAINST = {postgresql: _billed_against_statement(postgresql) for postgresql in (True, False)}
_LOCKED_AND_BILLED = _locked_and_billed_statement()
_TOUCH = touch_statement(bindparam("tenant_id", type_=String(64)), bindparam("po_ids", type_=ARRAY(String(64))))
_TOUCH_BY_KEY = (update(cast(Table, PurchaseOrderRow.__table__))
                 .where(PurchaseOrderRow.tenant_id == bindparam("p_tenant_id", type_=String(64)),
                        _among(PurchaseOrderRow.key, "p_keys", False))
                 .values(purchase_order_id=PurchaseOrderRow.purchase_order_id))  # SQLite's lock: see above
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
        touch_linked_pos(session, bill.tenant_id, [link["purchase_order_id"] for link in links])


def mapping_set_head(session: Session, tenant_id: str) -> tuple[int, int, datetime] | None:
    """The identity of the mapping set in force (row id, version, creation time), or None."""
    head = session.execute(
        select(MappingSet.id, MappingSet.version, MappingSet.created_at).where(MappingSet.tenant_id == tenant_id)
        .order_by(MappingSet.version.desc()).limit(1)
    ).first()
    return None if head is None else (head.id, head.version, head.created_at)


def mapping_set_data(session: Session, set_id: int) -> dict[str, Any]:
    return session.get_one(MappingSet, set_id).data
