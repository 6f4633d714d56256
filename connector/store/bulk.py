"""A page of rows in one short statement on PostgreSQL: each plain column as one array and each JSON
column as one JSON list, joined again by position on the server.

Sent as one multi-row VALUES statement, or as a parameter set per row, a page of 1,000 rows costs
psycopg a parse of a statement of thousands of placeholders (it never caches one that long) or a
round of dumping per row: a profile of a 1,000-purchase-order page spent about a quarter of a second
parsing alone, more than SQLAlchemy and the JSON encoding together, and a first poll of 10,000 bills
spent most of its ledger time sending bills and their audit rows row by row. JSON in a text array would
be escaped quote by quote in Python, so JSON columns go as one JSON list. SQLite keeps SQLAlchemy's
parameter sets; both databases write the same rows."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import (
    JSON,
    ColumnElement,
    Select,
    String,
    Table,
    TypeDecorator,
    bindparam,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.sql.type_api import TypeEngine

from connector.domain.intake import storable_json


def on_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def page_insert(session: Session, table: Table, rows: list[dict[str, Any]]) -> tuple[Any, Any]:
    """An INSERT of a page of rows (all with the same keys) and the parameters to run it with; an
    `on_conflict_do_update` may follow. Columns the rows leave out get their defaults as a row-by-row
    INSERT would give them."""
    if not on_postgresql(session):
        return sqlite_insert(table), rows
    names = list(rows[0])
    defaults = {column.name: _default(column.default) for column in table.columns
                if column.name not in names and column.default is not None
                and (column.default.is_scalar or column.default.is_callable)}
    if defaults:
        rows = [row | defaults for row in rows]
        names += list(defaults)
    return pg_insert(table).from_select(names, _page_select(table, rows, names, {})), {}


def page_update(session: Session, table: Table, rows: list[dict[str, Any]], *, key: Mapping[str, str],
                key_types: Mapping[str, TypeEngine[Any]]) -> tuple[Any, Any]:
    """An UPDATE of a page of rows (all with the same keys) and the parameters to run it with: each row
    sets its columns where the table's columns named by `key`'s values equal the row's values named by
    its keys (of `key_types`, not of the table)."""
    if not on_postgresql(session):
        return update(table).where(*[table.c[column] == bindparam(name) for name, column in key.items()]), rows
    names = list(rows[0])
    page = _page_select(table, rows, names, key_types).subquery("page_rows")
    return (update(table).values({name: page.c[name] for name in names if name not in key})
            .where(*[table.c[column] == page.c[name] for name, column in key.items()])), {}


def among(session: Session, column: ColumnElement[Any] | InstrumentedAttribute[Any],
          values: Sequence[Any]) -> ColumnElement[bool]:
    """`column IN values`: on PostgreSQL as `= ANY(one array)`, a short statement whatever the number of
    values (an IN of a page's 1,000 ids is a statement psycopg parses anew each time)."""
    if not on_postgresql(session):
        return column.in_(list(values))
    return column == func.any(bindparam(None, list(values), type_=ARRAY(column.type)))


def _page_select(table: Table, rows: list[dict[str, Any]], names: list[str],
                 types: Mapping[str, TypeEngine[Any]]) -> Select[Any]:
    """The page as a SELECT on PostgreSQL, a column per name: the arrays unnested, each JSON list beside them."""
    kinds = {name: _unbounded(types[name] if name in types else table.c[name].type) for name in names}
    plain = [name for name in names if not isinstance(kinds[name], JSON)]
    arrays = [bindparam(f"page_{name}", [row[name] for row in rows], type_=ARRAY(kinds[name])) for name in plain]
    page = func.unnest(*arrays).table_valued(*plain, with_ordinality="n").render_derived(name="page")
    source: Any = page
    columns: dict[str, Any] = {name: page.c[name] for name in plain}
    for name in names:
        if name in columns:
            continue
        listed = bindparam(f"page_{name}", [row[name] for row in rows], type_=_JsonList())
        each = func.json_array_elements(listed).table_valued("value", with_ordinality="n").render_derived(
            name=f"page_{name}")
        source = source.join(each, each.c.n == page.c.n)
        columns[name] = each.c.value
    return select(*[columns[name].label(name) for name in names]).select_from(source)


def _unbounded(kind: TypeEngine[Any]) -> TypeEngine[Any]:
    """A String(n) column's array as plain text: an explicit cast to varchar(n)[] would cut a value too long
    without a word, where the column refuses it (the ledger's last line against a value no check foresaw)."""
    return String() if isinstance(kind, String) and kind.length else kind


def _default(default: Any) -> Any:
    return default.arg(None) if default.is_callable else default.arg


class _JsonList(TypeDecorator[Any]):
    """A page's JSON values as one JSON list, each written by the ledger's JSON writer on its own: once
    each, and a value that needs its non-finite numbers stored as text costs only itself a second pass.
    Sent as text of no declared type beside a `::JSON` of the placeholder, so PostgreSQL reads it as JSON
    once, when running the statement; as text cast to JSON, the planner read the whole page to fold the
    cast first (30 to 70 ms of a 1,000-bill page's planning)."""

    impl = JSON
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], str | None]:
        def process(value: Any) -> str | None:
            return None if value is None else f"[{','.join(storable_json(each) for each in value)}]"
        return process
