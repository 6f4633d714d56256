"""What mapping one bill does in the ledger before and after deciding it, in as few round trips as the
database allows: every bill passes here, and each statement costs more than the mapping itself.

- `count_run_and_read`: the run counted, the bill read back and the tenant's mapping heads, in one
  statement on PostgreSQL (an UPDATE ... RETURNING in a CTE, joined to the heads), two on SQLite.
- `write_decision`: the bill's row (only at the row version it was read with), its audit row, its PO
  links (and a write of each linked PO's row: see mapping_inputs.touch_linked_pos) and the tenant's map
  backlog, in one statement on PostgreSQL (data-modifying CTEs, each taking
  its row from the bill's UPDATE, so nothing is written when the row version moved), the same writes one
  by one on SQLite. It returns the tenant's bills still to map once the transaction commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Integer,
    Select,
    String,
    Table,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from connector.domain.states import BillState
from connector.store import backlog
from connector.store.audit import _checked_source, _moved_columns, record_decided
from connector.store.db import commits_each_statement, needs_transaction
from connector.store.mapping_inputs import BillRead, CountedBill, replace_po_links, touch_statement
from connector.store.models import (
    Bill,
    BillPoLink,
    BillTransition,
    MapBacklog,
    MappingProfile,
    MappingSet,
    ProfileMappingSet,
    Tenant,
    utcnow,
)
from connector.store.profiles import MappingHeads, SetHead, mapping_heads
from connector.store.sweeps import count_map_run_and_read

_BILLS = cast(Table, Bill.__table__)
_COUNTED_COLUMNS = tuple(field.name for field in fields(CountedBill))  # the bill's columns of the same names


def count_run_and_read(session: Session, tenant_id: str, invoice_id: str, version: int,
                       now: datetime) -> tuple[BillRead, MappingHeads] | None:
    """store.sweeps.count_map_run_and_read and store.profiles.mapping_heads for the bill's tenant, in one
    round trip on PostgreSQL; None when the bill is no longer DISCOVERED at this version."""
    if session.get_bind().dialect.name != "postgresql":
        counted = count_map_run_and_read(session, tenant_id, invoice_id, version, now)
        return None if counted is None else (counted, mapping_heads(session, tenant_id))
    row = session.connection().execute(_COUNT_AND_READ, {"b_tenant_id": tenant_id, "b_invoice_id": invoice_id,
                                                         "b_version": version, "b_now": now}).first()
    if row is None:
        return None
    bill = CountedBill(*row[:len(_COUNTED_COLUMNS)])
    own_id, own_version, own_at, profile_id, profile_name, shared_id, shared_version, shared_at, \
        reference_version = row[len(_COUNTED_COLUMNS):]
    return bill, MappingHeads(
        own=SetHead(own_id, own_version, own_at) if own_id is not None else None,
        profile_id=profile_id, profile_name=profile_name,
        profile=SetHead(shared_id, shared_version, shared_at) if shared_id is not None else None,
        reference_version=int(reference_version or 0))


def _count_and_read_statement() -> Select[Any]:
    bill_id = select(_BILLS.c.id).where(_BILLS.c.tenant_id == bindparam("b_tenant_id", type_=String(64)),
                                        _BILLS.c.invoice_id == bindparam("b_invoice_id", type_=String(64)))
    counted = (update(_BILLS)
               .where(_BILLS.c.id == bill_id.scalar_subquery(),
                      _BILLS.c.version == bindparam("b_version", type_=BigInteger),
                      _BILLS.c.state == BillState.DISCOVERED)
               .values(map_runs=_BILLS.c.map_runs + 1,
                       map_started_at=bindparam("b_now", type_=Bill.map_started_at.type))
               .returning(*(_BILLS.c[name] for name in _COUNTED_COLUMNS)).cte("counted"))
    own = (select(MappingSet.id, MappingSet.version, MappingSet.created_at)
           .where(MappingSet.tenant_id == counted.c.tenant_id)
           .order_by(MappingSet.version.desc()).limit(1).lateral("own"))
    shared = (select(ProfileMappingSet.id, ProfileMappingSet.version, ProfileMappingSet.created_at)
              .where(ProfileMappingSet.profile_id == Tenant.profile_id)
              .order_by(ProfileMappingSet.version.desc()).limit(1).lateral("shared"))
    return (select(*(counted.c[name] for name in _COUNTED_COLUMNS), own.c.id.label("own_id"),
                   own.c.version.label("own_version"), own.c.created_at.label("own_created_at"), Tenant.profile_id,
                   MappingProfile.name, shared.c.id.label("shared_id"), shared.c.version.label("shared_version"),
                   shared.c.created_at.label("shared_created_at"), Tenant.reference_version)
            .select_from(counted)
            .join(Tenant, Tenant.id == counted.c.tenant_id)
            .outerjoin(MappingProfile, MappingProfile.id == Tenant.profile_id)
            .outerjoin(own, true())
            .outerjoin(shared, true()))


_COUNT_AND_READ = _count_and_read_statement()  # built once: it runs for every bill


def write_decision(session: Session, bill: BillRead, to_state: BillState, columns: dict[str, Any], *,
                   reason: str | None, mapped_with: str | None, po_ids: Sequence[str], amount: str,
                   had_links: bool) -> int:
    """Write a decided bill (as store.audit.record_decided), replace its PO links (as
    store.mapping_inputs.replace_po_links) and return what store.backlog.still_to_map would: the tenant's
    bills still DISCOVERED once this transaction commits, its backlog row locked until then. StaleDataError
    when the bill's row version moved since it was read (nothing is written). NeedsTransaction, before
    anything is written, when its writes are more than one statement on a session whose statements each
    commit by themselves (links to delete first, objects added to the session, SQLite). There, a count
    below zero is returned as it is (written, not recounted): store.backlog.recount is two statements that
    must share a transaction, and the caller recounts in one."""
    statement_by_statement = session.get_bind().dialect.name != "postgresql" or backlog.pending(session)
    if statement_by_statement or had_links or session.new or session.dirty:
        needs_transaction(session)
    if statement_by_statement:
        record_decided(session, bill, to_state, columns, reason=reason, mapped_with=mapped_with)
        replace_po_links(session, bill, po_ids, amount, had_links=had_links)
        return backlog.still_to_map(session, bill.tenant_id)
    source = _checked_source(bill.invoice_id, bill.state, to_state)
    connection = session.connection()
    if had_links:  # its own statement: links deleted and inserted in one statement would collide
        connection.execute(delete(BillPoLink).where(BillPoLink.tenant_id == bill.tenant_id,
                                                    BillPoLink.invoice_id == bill.invoice_id))
    now = utcnow()
    change = (to_state == BillState.DISCOVERED) - (source == BillState.DISCOVERED)
    values = {**columns, **_moved_columns(to_state, now)}
    row = connection.execute(_write_statement(tuple(sorted(values))), {
        **values, "row_version": bill.row_version + 1,
        "b_id": bill.id, "b_row_version": bill.row_version,
        "t_at": now, "t_tenant_id": bill.tenant_id, "t_invoice_id": bill.invoice_id, "t_from_state": source,
        "t_to_state": to_state, "t_reason": reason, "t_version": bill.version, "t_mapped_with": mapped_with,
        "l_po_ids": list(po_ids), "l_amount": amount, "k_change": change,
    }).one()
    written, left = row
    if written is None:
        raise StaleDataError(f"bill {bill.invoice_id}: changed since it was read (row version {bill.row_version})")
    left = int(left)
    return left if left >= 0 or commits_each_statement(session) else backlog.recount(session, bill.tenant_id)


_WRITES: dict[tuple[str, ...], Select[Any]] = {}


def _write_statement(columns: tuple[str, ...]) -> Select[Any]:
    """The one statement for decisions that set these columns of the bill (built once per set of columns)."""
    found = _WRITES.get(columns)
    if found is not None:
        return found
    values = {name: bindparam(name, type_=_BILLS.c[name].type) for name in (*columns, "row_version")}
    written = (update(_BILLS)
               .where(_BILLS.c.id == bindparam("b_id", type_=Integer),
                      _BILLS.c.row_version == bindparam("b_row_version", type_=Integer))
               .values(values).returning(_BILLS.c.id).cte("written"))
    transitions = cast(Table, BillTransition.__table__)
    audit_values = {name: bindparam(f"t_{name}", type_=transitions.c[name].type)
                    for name in ("at", "tenant_id", "invoice_id", "from_state", "to_state", "reason", "version",
                                 "mapped_with")}
    audited = insert(transitions).from_select(
        [*audit_values, "actor"],
        select(*audit_values.values(), literal("connector", String(100))).select_from(written)).cte("audited")
    links = cast(Table, BillPoLink.__table__)
    po_ids = func.unnest(bindparam("l_po_ids", type_=ARRAY(String(64)))).table_valued("po_id").render_derived(name="po")
    linked = insert(links).from_select(
        ["tenant_id", "invoice_id", "purchase_order_id", "amount"],
        select(bindparam("t_tenant_id", type_=String(64)), bindparam("t_invoice_id", type_=String(64)),
               po_ids.c.po_id, bindparam("l_amount", type_=String(32))).select_from(written.join(po_ids, true()))
    ).cte("linked")
    touched = (touch_statement(bindparam("t_tenant_id", type_=String(64)),
                               bindparam("l_po_ids", type_=ARRAY(String(64))))
               .where(exists(select(written.c.id))).cte("touched"))  # see mapping_inputs.touch_linked_pos
    counted = pg_insert(MapBacklog).from_select(
        ["tenant_id", "to_map"],
        select(bindparam("t_tenant_id", type_=String(64)), bindparam("k_change", type_=Integer)).select_from(written))
    counted = counted.on_conflict_do_update(index_elements=[MapBacklog.tenant_id],
                                            set_={"to_map": MapBacklog.to_map + counted.excluded.to_map})
    kept = counted.returning(MapBacklog.to_map).cte("kept")
    found = cast(Select[Any], select(select(written.c.id).scalar_subquery(),
                                     select(kept.c.to_map).scalar_subquery()))
    found = _WRITES[columns] = found.add_cte(audited, linked, touched)
    return found
