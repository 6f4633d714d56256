"""The ledger on SQLite and PostgreSQL: claims never put one bill in two files; every move is audited."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from connector.domain.states import BillState
from connector.onboarding import add_grant, add_tenant
from connector.secret import Secret
from connector.services.batch import assemble_batches
from connector.services.context import Services
from connector.services.dispatch import dispatch_due_polls
from connector.store.audit import IllegalTransition, record
from connector.store.models import Batch, Bill, BillTransition
from tests.conftest import PG_ADMIN_URL
from tests.support.services import make_services


@pytest.fixture(params=["sqlite", "postgresql"])
def services(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Services]:
    if request.param == "sqlite":
        built = make_services(f"sqlite:///{tmp_path / 'ledger.db'}", tmp_path)
    else:
        schema = request.getfixturevalue("pg_schema")
        built = make_services(PG_ADMIN_URL, tmp_path, schema=schema)
    yield built
    built.close()


def seed_ready_bills(services: Services, count: int, *, cap: int = 500) -> str:
    grant = add_grant(services.ledger, services.vault, client_id="c", client_secret=Secret("s"),
                      refresh_token=Secret("r"))
    add_tenant(services.ledger, tenant_id="t-1", name="Acme", short_name="acme", grant_id=grant,
               sftp_target_id=None, max_bills_per_file=cap)
    with services.ledger.transaction() as session:
        for n in range(count):
            bill = Bill(tenant_id="t-1", invoice_id=f"inv-{n}", xero_status="AUTHORISED", version=1, state=None,
                        reasons=[], payload={}, mapping=_record(f"inv-{n}"))
            session.add(bill)
            record(session, bill, BillState.DISCOVERED)
            record(session, bill, BillState.READY)
    return "t-1"


def _record(invoice_id: str) -> dict[str, object]:
    return {"invoice_id": invoice_id, "invoice_number": "PO-1", "vendor_id": "v", "vendor_name": "V",
            "invoice_date": "2026-01-02", "due_date": "", "currency": "USD", "currency_rate": "", "sub_total": "1",
            "total_tax": "0", "total": "1", "po_numbers": ["PO-1"], "flagged": False, "flags": [], "lines": []}


def test_concurrent_assemblers_never_put_a_bill_in_two_files(services: Services) -> None:
    tenant = seed_ready_bills(services, 120, cap=25)
    errors: list[BaseException] = []

    def assemble() -> None:
        try:
            assemble_batches(services, tenant)
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=assemble) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    with services.ledger.transaction() as session:
        batches = list(session.scalars(select(Batch)))
        assert sum(b.bill_count for b in batches) == 120
        assert all(0 < b.bill_count <= 25 for b in batches)
        assert len({b.name for b in batches}) == len(batches)
        assert session.scalar(select(func.count()).where(Bill.state == BillState.BATCHED)) == 120
        to_batched = session.scalar(select(func.count()).where(BillTransition.to_state == BillState.BATCHED))
        assert to_batched == 120


def test_no_ready_bills_makes_no_file(services: Services) -> None:
    tenant = seed_ready_bills(services, 0)
    assert assemble_batches(services, tenant) == []
    with services.ledger.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Batch)) == 0


def test_a_file_is_staged_with_the_stored_bytes(services: Services) -> None:
    tenant = seed_ready_bills(services, 3)
    assemble_batches(services, tenant)
    with services.ledger.transaction() as session:
        batch = session.scalars(select(Batch)).one()
        assert batch.staged_path is not None
        assert Path(batch.staged_path).read_bytes() == batch.content
        assert batch.content.count(b"\r\n") == 4  # header + three bills without lines


def test_the_audit_refuses_moves_the_state_table_forbids(services: Services) -> None:
    seed_ready_bills(services, 1)
    with services.ledger.transaction() as session:
        bill = session.scalars(select(Bill)).one()
        with pytest.raises(IllegalTransition):
            record(session, bill, BillState.DELIVERED)


def test_a_duplicated_beat_tick_polls_each_due_tenant_once(services: Services) -> None:
    seed_ready_bills(services, 0)
    first = dispatch_due_polls(services)
    second = dispatch_due_polls(services)
    assert [m.tenant_id for m in first] == ["t-1"]  # type: ignore[union-attr]
    assert second == []


def test_processes_starting_together_migrate_one_at_a_time(pg_schema: str) -> None:
    from connector.store.db import Ledger

    errors: list[BaseException] = []

    def start() -> None:
        try:
            Ledger.connect(PG_ADMIN_URL, schema=pg_schema).dispose()
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_a_pooled_connection_is_pinged_only_when_it_rested_and_a_dead_one_is_replaced(
        pg_schema: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A connection handed back and taken again at once costs no round trip before its statement (the pool's
    own pre-ping cost one on every checkout); one that rested is pinged, and replaced when the server
    dropped it meanwhile."""
    import psycopg
    from sqlalchemy import event, text

    from connector.store import db

    pings: list[str] = []

    class Counting(psycopg.Cursor[Any]):
        def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
            if str(query) == ";":
                pings.append(str(query))
            return super().execute(query, *args, **kwargs)

    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 2.0, raising=False)  # five checkouts fit well inside
    engine = db.make_engine(PG_ADMIN_URL, schema=pg_schema)
    event.listen(engine, "connect", lambda dbapi_connection, _record: setattr(dbapi_connection, "cursor_factory",
                                                                              Counting))
    try:
        def backend() -> int:
            with engine.connect() as connection:
                return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())

        first = backend()
        assert [backend() for _ in range(5)] == [first] * 5
        assert pings == []
        time.sleep(2.2)
        assert backend() == first
        assert pings == [";"]
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [first])
        time.sleep(2.2)
        assert backend() != first  # the ping found it dead: replaced, and the statement ran
    finally:
        engine.dispose()


def test_a_kept_connection_commits_without_waiting_for_the_flush_and_never_lends_that_to_the_pool(
        pg_schema: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The per-bill path (mapping) runs on connections its thread keeps (one autocommitted, one for
    transactions), with synchronous_commit off; every other unit of work still waits for the flush. A kept
    connection the server dropped while it rested is replaced on its next use; one whose statement failed
    is never used again."""
    import psycopg
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from connector.store import db

    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.3)
    ledger = db.Ledger.connect(PG_ADMIN_URL, schema=pg_schema)
    try:
        kept = ledger.kept()
        assert ledger.kept() is kept  # one per thread

        def setting_and_backend(session: db.Session) -> tuple[str, int]:
            row = session.execute(text("SELECT current_setting('synchronous_commit'), pg_backend_pid()")).one()
            return str(row[0]), int(row[1])

        assert kept.autocommitted(setting_and_backend)[0] == "off"
        assert kept.retrying(setting_and_backend)[0] == "off"
        with ledger.transaction() as session:
            assert setting_and_backend(session)[0] == "on"
        first = kept.autocommitted(setting_and_backend)[1]
        first_for_transactions = kept.retrying(setting_and_backend)[1]

        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            for backend in (first, first_for_transactions):
                admin.execute("SELECT pg_terminate_backend(%s)", [backend])
        time.sleep(0.4)
        setting, second = kept.retrying(setting_and_backend)
        assert (setting, second != first_for_transactions) == ("off", True)
        setting, second_autocommitted = kept.autocommitted(setting_and_backend)
        assert (setting, second_autocommitted != first) == ("off", True)

        with pytest.raises(DBAPIError):
            kept.retrying(lambda session: session.execute(text("SELECT 1/0")))
        setting, third = kept.retrying(setting_and_backend)
        assert (setting, third != second) == ("off", True)
        assert kept.autocommitted(setting_and_backend)[1] == second_autocommitted  # the healthy one is kept
        for _ in range(3):  # however many the pool lends, none carries the kept connections' setting
            with ledger.transaction() as session:
                assert setting_and_backend(session)[0] == "on"
    finally:
        ledger.dispose()


def test_a_kept_connection_holds_no_more_memory_after_a_thousand_bills_than_after_ten(pg_schema: str) -> None:
    """Mapping runs two units of work a bill on its thread's kept connections, one autocommitted and one a
    transaction. Switching one connection's isolation level for each made SQLAlchemy keep a callback per
    switch (to reset the level when the connection goes back to a pool it never goes back to): 0.8 MB
    per 1,000 bills, for as long as the worker lived."""
    import tracemalloc

    from sqlalchemy import text

    from connector.store import db

    ledger = db.Ledger.connect(PG_ADMIN_URL, schema=pg_schema)
    try:
        kept = ledger.kept()

        def one_bill() -> None:
            kept.autocommitted(lambda session: session.execute(text("SELECT 1")))
            kept.retrying(lambda session: session.execute(text("SELECT 1")))

        for _ in range(10):
            one_bill()
        tracemalloc.start()
        try:
            before = tracemalloc.take_snapshot()
            for _ in range(1000):
                one_bill()
            after = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
        grown = sum(stat.size_diff for stat in after.compare_to(before, "filename") if "sqlalchemy" in
                    str(stat.traceback[0].filename) or "connector" in str(stat.traceback[0].filename))
        assert grown < 64 * 1024, f"{grown:,} bytes kept after 1,000 bills"
    finally:
        ledger.dispose()
