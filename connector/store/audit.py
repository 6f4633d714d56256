"""State changes of bills, each written with its audit row in the same transaction: one bill at a time
through the ORM (`record`) or in two statements (`record_decided`, mapping's), or a page of bills in a few
statements (`BillPage`: a poll's page, a file's bills as it is made or delivered), by the same rules."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Integer, Table, bindparam, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from connector.domain.states import BillState, can_move
from connector.store import backlog
from connector.store.bulk import among, page_insert, page_update
from connector.store.mapping_inputs import BillRead
from connector.store.models import Bill, BillTransition, utcnow


class IllegalTransition(RuntimeError):
    """A bug: code tried a move the state table forbids."""


def record(
    session: Session,
    bill: Bill,
    to_state: BillState,
    *,
    reason: str | None = None,
    batch_id: int | None = None,
    file_name: str | None = None,
    actor: str = "connector",
    mapped_with: str | None = None,
) -> None:
    """Move `bill` to `to_state` and append the audit row; refuses moves the state table forbids."""
    source = _checked_source(bill.invoice_id, bill.state, to_state)
    backlog.note(session, bill.tenant_id, bill.state, to_state)
    for name, value in _moved_columns(to_state, utcnow()).items():
        setattr(bill, name, value)
    session.add(BillTransition(**_transition(bill.tenant_id, bill.invoice_id, source, to_state, bill.version,
                                             reason=reason, batch_id=batch_id, file_name=file_name, actor=actor,
                                             mapped_with=mapped_with)))


def record_decided(session: Session, bill: BillRead, to_state: BillState, columns: dict[str, Any], *,
                   reason: str | None, mapped_with: str | None) -> None:
    """As `record` with `columns` set too, for a bill the session need not hold (mapping, for every bill):
    written at once by two statements on the session's connection rather than by the ORM's flush, which
    cost a quarter of a mapping's CPU. The row is written only while its row version is the one `bill` was
    read with, else StaleDataError, as the ORM's own check raises, and the caller's transaction runs again."""
    source = _checked_source(bill.invoice_id, bill.state, to_state)
    backlog.note(session, bill.tenant_id, bill.state, to_state)
    now = utcnow()
    connection = session.connection()
    written = connection.execute(_UPDATE_IF_UNCHANGED, {
        **columns, **_moved_columns(to_state, now), "row_version": bill.row_version + 1,
        "b_id": bill.id, "b_row_version": bill.row_version})
    if written.rowcount != 1:
        raise StaleDataError(f"bill {bill.invoice_id}: changed since it was read (row version {bill.row_version})")
    connection.execute(_INSERT_TRANSITION, _transition(bill.tenant_id, bill.invoice_id, source, to_state,
                                                       bill.version, reason=reason, mapped_with=mapped_with)
                       | {"at": now})


_BILLS = cast(Table, Bill.__table__)
_UPDATE_IF_UNCHANGED = update(_BILLS).where(_BILLS.c.id == bindparam("b_id"),
                                            _BILLS.c.row_version == bindparam("b_row_version"))
_INSERT_TRANSITION = insert(cast(Table, BillTransition.__table__))


def _checked_source(invoice_id: str, state: str | None, to_state: BillState) -> BillState | None:
    source = BillState(state) if state else None
    if source is not None and source != to_state and not can_move(source, to_state):
        raise IllegalTransition(f"bill {invoice_id}: {source} → {to_state} is not allowed")
    return source


def _moved_columns(to_state: BillState, now: datetime) -> dict[str, Any]:
    """What a move sets on the bill's row besides its state."""
    columns: dict[str, Any] = {"state": to_state, "state_changed_at": now}
    if to_state == BillState.DISCOVERED:  # a new version to map: it needs a message and a file of its own
        columns.update(batch_id=None, map_sent_at=None, map_started_at=None, map_runs=0)
    return columns


def _transition(tenant_id: str, invoice_id: str, source: BillState | None, to_state: BillState, version: int | None,
                *, reason: str | None, batch_id: int | None = None, file_name: str | None = None,
                actor: str = "connector", mapped_with: str | None = None) -> dict[str, Any]:
    return {"tenant_id": tenant_id, "invoice_id": invoice_id, "from_state": source, "to_state": to_state,
            "reason": reason, "version": version, "batch_id": batch_id, "file_name": file_name, "actor": actor,
            "mapped_with": mapped_with}


@dataclass
class PageBill:
    """A bill as a page's bulk write reads it (the columns its rules decide on) and what it will write."""

    tenant_id: str
    invoice_id: str
    id: int | None = None  # None: not in the ledger yet
    state: str | None = None
    version: int = 0
    row_version: int = 0
    document_type: str = "BILL"
    mapped_version: int | None = None
    changes: dict[str, Any] = field(default_factory=dict)

    def set(self, **columns: Any) -> None:
        """Columns to write (the version is read back by the rules, and by the audit row)."""
        self.changes.update(columns)
        if "version" in columns:
            self.version = columns["version"]


class BillPage:
    """A page of bills written in a few statements: one INSERT for the new rows, one UPDATE per kind of
    change, one INSERT for the audit rows (store.bulk: on PostgreSQL each one short statement). The moves
    follow `record`'s rules and write what it writes; an UPDATE checks and bumps each row's version as the
    ORM does, so a write that raced ours makes the transaction fail (StaleDataError) and be run again."""

    def __init__(self, session: Session, tenant_id: str) -> None:
        self._session = session
        self._tenant_id = tenant_id
        self._bills: dict[str, PageBill] = {}
        self._transitions: list[dict[str, Any]] = []
        self._moved: set[str] = set()
        self._now = utcnow()

    def read(self, invoice_ids: Iterable[str]) -> dict[str, PageBill]:
        """The tenant's bills among these ids, as they are in the ledger (pending ORM changes flushed)."""
        return self._read(among(self._session, Bill.invoice_id, list(invoice_ids)))

    def read_batch(self, batch_id: int) -> dict[str, PageBill]:
        """The bills in this file, as they are in the ledger (pending ORM changes flushed): a file's bills
        move together, without loading their payloads."""
        return self._read(Bill.batch_id == batch_id)

    def _read(self, which: ColumnElement[bool]) -> dict[str, PageBill]:
        self._session.flush()
        rows = self._session.execute(
            select(Bill.id, Bill.invoice_id, Bill.state, Bill.version, Bill.row_version, Bill.document_type,
                   Bill.mapped_version).where(Bill.tenant_id == self._tenant_id, which).order_by(Bill.id))
        for row in rows:
            self._bills[row.invoice_id] = PageBill(self._tenant_id, row.invoice_id, row.id, row.state, row.version,
                                                   row.row_version, row.document_type, row.mapped_version)
        return dict(self._bills)

    def add(self, bills: Iterable[Bill]) -> list[PageBill]:
        """Bills the session holds, to be moved with the page (pending ORM changes flushed first, so the page
        writes over the row versions the ledger has)."""
        self._session.flush()
        added = [PageBill(self._tenant_id, b.invoice_id, b.id, b.state, b.version, b.row_version, b.document_type,
                          b.mapped_version) for b in bills]
        self._bills.update((b.invoice_id, b) for b in added)
        return added

    def new(self, invoice_id: str, document_type: str = "BILL") -> PageBill:
        bill = PageBill(self._tenant_id, invoice_id, document_type=document_type)
        bill.set(tenant_id=self._tenant_id, invoice_id=invoice_id, document_type=document_type)
        self._bills[invoice_id] = bill
        return bill

    def record(self, bill: PageBill, to_state: BillState, *, reason: str | None = None, batch_id: int | None = None,
               file_name: str | None = None, actor: str = "connector") -> None:
        """As `record`: move the bill and append its audit row (both written by `write`). A bill moves at
        most once a page: its audit rows are written in one statement, which keeps no order among them."""
        if bill.invoice_id in self._moved:
            raise ValueError(f"bill {bill.invoice_id} moves twice in one page")
        self._moved.add(bill.invoice_id)
        source = _checked_source(bill.invoice_id, bill.state, to_state)
        backlog.note(self._session, bill.tenant_id, bill.state, to_state)
        bill.set(**_moved_columns(to_state, self._now))
        bill.state = to_state
        self._transitions.append(_transition(bill.tenant_id, bill.invoice_id, source, to_state, bill.version,
                                             reason=reason, batch_id=batch_id, file_name=file_name, actor=actor)
                                 | {"at": self._now})

    def write(self) -> int:
        """Send the page's rows; returns how many statements that took."""
        statements = 0
        inserts: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        updates: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        for bill in self._bills.values():
            if not bill.changes:
                continue
            if bill.id is None:
                inserts[tuple(sorted(bill.changes))].append({**bill.changes, "row_version": 1})
            else:
                updates[tuple(sorted(bill.changes))].append(
                    {**bill.changes, "row_version": bill.row_version + 1, "b_id": bill.id, "b_row_version":
                     bill.row_version})
        table = cast(Table, Bill.__table__)
        for rows in inserts.values():
            self._session.execute(*page_insert(self._session, table, rows))
            statements += 1
        for rows in updates.values():
            result = self._session.execute(*page_update(
                self._session, table, rows, key={"b_id": "id", "b_row_version": "row_version"},
                key_types={"b_id": Integer(), "b_row_version": Integer()}))
            statements += 1
            if result.rowcount != len(rows):  # type: ignore[attr-defined]
                raise StaleDataError(f"bills of tenant {self._tenant_id}: {len(rows) - result.rowcount} of "  # type: ignore[attr-defined]
                                     f"{len(rows)} changed since this page read them")
        if self._transitions:
            self._session.execute(*page_insert(self._session, cast(Table, BillTransition.__table__),
                                               self._transitions))
            statements += 1
        for bill in self._bills.values():  # a copy the session loaded is read again
            if bill.id is not None and bill.changes:
                loaded = self._session.identity_map.get(self._session.identity_key(Bill, (bill.id,)))
                if loaded is not None:
                    self._session.expire(loaded)
        self._bills = {}
        self._transitions = []
        self._moved = set()
        return statements
