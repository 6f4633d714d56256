"""A page of a Xero delta read goes into the ledger in one statement for purchase orders and contacts, and
in a few for bills (whatever the page's size), on SQLite and PostgreSQL, and the upsert keeps the rules it
had record by record."""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from connector.domain.intake import RecordKind, check_page
from connector.domain.states import BillState
from connector.onboarding import add_grant, add_tenant
from connector.secret import Secret
from connector.services.context import Services
from connector.services.holds import PO_REASONS
from connector.store import backlog
from connector.store.audit import BillPage
from connector.store.holds import reopen_held_for, reopen_many
from connector.store.intake import column_lengths
from connector.store.models import Bill, BillTransition, ContactRow, MapBacklog, PurchaseOrderRow
from connector.store.reference import Contact
from connector.store.xero_records import upsert_bills, upsert_contacts, upsert_purchase_orders
from tests.conftest import PG_ADMIN_URL
from tests.support.services import make_services

TENANT = "t-1"


@pytest.fixture(params=["sqlite", "postgresql"])
def services(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Services]:
    if request.param == "sqlite":
        built = make_services(f"sqlite:///{tmp_path / 'ledger.db'}", tmp_path)
    else:
        built = make_services(PG_ADMIN_URL, tmp_path, schema=request.getfixturevalue("pg_schema"))
    grant = add_grant(built.ledger, built.vault, client_id="c", client_secret=Secret("s"), refresh_token=Secret("r"))
    add_tenant(built.ledger, tenant_id=TENANT, name="Acme", short_name="acme", grant_id=grant, sftp_target_id=None)
    yield built
    built.close()


def purchase_order(n: int, version: int, number: str | None = None) -> dict[str, Any]:
    return {"PurchaseOrderID": f"po-{n}", "PurchaseOrderNumber": number or f"PO-{n:04d}", "Status": "AUTHORISED",
            "Contact": {"ContactID": "c-1"}, "UpdatedDateUTC": f"/Date({version}+0000)/"}


def contact(n: int, name: str) -> Contact:
    return Contact(contact_id=f"c-{n}", name=name, status="ACTIVE", is_supplier=True, merged_to=None, version=n,
                   payload={"ContactID": f"c-{n}", "Name": name})


class Statements:
    """Counts the statements the ledger's engine sends."""

    def __init__(self, services: Services) -> None:
        self.count = 0
        self._engine = services.ledger.engine
        event.listen(self._engine, "before_cursor_execute", self._seen)

    def _seen(self, *_: Any) -> None:
        self.count += 1

    def close(self) -> None:
        event.remove(self._engine, "before_cursor_execute", self._seen)


def test_a_page_of_a_thousand_purchase_orders_is_one_statement_and_only_newer_versions_are_written(
    services: Services,
) -> None:
    with services.ledger.transaction() as session:
        assert upsert_purchase_orders(session, TENANT, [purchase_order(n, 1_000) for n in range(1000)]) == 1000
    counted = Statements(services)
    with services.ledger.transaction() as session:
        page = [purchase_order(n, 2_000 if n < 10 else 1_000, number="PO-9999" if n < 10 else None)
                for n in range(1000)]
        written = upsert_purchase_orders(session, TENANT, page)
        statements = counted.count
    counted.close()
    assert written == 10  # the 990 re-seen versions change nothing
    assert statements == 1
    with services.ledger.transaction() as session:
        rows = {r.purchase_order_id: r for r in session.scalars(select(PurchaseOrderRow))}
    assert (rows["po-3"].number, rows["po-3"].key, rows["po-3"].version) == ("PO-9999", "9999", 2_000)
    assert rows["po-500"].number == "PO-0500"


def test_a_page_of_contacts_is_one_statement_beside_the_tenants_reference_version_and_replaces_what_was_held(
    services: Services,
) -> None:
    with services.ledger.transaction() as session:
        upsert_contacts(session, TENANT, [contact(n, "old") for n in range(1, 501)], read_at=services.clock())
    counted = Statements(services)
    with services.ledger.transaction() as session:
        upsert_contacts(session, TENANT, [contact(n, "new") for n in range(1, 1001)], read_at=services.clock())
        statements = counted.count
    counted.close()
    assert statements == 2  # the page, and the tenant's reference_version (workers' copies are stale)
    with services.ledger.transaction() as session:
        names = list(session.scalars(select(ContactRow.name)))
    assert len(names) == 1000
    assert set(names) == {"new"}


def bill(n: int, version: int) -> dict[str, Any]:
    return {"InvoiceID": f"inv-{n}", "InvoiceNumber": f"INV-{n:04d}", "Type": "ACCPAY", "Status": "AUTHORISED",
            "UpdatedDateUTC": f"/Date({version}+0000)/"}


def test_a_page_of_a_thousand_bills_is_a_few_statements_and_keeps_every_state_rule_and_audit_row(
    services: Services,
) -> None:
    counted = Statements(services)
    with services.ledger.transaction() as session:
        first = upsert_bills(session, TENANT, [bill(n, 1_000) for n in range(1000)])
        statements_first = counted.count
    assert len(first) == 1000
    assert statements_first == 3  # read the page's bills, insert the new ones, insert their audit rows
    others = {BillState.READY: range(0, 10), BillState.HELD: range(10, 20), BillState.DELIVERED: range(20, 30),
              BillState.BATCHED: range(30, 40)}
    with services.ledger.transaction() as session:
        for state, numbers in others.items():
            session.execute(update(Bill).where(Bill.invoice_id.in_([f"inv-{n}" for n in numbers])).values(
                state=state, reasons=[{"code": "x"}], map_sent_at=services.clock()))
        backlog.recount(session, TENANT)
    counted.count = 0
    with services.ledger.transaction() as session:
        page = [bill(n, 2_000 if n < 40 else 1_000) for n in range(1001)]  # 40 changed, 960 re-seen, 1 new
        to_map = upsert_bills(session, TENANT, page)
        statements = counted.count
    counted.close()
    # the read, the stored records of the bills in a file or delivered that came in newer (is the change only
    # a credit applied?), the new row, one UPDATE per kind of change (re-opened, changed after delivery, in
    # a file) run for many parameter sets, the audit rows; the backlog's count follows at commit
    assert statements == 7
    assert sorted(m.invoice_id for m in to_map) == sorted([f"inv-{n}" for n in range(20)] + ["inv-1000"])
    with services.ledger.transaction() as session:
        bills = {b.invoice_id: b for b in session.scalars(select(Bill))}
        moves = [(t.invoice_id, t.from_state, t.to_state, t.reason, t.version) for t in session.scalars(
            select(BillTransition).where(BillTransition.version == 2_000).order_by(BillTransition.invoice_id))]
        new_move = session.scalars(select(BillTransition).where(BillTransition.invoice_id == "inv-1000")).one()
        to_map_kept = session.scalar(select(MapBacklog.to_map).where(MapBacklog.tenant_id == TENANT))
    for n in range(20):  # READY and HELD re-open: DISCOVERED, reasons and the map mark cleared
        reopened = bills[f"inv-{n}"]
        assert (reopened.state, reopened.reasons, reopened.map_sent_at, reopened.version) == (
            BillState.DISCOVERED, [], None, 2_000)
        assert reopened.row_version == 2  # written once, its version checked and moved as the ORM does
    for n in range(20, 30):
        assert bills[f"inv-{n}"].state == BillState.CHANGED_AFTER_DELIVERY
    for n in range(30, 40):  # in a file: the new version is stored, the state is left to delivery
        assert (bills[f"inv-{n}"].state, bills[f"inv-{n}"].version) == (BillState.BATCHED, 2_000)
    assert (bills["inv-500"].version, bills["inv-500"].state) == (1_000, BillState.DISCOVERED)
    assert (new_move.from_state, new_move.to_state, new_move.reason) == (None, BillState.DISCOVERED, "new")
    assert moves == sorted(
        [(f"inv-{n}", BillState.READY if n < 10 else BillState.HELD, BillState.DISCOVERED, "changed in Xero", 2_000)
         for n in range(20)]
        + [(f"inv-{n}", BillState.DELIVERED, BillState.CHANGED_AFTER_DELIVERY, "changed in Xero after delivery",
            2_000) for n in range(20, 30)])
    assert to_map_kept == 960 + 20 + 1


def test_a_page_of_bills_written_over_a_concurrent_change_fails_as_a_stale_write(services: Services) -> None:
    with services.ledger.transaction() as session:
        upsert_bills(session, TENANT, [bill(1, 1_000)])

    def write_over_a_concurrent_change(session: Session) -> None:
        page = BillPage(session, TENANT)
        read = page.read(["inv-1"])["inv-1"]
        session.execute(update(Bill).values(row_version=Bill.row_version + 1))  # a mapping wrote it meanwhile
        read.set(version=2_000)
        page.record(read, BillState.DISCOVERED, reason="changed in Xero")
        page.write()

    with pytest.raises(StaleDataError):  # the ledger's retry runs the page again, reading it afresh
        services.ledger.retrying(write_over_a_concurrent_change, attempts=1)
    with services.ledger.transaction() as session:
        assert session.scalars(select(Bill.version)).one() == 1_000


def test_each_record_of_a_page_is_encoded_once_when_stored_and_a_nan_it_carries_is_stored_as_text(
    services: Services, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A page's records are turned into JSON once, by the ledger's writer, which also stores a non-finite
    number in a field we do not read as its text (PostgreSQL refuses NaN in JSON); the intake check does
    not encode each record a second time to look for one."""
    records = [bill(n, 1_000) | {"Contact": {"ContactID": "c-1"}, "Total": 10.5} for n in range(200)]
    records[7]["Unread"] = {"Ratio": float("nan")}
    encoded: Counter[int] = Counter()
    original = json.JSONEncoder.encode

    def counting(self: json.JSONEncoder, value: Any) -> str:
        encoded[id(value)] += 1
        return original(self, value)

    monkeypatch.setattr(json.JSONEncoder, "encode", counting)
    with services.ledger.transaction() as session:
        upsert_bills(session, TENANT, check_page(RecordKind.BILL, records, column_lengths()).usable)
    monkeypatch.undo()
    assert [n for n, r in enumerate(records) if n != 7 and encoded[id(r)] != 1] == []
    with services.ledger.transaction() as session:
        payload = session.scalars(select(Bill.payload).where(Bill.invoice_id == "inv-7")).one()
    assert payload["Unread"] == {"Ratio": "nan"}


@contextlib.contextmanager
def statements_run(services: Services) -> Iterator[list[tuple[str, int]]]:
    """Each statement the ledger runs inside the block (lower-cased, whitespace folded) and the rows its
    cursor counted."""
    executed: list[tuple[str, int]] = []

    def seen(_conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        executed.append((" ".join(statement.lower().split()), cursor.rowcount))

    event.listen(services.ledger.engine, "after_cursor_execute", seen)
    try:
        yield executed
    finally:
        event.remove(services.ledger.engine, "after_cursor_execute", seen)


def reopen_held_for_po_reasons_watched(services: Services) -> tuple[list[Bill], list[tuple[str, int]]]:
    """Re-open the tenant's bills held for a PO reason, with the statements the ledger ran for it."""
    with statements_run(services) as executed, services.ledger.transaction() as session:
        reopened = reopen_held_for(session, TENANT, PO_REASONS, reason="re-evaluated", actor="test")
    return reopened, executed


def test_a_page_of_purchase_orders_reads_in_full_only_the_held_bills_it_re_opens(services: Services) -> None:
    """New POs re-open the bills held for a PO: the tenant's held bills are chosen by their reasons alone,
    and only the chosen ones are read in full; the others' payloads never come into memory for it,
    however many there are."""
    with services.ledger.transaction() as session:
        upsert_bills(session, TENANT, [bill(n, 1_000) for n in range(60)])
        session.execute(update(Bill).values(state=BillState.HELD, reasons=[{"code": "vendor_unknown"}]))
        session.execute(update(Bill).where(Bill.invoice_id.in_(["inv-3", "inv-40"]))
                        .values(reasons=[{"code": "vendor_unknown"}, {"code": "unknown_po"}]))
    reopened, executed = reopen_held_for_po_reasons_watched(services)
    statements = [statement for statement, _ in executed]
    assert sorted(b.invoice_id for b in reopened) == ["inv-3", "inv-40"]
    choosing = [s for s in statements if s.startswith("select") and "bills.state =" in s]
    assert choosing, statements
    assert not [s for s in choosing if "bills.payload" in s], choosing
    with services.ledger.transaction() as session:
        states = dict(list(session.execute(select(Bill.invoice_id, Bill.state)).tuples()))
    assert sorted(i for i, s in states.items() if s == BillState.DISCOVERED) == ["inv-3", "inv-40"]


def test_re_opening_held_bills_reads_from_the_ledger_only_the_rows_held_for_those_reasons(services: Services) -> None:
    """Each poll (bills waiting for a document) and each page of POs or new vendors asks which held bills
    to re-open: the ledger answers with the rows held for those reasons only, not every held bill of the
    tenant (tens of thousands in a large one), and a re-open of many never reads their Xero records."""
    with services.ledger.transaction() as session:
        upsert_bills(session, TENANT, [bill(n, 1_000) for n in range(300)])
        session.execute(update(Bill).values(state=BillState.HELD, reasons=[{"code": "vendor_unknown"}]))
        session.execute(update(Bill).where(Bill.invoice_id.in_(["inv-3", "inv-40", "inv-41"]))
                        .values(reasons=[{"code": "vendor_unknown"}, {"code": "unknown_po"}]))
        session.execute(update(Bill).where(Bill.invoice_id == "inv-41")  # the code as text, not as a reason
                        .values(reasons=[{"code": "vendor_unknown", "detail": "unknown_po"}]))
    reopened, executed = reopen_held_for_po_reasons_watched(services)
    assert sorted(b.invoice_id for b in reopened) == ["inv-3", "inv-40"]
    assert not [s for s, _ in executed if s.startswith("select") and "bills.payload" in s], executed
    if services.ledger.engine.dialect.name == "postgresql":  # SQLite's cursor does not count what it returns
        read = [n for s, n in executed if s.startswith("select") and " like " in s]
        assert read == [3], "rows the ledger returned to choose the held bills"
    with services.ledger.transaction() as session:
        states = dict(list(session.execute(select(Bill.invoice_id, Bill.state)).tuples()))
    assert sorted(i for i, s in states.items() if s == BillState.DISCOVERED) == ["inv-3", "inv-40"]


def test_a_changed_map_re_opens_many_tenants_bills_reading_in_full_only_those_it_re_opens(services: Services) -> None:
    """A profile's map changed: its tenants' bills held or excluded for what a map decides go back to be
    mapped. They are chosen by their reasons alone, a tenant's other held and excluded bills (years of
    PAID history in a large one) never come into memory, and those re-opened are read without their Xero
    records; each tenant's own excluded codes are its own."""
    with services.ledger.transaction() as session:
        upsert_bills(session, TENANT, [bill(n, 1_000) for n in range(200)])
        session.execute(update(Bill).values(state=BillState.EXCLUDED, reasons=[{"code": "status_not_eligible"}]))
        session.execute(update(Bill).where(Bill.invoice_id.in_(["inv-3", "inv-150"]))
                        .values(state=BillState.HELD, reasons=[{"code": "unmapped_gl", "account": "400"}]))
        session.execute(update(Bill).where(Bill.invoice_id == "inv-7")
                        .values(reasons=[{"code": "excluded_supplier"}]))
        session.execute(update(Bill).where(Bill.invoice_id == "inv-8")  # the code as text, not as a reason
                        .values(state=BillState.HELD, reasons=[{"code": "vendor_unknown", "detail": "unmapped_gl"}]))
    with statements_run(services) as executed, services.ledger.transaction() as session:
        counted = reopen_many(session, [TENANT, "t-none"], held_for={"unmapped_gl"},
                              excluded_for={TENANT: {"excluded_supplier"}, "t-none": {"status_not_eligible"}},
                              reason="re-evaluated", actor="test")
    assert counted == {TENANT: 3}
    assert not [s for s, _ in executed if s.startswith("select") and "bills.payload" in s], executed
    if services.ledger.engine.dialect.name == "postgresql":  # SQLite's cursor does not count what it returns
        read = [n for s, n in executed if s.startswith("select") and " like " in s]
        assert read == [4], "rows the ledger returned to choose the bills"
    with services.ledger.transaction() as session:
        states = dict(list(session.execute(select(Bill.invoice_id, Bill.state)).tuples()))
    assert sorted(i for i, s in states.items() if s == BillState.DISCOVERED) == ["inv-150", "inv-3", "inv-7"]
