"""Poll liveness: a poll holds a short lease it renews as it commits each page. A poll whose worker died
is dispatched again by the next tick once its lease lapses (not a cadence later), resumes from its
watermark, and a tenant whose polls keep dying is parked with a reason instead of looping."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from connector.crypto import Vault
from connector.errors import ConfigurationError, XeroUnavailable
from connector.reporting import summarise
from connector.secret import Secret
from connector.services import poll
from connector.services.context import Services
from connector.services.dispatch import dispatch_due_polls
from connector.services.messages import Message, PollTenant
from connector.settings import load_settings
from connector.sftp import SftpTarget
from connector.store.models import Bill, OperationalEvent, Tenant, XeroGrant, utcnow
from connector.store.polls import PollLeaseLost, take_poll_lease, unpark_polls
from connector.xero import auth
from sandbox.xero import XeroSandbox
from tests.support.pipeline import make_due, onboard
from tests.support.services import services_for_sandbox

NO_SFTP = SftpTarget(host="127.0.0.1", port=22, username="x", import_dir="/x", host_key="", password=Secret("p"))
PAGE_SIZE = 20
LEASE = 120


class WorkerKilled(BaseException):
    """What a SIGKILL or the OOM killer leaves: no `except Exception`, no `finally` that reaches the ledger."""


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=41, tenants=1, bills=110) as running:
        yield running


@pytest.fixture(params=["sqlite", "postgresql"])
def services(request: pytest.FixtureRequest, tmp_path: Path, sandbox: XeroSandbox) -> Iterator[Services]:
    schema = request.getfixturevalue("pg_schema") if request.param == "postgresql" else None
    built = services_for_sandbox(sandbox, tmp_path, request.param, schema=schema, extra_env={
        "CONNECTOR_XERO_PAGE_SIZE": str(PAGE_SIZE), "CONNECTOR_POLL_LEASE_SECONDS": str(LEASE)})
    built.clock = Clock()
    yield built
    built.close()


@pytest.fixture
def clock(services: Services) -> Clock:
    assert isinstance(services.clock, Clock)
    return services.clock


@pytest.fixture
def tenant_id(services: Services, sandbox: XeroSandbox) -> str:
    return onboard(services, sandbox, NO_SFTP)


def die_on_invoices_request(services: Services, monkeypatch: pytest.MonkeyPatch, number: int) -> None:
    """The worker dies as it asks Xero for the `number`th page of bills (those before it are committed)."""
    real = services.xero.get
    asked = [0]

    def get(token: Any, tenant: str, endpoint: str, params: Any, **kwargs: Any) -> dict[str, Any]:
        if endpoint == "Invoices":
            asked[0] += 1
            if asked[0] == number:
                raise WorkerKilled(f"killed while asking for bills page {number}")
        return real(token, tenant, endpoint, params, **kwargs)

    monkeypatch.setattr(services.xero, "get", get)


def run_poll(services: Services, tenant_id: str) -> poll.PollReport:
    sent: list[Message] = []
    return poll.poll_tenant(services, tenant_id, emit=sent.append)


def bills_in_ledger(services: Services) -> int:
    """Bills only: supplier credit notes are rows of the same table (document_type CREDIT_NOTE)."""
    with services.ledger.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(Bill).where(Bill.document_type == "BILL")) or 0)


def tenant_row(services: Services, tenant_id: str) -> Tenant:
    with services.ledger.transaction() as session:
        return session.get_one(Tenant, tenant_id)


def bills_served(sandbox: XeroSandbox) -> int:
    return int(sandbox.stats()["records_served"].get("Invoices", 0))


def test_a_poll_killed_mid_run_is_dispatched_again_once_its_lease_lapses_and_resumes_from_its_watermark(
    services: Services, sandbox: XeroSandbox, clock: Clock, tenant_id: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    total = len(sandbox.dataset.tenant(tenant_id).bills)
    assert total > 4 * PAGE_SIZE
    assert dispatch_due_polls(services) == [PollTenant(tenant_id)]
    with monkeypatch.context() as patch:
        die_on_invoices_request(services, patch, 3)
        with pytest.raises(WorkerKilled):
            run_poll(services, tenant_id)
    assert PAGE_SIZE < bills_in_ledger(services) <= 2 * PAGE_SIZE  # pages overlap by a record or so
    served_before = bills_served(sandbox)

    clock.advance(LEASE / 2)
    assert dispatch_due_polls(services) == [], "dispatched while the dead poll's lease was still live"
    clock.advance(LEASE)  # far less than the tenant's 900 s interval
    assert dispatch_due_polls(services) == [PollTenant(tenant_id)]
    assert dispatch_due_polls(services) == [], "a duplicated tick dispatched the lapsed poll twice"

    report = run_poll(services, tenant_id)
    assert not report.skipped
    assert bills_in_ledger(services) == total
    assert bills_served(sandbox) - served_before < total - PAGE_SIZE, "the resumed poll started again from page 1"
    after = tenant_row(services, tenant_id)
    assert (after.poll_lease_until, after.poll_runs, after.poll_parked_reason) == (None, 0, None)


def test_a_live_lease_blocks_a_second_poll_and_a_second_dispatch(
    services: Services, sandbox: XeroSandbox, clock: Clock, tenant_id: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    with monkeypatch.context() as patch:
        die_on_invoices_request(services, patch, 2)
        with pytest.raises(WorkerKilled):
            run_poll(services, tenant_id)
    held = tenant_row(services, tenant_id).poll_lease_until
    assert held is not None
    assert held > clock()
    calls = sandbox.stats()["calls_by_endpoint"]

    clock.advance(LEASE / 2)
    assert run_poll(services, tenant_id).skipped, "a second poll ran while the first one's lease was live"
    assert sandbox.stats()["calls_by_endpoint"] == calls, "the blocked poll called Xero"
    make_due(services, tenant_id)
    assert dispatch_due_polls(services) == [], "a tenant whose poll holds a live lease was dispatched"


def test_a_page_is_committed_with_a_heartbeat_that_renews_the_lease(
    services: Services, clock: Clock, tenant_id: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A poll longer than its lease keeps it, as long as it makes progress."""
    renewals: list[datetime | None] = []
    real = services.xero.get

    def slow_get(token: Any, tenant: str, endpoint: str, params: Any, **kwargs: Any) -> dict[str, Any]:
        renewals.append(tenant_row(services, tenant_id).poll_lease_until)
        clock.advance(LEASE * 0.6)  # each request takes most of a lease: only renewals keep it alive
        return real(token, tenant, endpoint, params, **kwargs)

    monkeypatch.setattr(services.xero, "get", slow_get)
    assert dispatch_due_polls(services) == [PollTenant(tenant_id)]
    report = run_poll(services, tenant_id)
    assert not report.skipped
    assert report.bills_seen > 4 * PAGE_SIZE
    assert len(set(renewals)) == len(renewals), "the lease was not renewed before each Xero request"
    assert tenant_row(services, tenant_id).poll_lease_until is None


def test_three_polls_that_die_park_the_tenant_with_the_reason_in_status(
    services: Services, sandbox: XeroSandbox, clock: Clock, tenant_id: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    total = len(sandbox.dataset.tenant(tenant_id).bills)
    assert dispatch_due_polls(services) == [PollTenant(tenant_id)]
    with monkeypatch.context() as patch:
        for death in range(3):
            die_on_invoices_request(services, patch, 1)  # a page that kills its worker every time
            with pytest.raises(WorkerKilled):
                run_poll(services, tenant_id)
            clock.advance(LEASE + 1)
            expected = [PollTenant(tenant_id)] if death < 2 else []
            assert dispatch_due_polls(services) == expected, f"after death {death + 1}"
    calls = sandbox.stats()["calls_by_endpoint"]
    assert run_poll(services, tenant_id).skipped, "a redelivered message ran a parked poll"
    assert sandbox.stats()["calls_by_endpoint"] == calls

    parked = tenant_row(services, tenant_id)
    assert parked.poll_parked_reason is not None
    assert f"the poll of tenant {tenant_id} died 3 times in a row without finishing" in parked.poll_parked_reason
    attention = summarise(services.ledger).attention
    assert any(tenant_id in line and parked.poll_parked_reason in line for line in attention), attention
    with services.ledger.transaction() as session:
        kinds = list(session.scalars(select(OperationalEvent.kind).where(OperationalEvent.tenant_id == tenant_id)))
    assert kinds.count("poll_parked") == 1
    clock.advance(3600)
    assert dispatch_due_polls(services) == [], "a parked tenant was dispatched"

    with services.ledger.transaction() as session:
        unpark_polls(session, tenant_id)
    assert dispatch_due_polls(services) == [PollTenant(tenant_id)]
    run_poll(services, tenant_id)
    assert bills_in_ledger(services) == total
    assert tenant_row(services, tenant_id).poll_runs == 0
    assert not any(tenant_id in line for line in summarise(services.ledger).attention)


def test_a_poll_ending_with_a_xero_error_frees_its_lease_and_resets_its_count(
    services: Services, sandbox: XeroSandbox, tenant_id: str,
) -> None:
    sandbox.faults.fail_next("/api.xro/2.0/Invoices", 3, 503)
    with pytest.raises(XeroUnavailable):
        run_poll(services, tenant_id)
    after = tenant_row(services, tenant_id)
    assert (after.poll_lease_until, after.poll_runs) == (None, 0)
    assert not run_poll(services, tenant_id).skipped, "the retry was blocked by the failed poll's lease"
    assert bills_in_ledger(services) == len(sandbox.dataset.tenant(tenant_id).bills)


def test_bills_whose_map_messages_were_sent_are_marked_page_by_page(
    services: Services, tenant_id: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The sweeper tells a bill whose message was never sent (the poll died before emitting) by this mark."""
    with monkeypatch.context() as patch:
        die_on_invoices_request(services, patch, 3)
        with pytest.raises(WorkerKilled):
            run_poll(services, tenant_id)
    with services.ledger.transaction() as session:
        marks = list(session.scalars(select(Bill.map_sent_at)))
    assert PAGE_SIZE < len(marks) <= 2 * PAGE_SIZE
    assert all(mark is not None for mark in marks), "bills whose map message went out are not marked sent"


def test_the_poll_lease_must_outlast_one_xero_request_with_its_inline_retries() -> None:
    base = {"CONNECTOR_FERNET_KEYS": Vault.new_key(), "CONNECTOR_XERO_TIMEOUT_SECONDS": "30"}
    assert load_settings(base).poll_lease_seconds == 120
    with pytest.raises(ConfigurationError) as bad:
        load_settings({**base, "CONNECTOR_POLL_LEASE_SECONDS": "60"})
    assert any("CONNECTOR_POLL_LEASE_SECONDS" in problem for problem in bad.value.problems)


def test_a_poll_message_lost_before_its_poll_started_is_dispatched_again_after_a_lease(
    services: Services, tenant_id: str, clock: Clock,
) -> None:
    assert dispatch_due_polls(services) == [PollTenant(tenant_id)]  # sent; its worker is killed on receipt
    clock.advance(LEASE / 2)
    assert dispatch_due_polls(services) == []  # it may still start
    clock.advance(LEASE / 2 + 1)
    assert dispatch_due_polls(services) == [PollTenant(tenant_id)]  # a lease later: sent again, not a cadence
    report = poll.poll_tenant(services, tenant_id, emit=lambda _m: None)
    assert report.bills_seen > 0
    clock.advance(LEASE + 1)
    assert dispatch_due_polls(services) == []  # once a poll ran, the cadence decides again


def test_a_poll_waiting_on_a_dead_workers_token_refresh_keeps_its_lease_and_is_not_counted_as_dead(
    services: Services, clock: Clock, tenant_id: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker killed while it refreshed the grant's token leaves its refresh lease (at least 60 s) to
    lapse; every poll meanwhile waits for it. A poll that waits must renew its own lease (shorter, 15 s in
    the chaos run), or each waiting poll is taken for dead, dispatched again, counted, and the tenant is
    parked after three though nothing died but the refresher."""
    with services.ledger.transaction() as session:
        grant = session.get_one(XeroGrant, session.get_one(Tenant, tenant_id).grant_id)
        grant.access_expires_at = utcnow() - timedelta(hours=1)  # this poll must refresh first
        grant.refreshing_until = utcnow() + timedelta(seconds=1.5)  # the dead refresher's lease (real time)
    dispatched: list[Message] = []
    real_sleep = auth.time.sleep

    def waiting(seconds: float) -> None:  # each wait for the refresher: most of a poll lease goes by
        clock.advance(LEASE * 0.6)
        dispatched.extend(dispatch_due_polls(services))
        real_sleep(seconds)

    assert dispatch_due_polls(services) == [PollTenant(tenant_id)]
    monkeypatch.setattr(auth.time, "sleep", waiting)
    report = run_poll(services, tenant_id)
    assert not report.skipped
    assert report.bills_seen > 4 * PAGE_SIZE
    assert dispatched == [], "a poll waiting for the token refresh was taken for dead and dispatched again"
    after = tenant_row(services, tenant_id)
    assert (after.poll_lease_until, after.poll_runs, after.poll_parked_reason) == (None, 0, None)


def test_a_slow_poll_whose_lease_was_taken_over_gives_back_its_run_so_only_dead_polls_count_towards_parking(
    services: Services, clock: Clock, tenant_id: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A poll that outlived its lease (a loaded machine, not a dead worker) is taken over; when it finds
    out it stops, and it ended alive: its run is not one of the "runs that died" that park the tenant."""
    real = services.xero.get
    asked = [0]

    def slow_get(token: Any, tenant: str, endpoint: str, params: Any, **kwargs: Any) -> dict[str, Any]:
        if endpoint == "Invoices":
            asked[0] += 1
            if asked[0] == 2:  # this request outlives the lease: the next tick takes the poll for dead
                clock.advance(LEASE + 1)
                assert dispatch_due_polls(services) == [PollTenant(tenant_id)]
                with services.ledger.transaction() as session:  # the replacement starts (and is counted)
                    assert take_poll_lease(session, tenant_id, clock(), clock() + timedelta(seconds=LEASE))
        return real(token, tenant, endpoint, params, **kwargs)

    assert dispatch_due_polls(services) == [PollTenant(tenant_id)]
    with monkeypatch.context() as patch:
        patch.setattr(services.xero, "get", slow_get)
        with pytest.raises(PollLeaseLost):
            run_poll(services, tenant_id)
    assert tenant_row(services, tenant_id).poll_runs == 1, "the slow poll's run was counted as a dead one"

    clock.advance(LEASE + 1)  # the replacement did die: it is dispatched again, its run counted
    assert dispatch_due_polls(services) == [PollTenant(tenant_id)]
    assert not run_poll(services, tenant_id).skipped
    after = tenant_row(services, tenant_id)
    assert (after.poll_lease_until, after.poll_runs, after.poll_parked_reason) == (None, 0, None)
