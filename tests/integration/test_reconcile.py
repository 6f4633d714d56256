"""Reconciliation against the sandbox: edits the deltas did not see, and bills the ledger never got."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import delete, func, select, update

from connector.cli import cli
from connector.domain.states import BillState
from connector.services import reconcile as reconciliation
from connector.services.context import Services
from connector.services.reconcile import Reconciliation, reconcile
from connector.store import reconciliations as runs_store
from connector.store.models import Bill, BillTransition, OperationalEvent, utcnow
from connector.store.reconciliations import RUN_LEASE_SECONDS, last_reconciles, take_run
from connector.xero.budget import Limits, LocalLeases, RateBudget
from connector.xero.client import XeroApi
from sandbox.xero import XeroSandbox
from sandbox.xero.model import Allocation, CreditNote
from tests.support.delivery import Clock
from tests.support.pipeline import onboard, run_cycle
from tests.support.services import point_command_at, services_for_sandbox
from tests.support.sftp_fixtures import BundledSftp


@pytest.fixture(autouse=True)
def by_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests read the delivered bills back by IDs=, as a tenant with few of its bills delivered is
    reconciled; the paged reconcile of a tenant with most of them delivered is tested on its own below."""
    monkeypatch.setattr(reconciliation, "PAGE_WHEN_CHEAPER", False)


@pytest.fixture
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=42, tenants=1, bills=120) as running:
        yield running


def test_reconcile_marks_changes_the_deltas_missed_and_stores_missing_bills(
    sandbox: XeroSandbox, services: Services, bundled_sftp: BundledSftp, monkeypatch: pytest.MonkeyPatch,
) -> None:
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    run_cycle(services, tenant_id)
    with services.ledger.transaction() as session:
        delivered = list(session.scalars(select(Bill).where(Bill.state == BillState.DELIVERED,
                                                            Bill.document_type == "BILL").order_by(Bill.id)))
        edited, lost = delivered[0], delivered[1]
        # An edit that moved nothing we saw: we think we delivered an older version than Xero's.
        session.execute(update(Bill).where(Bill.id == edited.id).values(mapped_version=edited.version - 1))
        # A bill the ledger never got (e.g. an edit that did not move UpdatedDateUTC before our first read).
        session.execute(delete(BillTransition).where(BillTransition.invoice_id == lost.invoice_id))
        session.execute(delete(Bill).where(Bill.id == lost.id))
    calls_before = sandbox.stats()["calls"]
    found: list[object] = []
    report = reconcile(services, tenant_id, emit=found.append)
    assert report.delivered_checked == len(delivered) - 1
    assert [line.split()[0] for line in report.changed_after_delivery] == [edited.invoice_id]
    assert lost.invoice_id in report.missing_from_ledger
    assert len(found) == 1  # the lost bill, to be mapped again; nothing else re-opened
    assert report.calls == -(-(len(delivered) - 1) // 50) + 2  # + the eligible bills, the supplier credit notes
    assert sandbox.stats()["calls"] - calls_before == report.calls
    with services.ledger.transaction() as session:
        assert session.scalars(select(Bill.state).where(Bill.invoice_id == edited.invoice_id)).one() \
            == BillState.CHANGED_AFTER_DELIVERY
        assert session.scalars(select(Bill.state).where(Bill.invoice_id == lost.invoice_id)).one() \
            == BillState.DISCOVERED
    point_command_at(services, monkeypatch)
    for name, url in sandbox.urls.items():
        if name in ("token", "api"):
            monkeypatch.setenv(f"CONNECTOR_XERO_{name.upper()}_URL", url)
    result = CliRunner().invoke(cli, ["reconcile", "--tenant", tenant_id], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "0 changed after delivery; 0 eligible bills or credit notes the ledger lacked" in result.output



def test_reconcile_reads_delivered_credit_notes_back_and_names_each_one_changed_in_xero(
    sandbox: XeroSandbox, services: Services, bundled_sftp: BundledSftp,
) -> None:
    """A delivered credit note voided, deleted, allocated otherwise, given another total or another supplier
    in Xero, even by an edit that left its UpdatedDateUTC where it was, is CHANGED_AFTER_DELIVERY after a
    reconcile, which names it (number and id) and what changed. Credit notes are not Invoices (no `IDs=`):
    they are read in one paged CreditNotes read of the supplier credits, counted with the bills' calls."""
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    tenant = sandbox.dataset.tenant(tenant_id)
    for bill in [b for b in tenant.bills if b.status == "AUTHORISED"][:3]:
        sandbox.add_credit_note(tenant_id, bill.invoice_id, fraction="0.1", allocate=False)
    run_cycle(services, tenant_id)
    with services.ledger.transaction() as session:
        delivered = {b.invoice_id: b.invoice_number for b in session.scalars(select(Bill).where(
            Bill.state == BillState.DELIVERED, Bill.document_type == "CREDIT_NOTE"))}
    store = sandbox.state.store.tenant(tenant_id)
    assert store is not None
    notes = [n for n in store.credit_notes() if n.credit_note_id in delivered]
    assert len(notes) >= 6, "the dataset delivers enough credit notes to change five and keep one"
    voided, deleted, repriced, allocated, other_supplier, *untouched = notes
    other = next(c for c in tenant.contacts if c.is_supplier and c.contact_id != other_supplier.contact_id)
    allocation = Allocation("a1a1a1a1-0000-4000-8000-000000000001", tenant.bills[0].invoice_id,
                            Decimal("1.00"), allocated.day)
    changes: list[tuple[CreditNote, dict[str, object]]] = [
        (voided, {"status": "VOIDED"}), (deleted, {"status": "DELETED"}),
        (repriced, {"total": repriced.total + 10, "sub_total": repriced.sub_total + 10}),
        (allocated, {"allocations": (*allocated.allocations, allocation)}),
        (other_supplier, {"contact_id": other.contact_id})]
    for note, change in changes:  # edits that moved nothing a delta reads: each keeps its UpdatedDateUTC
        store.replace_credit_note(dataclasses.replace(note, **change, cache={}))  # type: ignore[arg-type]

    before = sandbox.stats()
    report = reconcile(services, tenant_id, emit=lambda _: None)
    after = sandbox.stats()
    changed = {line.split()[0]: line for line in report.changed_after_delivery}
    assert set(changed) == {note.credit_note_id for note, _ in changes}
    for note, _ in changes:
        assert f" credit note {delivered[note.credit_note_id]} " in changed[note.credit_note_id]
    assert "was voided in Xero" in changed[voided.credit_note_id]
    assert "was deleted in Xero" in changed[deleted.credit_note_id]
    assert f"total {repriced.total} → {repriced.total + 10}" in changed[repriced.credit_note_id]
    assert "allocations" in changed[allocated.credit_note_id]
    assert "supplier" in changed[other_supplier.credit_note_id]
    assert report.credit_notes_checked == len(delivered)

    def reads(stats: dict[str, Any]) -> int:
        return sum(n for name, codes in stats["calls_by_endpoint"].items() if name.endswith("/CreditNotes")
                   for n in codes.values())

    assert reads(after) - reads(before) == 1
    assert after["calls"] - before["calls"] == report.calls
    with services.ledger.transaction() as session:
        states = dict(session.execute(select(Bill.invoice_id, Bill.state).where(
            Bill.invoice_id.in_([n.credit_note_id for n in notes]))).tuples().all())
        reasons = dict(session.execute(select(BillTransition.invoice_id, BillTransition.reason).where(
            BillTransition.to_state == BillState.CHANGED_AFTER_DELIVERY)).tuples().all())
    assert {i: s for i, s in states.items() if s == BillState.CHANGED_AFTER_DELIVERY}.keys() == changed.keys()
    assert all(states[n.credit_note_id] == BillState.DELIVERED for n in untouched)
    assert (reasons[voided.credit_note_id] or "").startswith(
        f"reconciliation: credit note {delivered[voided.credit_note_id]} ")
    again = reconcile(services, tenant_id, emit=lambda _: None)
    assert again.changed_after_delivery == [], "what was marked once is not marked again"


@pytest.fixture(params=["sqlite", "postgresql"])
def either_ledger(request: pytest.FixtureRequest, sandbox: XeroSandbox, tmp_path: Path) -> Iterator[Services]:
    schema = request.getfixturevalue("pg_schema") if request.param == "postgresql" else None
    built = services_for_sandbox(sandbox, tmp_path, request.param, schema=schema)
    yield built
    built.close()


@pytest.mark.parametrize("kept", [0, 1, 4, 5])
def test_reconcile_reads_the_delivered_bills_a_chunk_at_a_time_and_checks_each_once(
    sandbox: XeroSandbox, either_ledger: Services, bundled_sftp: BundledSftp, monkeypatch: pytest.MonkeyPatch,
    kept: int,
) -> None:
    """The delivered bills are read from the ledger a chunk at a time (keyset on InvoiceID), each chunk
    read back from Xero and compared before the next is read: reconcile holds a chunk of the tenant, never
    all of it. Across the chunk's edges (none, one, a full chunk, a chunk and one) each bill is checked once
    and the one changed in the last chunk is found; credit notes, read the same way, are all checked."""
    services = either_ledger
    monkeypatch.setattr(reconciliation, "DELIVERED_CHUNK", 4)
    monkeypatch.setattr(reconciliation, "IDS_PER_CALL", 3)  # a chunk takes two calls: their edges too
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    tenant = sandbox.dataset.tenant(tenant_id)
    for bill in [b for b in tenant.bills if b.status == "AUTHORISED"][:6]:
        sandbox.add_credit_note(tenant_id, bill.invoice_id, fraction="0.1", allocate=False)
    run_cycle(services, tenant_id)
    with services.ledger.transaction() as session:
        delivered = sorted(session.scalars(select(Bill.invoice_id).where(Bill.state == BillState.DELIVERED,
                                                                         Bill.document_type == "BILL")))
        chosen = delivered[-kept:] if kept else []
        session.execute(update(Bill).where(Bill.document_type == "BILL", Bill.invoice_id.not_in(chosen))
                        .values(state=BillState.EXCLUDED))  # settled otherwise: not compared
        if chosen:  # the last bill of the last chunk was edited in a way no delta saw
            session.execute(update(Bill).where(Bill.invoice_id == chosen[-1])
                            .values(mapped_version=Bill.version - 1))
        credit_notes = session.scalar(select(func.count()).select_from(Bill).where(
            Bill.state == BillState.DELIVERED, Bill.document_type == "CREDIT_NOTE"))
    assert (credit_notes or 0) > 4, "enough delivered credit notes to cross a chunk's edge"
    steps: list[tuple[str, int]] = []
    read_ids = reconciliation.delivered_ids

    def read(session: Any, tenant: str, kind: str, *, after: str, limit: int) -> list[str]:
        found = read_ids(session, tenant, kind, after=after, limit=limit)
        steps.append((f"ledger {kind}", len(found)))
        return found

    get = reconciliation.TenantReader.get

    def xero(reader: Any, endpoint: str, params: dict[str, Any], since: Any) -> dict[str, Any]:
        if "IDs" in params:
            steps.append(("xero IDs", len(str(params["IDs"]).split(","))))
        return get(reader, endpoint, params, since)

    monkeypatch.setattr(reconciliation, "delivered_ids", read)
    monkeypatch.setattr(reconciliation.TenantReader, "get", xero)
    report = reconcile(services, tenant_id, emit=lambda _: None)
    assert report.delivered_checked == kept
    assert [line.split()[0] for line in report.changed_after_delivery] == chosen[-1:]
    assert report.credit_notes_checked == credit_notes
    bills = [step for step in steps if step[0] != "ledger CREDIT_NOTE"]
    expected: list[tuple[str, int]] = []
    for start in range(0, kept + 1, 4):  # each chunk read, then asked of Xero (3 IDs a call), then the next
        chunk = min(4, kept - start)
        expected += [("ledger BILL", chunk), *[("xero IDs", min(3, chunk - i)) for i in range(0, chunk, 3)]]
    assert bills == expected
    assert all(n <= 4 for step, n in steps if step.startswith("ledger")), steps


class WorkerKilled(BaseException):
    """What a SIGKILL or the OOM killer leaves: no `except Exception`, no `finally` that reaches the ledger."""


class XeroCalls:
    """Every request the connector sends Xero (endpoint, query, If-Modified-Since), in order; `die_at` kills
    the worker as it is about to send that request (1: the first)."""

    def __init__(self, services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sent: list[tuple[str, tuple[tuple[str, str], ...], str]] = []
        self.die_at: int | None = None
        self.watch(services, monkeypatch)

    def watch(self, services: Services, monkeypatch: pytest.MonkeyPatch) -> Services:
        real = services.xero.get

        def get(token: Any, tenant: str, endpoint: str, params: Any, **kwargs: Any) -> dict[str, Any]:
            if self.die_at is not None and len(self.sent) + 1 == self.die_at:
                self.die_at = None
                raise WorkerKilled(f"killed as it asked Xero for {endpoint} {params}")
            answer = real(token, tenant, endpoint, params, **kwargs)
            self.sent.append((endpoint, tuple(sorted((k, str(v)) for k, v in params.items())),
                              str(kwargs.get("modified_since"))))
            return answer

        monkeypatch.setattr(services.xero, "get", get)
        return services

    def ids_asked(self) -> list[str]:
        return [i for _, query, _ in self.sent for k, v in query if k == "IDs" for i in v.split(",")]


def delivered_bills(services: Services) -> list[str]:
    with services.ledger.transaction() as session:
        return sorted(session.scalars(select(Bill.invoice_id).where(Bill.state == BillState.DELIVERED,
                                                                     Bill.document_type == "BILL")))


def with_minute_budget(services: Services, per_minute: int) -> Services:
    """The same services with a rate budget of their own (a fresh minute): `per_minute` calls a tenant."""
    budget = RateBudget("memory://", LocalLeases(), Limits(per_minute=per_minute))
    return dataclasses.replace(services, xero=XeroApi(requests.Session(), services.settings.xero.api,
                                                      services.settings.xero_timeout_seconds, budget))


def test_a_reconcile_of_more_bills_than_a_minutes_budget_resumes_where_the_budget_stopped_it(
    sandbox: XeroSandbox, either_ledger: Services, bundled_sftp: BundledSftp, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A reconcile that finds the minute's rate budget spent stops, its progress in the ledger, and says
    when to go on; the next one goes on from there. Every delivered bill is read back and compared exactly
    once, no request is sent twice across the stops, and the report recorded at the end covers the whole
    run (what every leg checked and called, and the change found in an early leg)."""
    services = either_ledger
    monkeypatch.setattr(reconciliation, "IDS_PER_CALL", 5)
    monkeypatch.setattr(reconciliation, "DELIVERED_CHUNK", 10)
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    run_cycle(services, tenant_id)
    delivered = delivered_bills(services)
    with services.ledger.transaction() as session:  # an edit no delta saw, found in the run's first minute
        session.execute(update(Bill).where(Bill.invoice_id == delivered[0]).values(mapped_version=Bill.version - 1))
    expected_calls = -(-len(delivered) // 5) + 2  # + the eligible bills, the supplier credit notes (a page each)
    per_minute = 4
    assert expected_calls > 3 * per_minute, "the run takes several minutes of budget"
    calls = XeroCalls(services, monkeypatch)
    legs: list[Reconciliation] = []
    while not legs or legs[-1].stopped:  # each leg in a minute of its own, with the budget of that minute
        minute = calls.watch(with_minute_budget(services, per_minute), monkeypatch)
        legs.append(reconciliation.reconcile_and_record(minute, tenant_id, emit=lambda _: None))
        assert len(legs) <= expected_calls, "the reconcile ends"
    assert all(leg.resume_in > 0 for leg in legs[:-1])
    assert len(legs) == -(-expected_calls // per_minute)
    assert len(calls.sent) == expected_calls
    assert len(set(calls.sent)) == len(calls.sent), "no request repeated across the stops"
    assert sorted(calls.ids_asked()) == delivered, "each delivered bill read back once"
    with services.ledger.transaction() as session:
        last = last_reconciles(session, tenant_id)[0]
        assert session.scalars(select(Bill.state).where(Bill.invoice_id == delivered[0])).one() \
            == BillState.CHANGED_AFTER_DELIVERY
    assert last.ok
    assert last.found["delivered_checked"] == len(delivered)
    assert last.found["calls"] == expected_calls
    assert last.found["changed_after_delivery"] == 1
    again = reconciliation.reconcile_and_record(with_minute_budget(services, 1000), tenant_id, emit=lambda _: None)
    assert not again.stopped
    assert again.delivered_checked == len(delivered) - 1, "a new run starts afresh (one bill was marked)"


def test_a_reconcile_cut_in_the_middle_of_the_credit_notes_read_goes_on_at_the_next_page(
    tmp_path: Path, bundled_sftp: BundledSftp, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The supplier credit notes are read a page at a time like the bills: a leg the minute's budget stops
    mid-read commits each page's comparison with the run's progress, and the next leg asks for the next
    page, not the first again. Each delivered credit note is compared once, one that changed is named once."""
    with XeroSandbox(seed=42, tenants=1, bills=8) as sandbox:
        built = services_for_sandbox(sandbox, tmp_path, "sqlite")
        tenant_id = onboard(built, sandbox, bundled_sftp.target())
        tenant = sandbox.dataset.tenant(tenant_id)
        for bill in [b for b in tenant.bills if b.status == "AUTHORISED"][:7]:
            sandbox.add_credit_note(tenant_id, bill.invoice_id, fraction="0.1", allocate=False)
        run_cycle(built, tenant_id)
        services = dataclasses.replace(built, settings=dataclasses.replace(built.settings, xero_page_size=2))
        with services.ledger.transaction() as session:
            delivered = set(session.scalars(select(Bill.invoice_id).where(
                Bill.state == BillState.DELIVERED, Bill.document_type == "CREDIT_NOTE")))
        store = sandbox.state.store.tenant(tenant_id)
        assert store is not None
        notes = store.credit_notes()
        assert len(delivered) >= 5
        voided = next(n for n in reversed(notes) if n.credit_note_id in delivered)  # on the read's last pages
        store.replace_credit_note(dataclasses.replace(voided, status="VOIDED", cache={}))  # no new UpdatedDateUTC
        calls = XeroCalls(services, monkeypatch)
        legs: list[Reconciliation] = []
        while not legs or legs[-1].stopped:
            minute = calls.watch(with_minute_budget(services, 2), monkeypatch)
            legs.append(reconciliation.reconcile_and_record(minute, tenant_id, emit=lambda _: None))
            assert len(legs) <= 50, "the reconcile ends"
        reads = [q for endpoint, q, _ in calls.sent if endpoint == "CreditNotes"]
        assert len(reads) > 2, "the credit notes' read spans several minutes of budget"
        assert len(set(calls.sent)) == len(calls.sent), "no request repeated across the stops"
        assert legs[-1].credit_notes_checked == len(delivered)
        with services.ledger.transaction() as session:
            last = last_reconciles(session, tenant_id)[0]
            assert session.scalars(select(Bill.state).where(Bill.invoice_id == voided.credit_note_id)).one() \
                == BillState.CHANGED_AFTER_DELIVERY
        assert (last.found["credit_notes_checked"], last.found["changed_after_delivery"]) == (len(delivered), 1)
        assert last.found["calls"] == len(calls.sent)
        built.close()


@pytest.mark.parametrize("die_at", [4, 9])  # among the delivered bills' IDs= reads; among the eligible pages
def test_a_reconcile_whose_worker_died_is_resumed_by_the_next_without_asking_xero_again(
    sandbox: XeroSandbox, either_ledger: Services, bundled_sftp: BundledSftp, monkeypatch: pytest.MonkeyPatch,
    die_at: int,
) -> None:
    """A worker killed mid-reconcile leaves its progress in the ledger (each call's comparison, or page,
    committed with it): the next reconcile of the tenant (beat's, or the message delivered again) goes on
    from there, and no request made before the kill is made again."""
    services = dataclasses.replace(either_ledger, settings=dataclasses.replace(either_ledger.settings,
                                                                               xero_page_size=20))
    monkeypatch.setattr(reconciliation, "IDS_PER_CALL", 10)
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    run_cycle(services, tenant_id)
    delivered = delivered_bills(services)
    assert -(-len(delivered) // 10) < 9 < -(-len(delivered) // 10) + 3, "the 9th call reads an eligible page"
    clock = services.clock = Clock()
    calls = XeroCalls(services, monkeypatch)
    calls.die_at = die_at
    with pytest.raises(WorkerKilled):
        reconciliation.reconcile_and_record(services, tenant_id, emit=lambda _: None)
    assert len(calls.sent) == die_at - 1
    clock.advance(100)
    busy = reconciliation.reconcile_and_record(services, tenant_id, emit=lambda _: None)
    assert busy.busy, "while the dead worker's hold on the run lasts, it might still be working: nobody else asks Xero"
    assert len(calls.sent) == die_at - 1
    with services.ledger.transaction() as session:
        [run_started] = session.scalars(select(runs_store.ReconcileRun.started_at))
    assert (busy.stopped, busy.started_at) == (True, run_started.isoformat()), \
        "the message the killed worker gave back goes on with the run once the hold lapses, not at beat's next day"
    assert RUN_LEASE_SECONDS - 100 < busy.resume_in <= RUN_LEASE_SECONDS - 100 + 5
    clock.advance(RUN_LEASE_SECONDS + 1)  # no worker runs past its hard time limit: this one is dead
    report = reconciliation.reconcile_and_record(services, tenant_id, emit=lambda _: None)
    assert len(set(calls.sent)) == len(calls.sent), "no request repeated across the kill"
    assert sorted(calls.ids_asked()) == delivered
    assert not report.stopped
    assert report.delivered_checked == len(delivered)
    assert report.calls == len(calls.sent)


def test_a_reconcile_sent_while_another_works_on_the_tenants_run_does_nothing_and_no_call_is_made_twice(
    sandbox: XeroSandbox, either_ledger: Services, bundled_sftp: BundledSftp, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Beat's daily reconcile (or a leg sent twice) arriving while a worker is still going through the
    tenant's run finds the run held by that worker and does nothing: every request is made once."""
    services = either_ledger
    monkeypatch.setattr(reconciliation, "IDS_PER_CALL", 10)
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    run_cycle(services, tenant_id)
    delivered = delivered_bills(services)
    calls = XeroCalls(services, monkeypatch)
    watched = services.xero.get
    arrived: list[Reconciliation] = []

    def the_tick_arrives_meanwhile(*args: Any, **kwargs: Any) -> dict[str, Any]:
        if len(calls.sent) == 2 and not arrived:
            arrived.append(Reconciliation(tenant_id))
            arrived[0] = reconciliation.reconcile_and_record(services, tenant_id, emit=lambda _: None)
        return watched(*args, **kwargs)

    monkeypatch.setattr(services.xero, "get", the_tick_arrives_meanwhile)
    report = reconciliation.reconcile_and_record(services, tenant_id, emit=lambda _: None)
    [second] = arrived
    assert (second.busy, second.calls, second.stopped) == (True, 0, True)
    assert (second.started_at, second.resume_in) == (report.started_at, pytest.approx(RUN_LEASE_SECONDS + 1, abs=5)), \
        "a worker's message goes on with the same run once the hold lapses (a leg: nothing if the run ended)"
    assert len(set(calls.sent)) == len(calls.sent) == report.calls, "no request made twice"
    assert sorted(calls.ids_asked()) == delivered
    assert report.delivered_checked == len(delivered)
    with services.ledger.transaction() as session:
        assert last_reconciles(session, tenant_id)[0].found["calls"] == report.calls


def test_connector_reconcile_says_a_worker_is_reconciling_the_tenant_and_asks_xero_nothing(
    sandbox: XeroSandbox, services: Services, bundled_sftp: BundledSftp, monkeypatch: pytest.MonkeyPatch,
) -> None:
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    run_cycle(services, tenant_id)
    with services.ledger.transaction() as session:  # a worker's leg is going through the tenant's run
        assert take_run(session, tenant_id, owner="a-worker", now=utcnow(), at=utcnow(), first_phase=lambda: "bills")
    point_command_at(services, monkeypatch)
    for name, url in sandbox.urls.items():
        if name in ("token", "api"):
            monkeypatch.setenv(f"CONNECTOR_XERO_{name.upper()}_URL", url)
    before = sandbox.stats()["calls"]
    result = CliRunner().invoke(cli, ["reconcile", "--tenant", tenant_id], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f"tenant {tenant_id}: a worker is reconciling it now" in result.output
    assert sandbox.stats()["calls"] == before


def test_a_long_reconcile_hands_over_after_its_time_budget_and_goes_on_where_it_stopped(
    sandbox: XeroSandbox, either_ledger: Services, bundled_sftp: BundledSftp, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No reconcile nears its task's time limit: one that has read for CONNECTOR_POLL_HANDOVER_SECONDS stops
    before its next call (here: after each call) and is sent again at once, naming its run; the legs make
    every call once, and a leg that arrives after its run ended (sent twice, or late) does nothing."""
    services = dataclasses.replace(either_ledger, settings=dataclasses.replace(either_ledger.settings,
                                                                               poll_handover_seconds=0.0))
    monkeypatch.setattr(reconciliation, "IDS_PER_CALL", 10)
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    run_cycle(services, tenant_id)
    delivered = delivered_bills(services)
    calls = XeroCalls(services, monkeypatch)
    legs = [reconciliation.reconcile_and_record(services, tenant_id, emit=lambda _: None)]
    while legs[-1].stopped:
        assert legs[-1].resume_in == 0
        legs.append(reconciliation.reconcile_and_record(services, tenant_id, emit=lambda _: None,
                                                        run_of=legs[-1].started_at))
    expected = -(-len(delivered) // 10) + 2
    assert len(calls.sent) == expected
    assert len(set(calls.sent)) == expected
    assert len(legs) == expected  # a call a leg, the credit notes' read too
    assert legs[-1].delivered_checked == len(delivered)
    assert legs[-1].calls == expected
    late = reconciliation.reconcile_and_record(services, tenant_id, emit=lambda _: None, run_of=legs[0].started_at)
    assert late.skipped
    assert len(calls.sent) == expected, "a leg of an ended run starts no run of its own"


@pytest.mark.parametrize("die_at", [None, 3])
def test_a_tenant_with_most_bills_delivered_is_reconciled_by_paging_its_bills_not_by_ids(
    sandbox: XeroSandbox, either_ledger: Services, bundled_sftp: BundledSftp, monkeypatch: pytest.MonkeyPatch,
    die_at: int | None,
) -> None:
    """When reading the delivered bills back by IDs= (delivered / 50 calls) costs more than paging every
    bill (known bills / 1,000 calls), the reconcile pages them (no If-Modified-Since) and compares each
    page's delivered bills with the ledger rows of exactly those ids, storing the eligible ones the ledger
    lacks on the way; only a delivered bill no page returned is then read by IDs=. Every delivered bill is
    compared once, a worker killed mid-read resumes at the next page, and no request is made twice."""
    monkeypatch.setattr(reconciliation, "PAGE_WHEN_CHEAPER", True)
    monkeypatch.setattr(reconciliation, "IDS_PER_CALL", 5)  # IDs= would cost delivered / 5 calls
    services = dataclasses.replace(either_ledger, settings=dataclasses.replace(either_ledger.settings,
                                                                               xero_page_size=25))
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    run_cycle(services, tenant_id)
    delivered = delivered_bills(services)
    ghost = "00000000-0000-4000-8000-00000000beef"  # delivered, but no longer anywhere in Xero's list
    edited, lost, gone = delivered[0], delivered[1], delivered[2]
    with services.ledger.transaction() as session:
        session.execute(update(Bill).where(Bill.invoice_id == edited).values(mapped_version=Bill.version - 1))
        session.execute(delete(BillTransition).where(BillTransition.invoice_id == lost))
        session.execute(delete(Bill).where(Bill.invoice_id == lost))
        session.execute(update(BillTransition).where(BillTransition.invoice_id == gone).values(invoice_id=ghost))
        session.execute(update(Bill).where(Bill.invoice_id == gone).values(invoice_id=ghost))
        known = session.scalar(select(func.count()).select_from(Bill).where(Bill.tenant_id == tenant_id,
                                                                            Bill.document_type == "BILL")) or 0
    delivered = sorted([*delivered[3:], edited, ghost])
    clock = services.clock = Clock()
    calls = XeroCalls(services, monkeypatch)
    calls.die_at = die_at
    if die_at is not None:
        with pytest.raises(WorkerKilled):
            reconciliation.reconcile_and_record(services, tenant_id, emit=lambda _: None)
        clock.advance(RUN_LEASE_SECONDS + 1)  # the dead worker's hold on the run lapsed
    found: list[object] = []
    report = reconciliation.reconcile_and_record(services, tenant_id, emit=found.append)
    assert not report.stopped
    assert len(set(calls.sent)) == len(calls.sent), "no request repeated"
    assert calls.ids_asked() == [ghost], "only the delivered bill no page returned is read by IDs="
    pages = [q for endpoint, q, since in calls.sent if endpoint == "Invoices" and "IDs" not in dict(q)]
    assert calls.sent[0][2] == "None", "no If-Modified-Since (past a full page, the paging's own)"
    assert len(pages) >= -(-known // 25)
    assert len(calls.sent) == len(pages) + 2  # + the ghost's IDs= read, the supplier credit notes
    assert len(calls.sent) < -(-len(delivered) // 5) + 2, "cheaper than reading them back by IDs="
    assert report.delivered_checked == len(delivered)
    assert report.calls == len(calls.sent)
    with services.ledger.transaction() as session:
        states = dict(session.execute(select(Bill.invoice_id, Bill.state).where(
            Bill.invoice_id.in_([edited, ghost, lost]))).all())
        last = last_reconciles(session, tenant_id)[0]
    assert states == {edited: BillState.CHANGED_AFTER_DELIVERY, ghost: BillState.CHANGED_AFTER_DELIVERY,
                      lost: BillState.DISCOVERED}
    assert last.found["delivered_checked"] == len(delivered)
    assert last.found["changed_after_delivery"] == 2
    assert last.found["missing_from_ledger"] >= 1
    assert last.found["calls"] == len(calls.sent)


def test_a_leg_that_takes_the_run_as_another_lets_go_of_it_goes_on_from_that_ones_progress(
    sandbox: XeroSandbox, either_ledger: Services, bundled_sftp: BundledSftp, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A leg reads the tenant's run, and between that read and its taking the hold another leg (beat's daily
    reconcile, a leg sent twice) takes the run, makes its call, saves its progress and lets go: the leg takes
    the run then free, and must go on from the progress saved by the other, not from what it read before,
    or it asks Xero again what the other just asked."""
    monkeypatch.setattr(reconciliation, "IDS_PER_CALL", 10)
    tenant_id = onboard(either_ledger, sandbox, bundled_sftp.target())
    run_cycle(either_ledger, tenant_id)
    delivered = delivered_bills(either_ledger)
    assert len(delivered) > 20  # a call for each 10: legs enough for one to come between another's read and hold
    services = dataclasses.replace(either_ledger, settings=dataclasses.replace(either_ledger.settings,
                                                                               poll_handover_seconds=0.0))
    calls = XeroCalls(services, monkeypatch)
    legs = [reconciliation.reconcile_and_record(services, tenant_id, emit=lambda _: None)]
    assert (legs[0].stopped, len(calls.sent)) == (True, 1)
    real_update = runs_store.update
    armed = [True]

    def another_leg_meanwhile(*args: Any, **kwargs: Any) -> Any:
        if armed:  # the run is read; the hold is not taken yet
            armed.clear()
            other = reconciliation.reconcile_and_record(services, tenant_id, emit=lambda _: None,
                                                        run_of=legs[0].started_at)
            assert (other.stopped, len(calls.sent)) == (True, 2)
        return real_update(*args, **kwargs)

    monkeypatch.setattr(runs_store, "update", another_leg_meanwhile)
    legs.append(reconciliation.reconcile_and_record(services, tenant_id, emit=lambda _: None,
                                                    run_of=legs[0].started_at))
    assert not armed
    while legs[-1].stopped:
        legs.append(reconciliation.reconcile_and_record(services, tenant_id, emit=lambda _: None,
                                                        run_of=legs[-1].started_at))
    assert len(set(calls.sent)) == len(calls.sent), "no request made twice"
    assert sorted(calls.ids_asked()) == delivered
    assert legs[-1].delivered_checked == len(delivered)


def test_a_reconcile_with_no_time_budget_stops_calling_before_its_hold_on_the_run_lapses(
    sandbox: XeroSandbox, either_ledger: Services, bundled_sftp: BundledSftp, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`connector reconcile` reads with no time budget (no hand-over) and no hard time limit: with Xero slow,
    one of its legs outlived its hold on the run, and the next daily reconcile took the run and asked Xero
    what this one was still asking. A leg stops calling once half its hold is spent, and the command goes
    on with a fresh hold: every request is made once, and the daily reconcile finds the run held."""
    services = either_ledger
    monkeypatch.setattr(reconciliation, "IDS_PER_CALL", 5)
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    run_cycle(services, tenant_id)
    delivered = delivered_bills(services)
    clock = services.clock = Clock()
    started = clock()
    calls = XeroCalls(services, monkeypatch)
    watched = services.xero.get
    arrived: list[Reconciliation] = []

    def slow_xero(*args: Any, **kwargs: Any) -> dict[str, Any]:
        clock.advance(RUN_LEASE_SECONDS / 6)  # each call a sixth of the hold
        if not arrived and (clock() - started).total_seconds() > RUN_LEASE_SECONDS + 1:  # beat's daily one
            arrived.append(Reconciliation(tenant_id))
            arrived[0] = reconciliation.reconcile_and_record(services, tenant_id, emit=lambda _: None)
        return watched(*args, **kwargs)

    monkeypatch.setattr(services.xero, "get", slow_xero)
    report = reconciliation.reconcile_and_record(services, tenant_id, emit=lambda _: None, handover=False)
    legs = 1
    while report.stopped:  # as the command does
        report = reconciliation.reconcile_and_record(services, tenant_id, emit=lambda _: None, handover=False)
        legs += 1
    assert len(calls.sent) > 7, "the run outlasts a hold"
    [daily] = arrived
    assert (daily.busy, daily.calls) == (True, 0)
    assert len(set(calls.sent)) == len(calls.sent), "no request made twice"
    assert sorted(calls.ids_asked()) == delivered
    assert legs > 1


def test_connector_reconcile_whose_run_a_worker_took_between_its_legs_starts_no_run_of_its_own(
    sandbox: XeroSandbox, services: Services, bundled_sftp: BundledSftp, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`connector reconcile` lets go of the run between its legs (half its hold spent, or a spent minute),
    and a worker's leg may take it then and end it. The command's next leg names the run it was going on
    with, so it finds the run ended (or held) and says a worker went on with it, instead of beginning a
    new run that asks Xero again for everything the ended one asked."""
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    run_cycle(services, tenant_id)
    monkeypatch.setattr(reconciliation, "RUN_LEASE_SECONDS", 0.0)  # every leg hands over after one call
    point_command_at(services, monkeypatch)
    for name, url in sandbox.urls.items():
        if name in ("token", "api"):
            monkeypatch.setenv(f"CONNECTOR_XERO_{name.upper()}_URL", url)
    worker_legs: list[Reconciliation] = []

    def between_legs(_seconds: float) -> None:  # a worker's legs take the run and end it
        if worker_legs:
            return
        leg = reconciliation.reconcile_and_record(services, tenant_id, emit=lambda _: None, leg="worker-1")
        worker_legs.append(leg)
        while leg.stopped:
            leg = reconciliation.reconcile_and_record(services, tenant_id, emit=lambda _: None,
                                                      run_of=leg.started_at, leg=f"worker-{len(worker_legs) + 1}")
            worker_legs.append(leg)

    monkeypatch.setattr(sys.modules["connector.cli.reconcile"], "time", SimpleNamespace(sleep=between_legs))
    result = CliRunner().invoke(cli, ["reconcile", "--tenant", tenant_id], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert len(worker_legs) > 1
    assert not worker_legs[-1].stopped
    assert f"tenant {tenant_id}: a worker went on with this reconcile" in result.output
    with services.ledger.transaction() as session:
        recorded = session.scalar(select(func.count()).select_from(OperationalEvent).where(
            OperationalEvent.tenant_id == tenant_id, OperationalEvent.kind == runs_store.RECONCILED))
        assert runs_store.run_under_way(session, tenant_id) is None
    assert recorded == 1, "one run, ended by the worker's legs"
