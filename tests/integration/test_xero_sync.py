"""Talking to Xero (the sandbox) politely: token custody, every 429 kind, 5xx, and exact deltas.

The rate budget is shared through the real Redis, as on production workers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from connector.crypto import Vault
from connector.errors import XeroGrantRevoked, XeroRateLimited, XeroTimedOut, XeroUnavailable
from connector.secret import Secret
from connector.services import poll
from connector.services.context import Services
from connector.services.dispatch import dispatch_due_polls
from connector.services.messages import Message
from connector.sftp import SftpTarget
from connector.store.models import Bill, OperationalEvent, Tenant, XeroGrant
from sandbox.xero import XeroSandbox
from tests.support.pipeline import onboard
from tests.support.services import make_services

KEY = Vault.new_key()  # one key for every "process" of a test, as one deployment shares its keys
NO_SFTP = SftpTarget(host="127.0.0.1", port=22, username="x", import_dir="/x", host_key="", password=Secret("p"))


@pytest.fixture
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=31, tenants=2, bills=120) as running:
        yield running


def build(sandbox: XeroSandbox, tmp_path: Path, redis_url: str, db: str = "ledger.db", **env: str) -> Services:
    urls = sandbox.consent()["urls"]
    return make_services(f"sqlite:///{tmp_path / db}", tmp_path, extra_env={
        "CONNECTOR_XERO_TOKEN_URL": urls["token"], "CONNECTOR_XERO_API_URL": urls["api"],
        "CONNECTOR_REDIS_URL": redis_url, "CONNECTOR_XERO_PAGE_SIZE": "50", "CONNECTOR_FERNET_KEYS": KEY, **env})


@pytest.fixture
def services(sandbox: XeroSandbox, tmp_path: Path, redis_url: str) -> Iterator[Services]:
    built = build(sandbox, tmp_path, redis_url)
    yield built
    built.close()


def sync(services: Services, tenant_id: str, on_message: Any = None) -> poll.PollReport:
    def emit(message: Message) -> None:
        if on_message is not None:
            on_message(message)
    return poll.poll_tenant(services, tenant_id, emit=emit)


def api_calls(sandbox: XeroSandbox) -> int:
    return sum(sum(codes.values()) for name, codes in sandbox.stats()["calls_by_endpoint"].items()
               if "/api.xro/" in name)


def bills_in_ledger(services: Services) -> int:
    """Bills only: supplier credit notes are rows of the same table (document_type CREDIT_NOTE)."""
    with services.ledger.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(Bill).where(Bill.document_type == "BILL")) or 0)


# --- token custody -------------------------------------------------------------------------------------

def test_the_rotated_refresh_token_is_kept_across_a_worker_restart(
    sandbox: XeroSandbox, services: Services, tmp_path: Path, redis_url: str,
) -> None:
    tenant_id = onboard(services, sandbox, NO_SFTP)
    sync(services, tenant_id)
    services.close()
    sandbox.expire_tokens()  # the new process must refresh with the token the old one stored
    restarted = build(sandbox, tmp_path, redis_url)
    sync(restarted, tenant_id)
    assert sandbox.stats()["token_refreshes"] == 2
    assert sandbox.stats()["token_errors"] == {}
    restarted.close()


def test_workers_refreshing_at_once_leave_one_valid_grant(
    sandbox: XeroSandbox, services: Services, tmp_path: Path, redis_url: str,
) -> None:
    tenant_id = onboard(services, sandbox, NO_SFTP)
    workers = [build(sandbox, tmp_path, redis_url) for _ in range(4)]
    tokens: list[str] = []
    barrier = threading.Barrier(len(workers))

    def refresh(worker: Services) -> None:
        barrier.wait()
        tokens.append(worker.tokens.access_token(1, force_refresh=True).reveal())

    threads = [threading.Thread(target=refresh, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(tokens)) == 1
    assert sandbox.stats()["token_refreshes"] == 1
    sync(services, tenant_id)  # the grant is still good
    for worker in workers:
        worker.close()


def test_token_expiry_in_the_middle_of_a_large_sync_is_survived(tmp_path: Path, redis_url: str) -> None:
    # ten pages of bills, as a first sync of 10,000 at Xero's page size reads, at a fifth of the records
    with XeroSandbox(seed=32, tenants=1, bills=2_000) as sandbox:
        services = build(sandbox, tmp_path, redis_url, CONNECTOR_XERO_PAGE_SIZE="200")
        tenant_id = onboard(services, sandbox, NO_SFTP)
        advanced: list[bool] = []

        def half_an_hour_later(_: Message) -> None:
            if not advanced:
                advanced.append(sandbox.advance(1801) is not None)  # the sandbox clock jumps 30 minutes

        report = sync(services, tenant_id, half_an_hour_later)
        stats = sandbox.stats()
        services.close()
    assert advanced
    assert report.bills_changed == 2_000
    assert stats["token_refreshes"] == 2
    assert stats["calls_by_endpoint"]["GET /api.xro/2.0/Invoices"].get("401") == 1


def test_invalid_grant_parks_only_that_grants_tenants_and_does_not_storm(
    sandbox: XeroSandbox, services: Services,
) -> None:
    first, second = sandbox.tenant_ids
    onboard(services, sandbox, NO_SFTP, tenant_index=0)
    onboard(services, sandbox, NO_SFTP, tenant_index=1)
    with services.ledger.transaction() as session:  # grant 1's token was rotated elsewhere
        session.execute(text("UPDATE xero_grants SET refresh_token_enc = :t WHERE id = 1"),
                        {"t": services.vault.encrypt("stale-refresh-token")})
    with pytest.raises(XeroGrantRevoked):
        sync(services, first)
    refusals = sandbox.stats()["token_errors"]
    with pytest.raises(XeroGrantRevoked):
        sync(services, first)  # no second call to the token endpoint
    assert sandbox.stats()["token_errors"] == refusals
    assert [m.tenant_id for m in dispatch_due_polls(services)] == [second]  # type: ignore[union-attr]
    with services.ledger.transaction() as session:
        assert session.get_one(XeroGrant, 1).status == "NEEDS_REAUTH"
        assert session.get_one(XeroGrant, 2).status == "ACTIVE"
        assert session.scalar(select(OperationalEvent.kind)) == "grant_needs_reauth"


def test_a_tenant_xero_refuses_is_disconnected_and_the_others_go_on(
    sandbox: XeroSandbox, services: Services,
) -> None:
    reachable, unreachable = sandbox.tenant_ids
    consent = sandbox.consent([reachable])
    from connector.onboarding import add_grant, add_tenant

    grant = add_grant(services.ledger, services.vault, client_id=consent["client_id"],
                      client_secret=Secret(consent["client_secret"]), refresh_token=Secret(consent["refresh_token"]))
    for tenant_id in (reachable, unreachable):
        add_tenant(services.ledger, tenant_id=tenant_id, name=tenant_id, short_name="t", grant_id=grant,
                   sftp_target_id=None)
    with pytest.raises(Exception, match="403"):
        sync(services, unreachable)
    assert sync(services, reachable).bills_changed > 0
    with services.ledger.transaction() as session:
        assert session.get_one(Tenant, unreachable).status == "DISCONNECTED"
        assert session.get_one(Tenant, reachable).status == "ACTIVE"


# --- rate limits and errors ----------------------------------------------------------------------------

def test_a_minute_429_is_waited_out_and_no_call_is_made_while_blocked(
    sandbox: XeroSandbox, services: Services,
) -> None:
    tenant_id = onboard(services, sandbox, NO_SFTP)
    sandbox.faults.fail_next("/api.xro/2.0/Invoices", 1, 429, retry_after=1, problem="minute")
    with pytest.raises(XeroRateLimited) as limited:
        sync(services, tenant_id)
    assert limited.value.problem == "minute"
    assert limited.value.retry_after == pytest.approx(1, abs=0.5)
    calls = api_calls(sandbox)
    with pytest.raises(XeroRateLimited):
        sync(services, tenant_id)
    assert api_calls(sandbox) == calls, "a call was made while the tenant was held back"
    time.sleep(1.2)
    sync(services, tenant_id)
    assert bills_in_ledger(services) == len(sandbox.dataset.tenant(tenant_id).bills)


def test_a_day_429_parks_the_tenant_until_the_reset_and_polls_resume_by_themselves(
    sandbox: XeroSandbox, services: Services,
) -> None:
    tenant_id = onboard(services, sandbox, NO_SFTP)
    other = onboard(services, sandbox, NO_SFTP, tenant_index=1)
    sandbox.faults.fail_next("/api.xro/2.0/Invoices", 1, 429, retry_after=3600, problem="day")
    with pytest.raises(XeroRateLimited):
        sync(services, tenant_id)
    calls = api_calls(sandbox)
    assert sync(services, tenant_id).skipped
    assert api_calls(sandbox) == calls
    assert [m.tenant_id for m in dispatch_due_polls(services)] == [other]  # type: ignore[union-attr]
    with services.ledger.transaction() as session:
        session.execute(text("UPDATE tenants SET parked_until = NULL, next_poll_at = NULL"))
    services.xero._budget._leases.block(f"block-day:{tenant_id}", 0.01)  # the reset has come
    time.sleep(0.05)
    assert tenant_id in [m.tenant_id for m in dispatch_due_polls(services)]  # type: ignore[union-attr]


def test_an_app_minute_429_pauses_every_tenant(sandbox: XeroSandbox, services: Services) -> None:
    first = onboard(services, sandbox, NO_SFTP)
    second = onboard(services, sandbox, NO_SFTP, tenant_index=1)
    sandbox.faults.fail_next("/api.xro/2.0/Invoices", 1, 429, retry_after=2, problem="appminute")
    with pytest.raises(XeroRateLimited):
        sync(services, first)
    calls = api_calls(sandbox)
    with pytest.raises(XeroRateLimited) as held:
        sync(services, second)
    assert held.value.problem == "appminute"
    assert api_calls(sandbox) == calls


def test_bursts_of_5xx_are_retried_and_committed_pages_are_not_read_again(
    sandbox: XeroSandbox, services: Services,
) -> None:
    tenant_id = onboard(services, sandbox, NO_SFTP)
    failed: list[bool] = []

    def fail_after_first_page(_: Message) -> None:
        if not failed:
            failed.append(True)
            sandbox.faults.fail_next("/api.xro/2.0/Invoices", 3, 503)

    with pytest.raises(XeroUnavailable):
        sync(services, tenant_id, fail_after_first_page)
    first_read = sandbox.stats()["records_served"].get("Invoices", 0)
    for _ in range(3):
        try:
            sync(services, tenant_id)
            break
        except XeroUnavailable:
            continue
    assert bills_in_ledger(services) == len(sandbox.dataset.tenant(tenant_id).bills)
    reread = sandbox.stats()["records_served"]["Invoices"] - first_read
    assert reread < len(sandbox.dataset.tenant(tenant_id).bills), "the retry started again from the start"


# --- deltas --------------------------------------------------------------------------------------------

def test_a_delta_after_modifying_5_percent_and_adding_1_percent_fetches_exactly_those(
    tmp_path: Path, redis_url: str,
) -> None:
    with XeroSandbox(seed=33, tenants=1, bills=1000) as sandbox:
        services = build(sandbox, tmp_path, redis_url, CONNECTOR_XERO_PAGE_SIZE="1000")
        tenant_id = onboard(services, sandbox, NO_SFTP)
        sync(services, tenant_id)
        sandbox.update(tenant_id, modify=50, add=10)
        calls = api_calls(sandbox)
        changed: list[Message] = []
        sync(services, tenant_id, changed.append)
        delta_calls = api_calls(sandbox) - calls
        services.close()
    assert len(changed) == 60
    assert delta_calls <= 4


# --- vendors, shifting pages, bad records, latency -----------------------------------------------------

def test_unknown_vendors_are_fetched_50_at_a_time_and_merges_are_followed(
    sandbox: XeroSandbox, services: Services,
) -> None:
    from connector.services.reference import resolve_contacts
    from connector.store.models import ContactRow

    tenant_id = onboard(services, sandbox, NO_SFTP)
    tenant = sandbox.dataset.tenant(tenant_id)
    merged = next(c for c in tenant.contacts if c.merged_to)
    wanted = [c.contact_id for c in tenant.contacts if c.contact_id != merged.merged_to]
    with services.ledger.transaction() as session:
        session.execute(text("DELETE FROM contacts"))
    reader = poll.TenantReader(services, tenant_id, 1)
    calls = resolve_contacts(services, reader.get, tenant_id, wanted)
    assert calls == -(-len(wanted) // 50) + 1  # the batches, then the contact the duplicate was merged into
    with services.ledger.transaction() as session:
        held = {c.contact_id: c for c in session.scalars(select(ContactRow))}
    assert set(wanted) | {merged.merged_to} <= set(held)
    assert held[merged.contact_id].status == "ARCHIVED"
    assert held[merged.contact_id].merged_to == merged.merged_to
    assert resolve_contacts(services, reader.get, tenant_id, wanted) == 0  # held vendors cost nothing


def test_bills_edited_while_we_page_are_neither_lost_nor_doubled(sandbox: XeroSandbox, services: Services) -> None:
    tenant_id = onboard(services, sandbox, NO_SFTP)
    edited: list[bool] = []

    def edit_after_first_page(_: Message) -> None:
        if not edited:
            edited.append(True)
            sandbox.update(tenant_id, modify=20)  # bills of every page jump to the end of the order

    sync(services, tenant_id, edit_after_first_page)
    assert edited
    assert bills_in_ledger(services) == len(sandbox.dataset.tenant(tenant_id).bills)


def test_a_bad_record_is_held_with_its_field_named_and_the_page_goes_on(
    sandbox: XeroSandbox, services: Services,
) -> None:
    from connector.domain.states import BillState
    from connector.services import map as mapping

    tenant_id = onboard(services, sandbox, NO_SFTP)
    sync(services, tenant_id)
    with services.ledger.transaction() as session:
        good, bad = session.scalars(select(Bill).order_by(Bill.id).limit(2)).all()
        page = [
            {**good.payload, "UpdatedDateUTC": f"/Date({good.version + 1000}+0000)/"},
            {**bad.payload, "DueDate": "next Tuesday", "UpdatedDateUTC": f"/Date({bad.version + 1000}+0000)/"},
            {"Type": "ACCPAY", "Total": 1},  # no InvoiceID at all: logged and skipped
        ]
    messages = services.ledger.retrying(lambda s: poll.upsert_bills(s, tenant_id, page))
    for message in messages:
        mapping.map_invoice(services, message.tenant_id, message.invoice_id, message.version)  # type: ignore[union-attr]
    with services.ledger.transaction() as session:
        held = session.scalars(select(Bill).where(Bill.invoice_id == bad.invoice_id)).one()
        other = session.scalars(select(Bill).where(Bill.invoice_id == good.invoice_id)).one()
    assert held.state == BillState.HELD
    assert held.reasons[0]["code"] == "bad_record"
    assert f"invoice {bad.invoice_id}" in held.reasons[0]["problem"]
    assert "'DueDate'" in held.reasons[0]["problem"]
    assert other.state != BillState.DISCOVERED


def test_a_concurrent_429_and_slow_answers_are_waited_out(sandbox: XeroSandbox, services: Services) -> None:
    tenant_id = onboard(services, sandbox, NO_SFTP)
    sandbox.faults.configure(latency_ms=30)
    sandbox.faults.fail_next("/api.xro/2.0/Invoices", 1, 429, retry_after=1, problem="concurrent")
    with pytest.raises(XeroRateLimited) as limited:
        sync(services, tenant_id)
    assert limited.value.problem == "concurrent"
    time.sleep(1.1)
    sync(services, tenant_id)
    assert bills_in_ledger(services) == len(sandbox.dataset.tenant(tenant_id).bills)


def test_a_tenant_whose_calls_hang_costs_one_timeout_per_try_and_the_other_tenant_is_polled_meanwhile(
    sandbox: XeroSandbox, tmp_path: Path, redis_url: str,
) -> None:
    """A hang is no blip: the call is given up after one request timeout, not tried again inline (three
    timeouts and two pauses held the worker before; counted on the sandbox, not timed), so a hung organisation
    holds a poll worker for one timeout per try of its task; the next tenant is served at full speed."""
    from connector.onboarding import add_grant, add_tenant

    services = build(sandbox, tmp_path, redis_url, CONNECTOR_XERO_TIMEOUT_SECONDS="0.5")
    hung, other = sandbox.tenant_ids
    consent = sandbox.consent()
    grant = add_grant(services.ledger, services.vault, client_id=consent["client_id"],
                      client_secret=Secret(consent["client_secret"]), refresh_token=Secret(consent["refresh_token"]))
    for tenant_id in (hung, other):
        add_tenant(services.ledger, tenant_id=tenant_id, name=tenant_id, short_name="t", grant_id=grant,
                   sftp_target_id=None)
    sandbox.faults.configure(latency_ms=4000, tenant=hung)
    arrived_before = sandbox.requests_received()
    began = time.monotonic()
    with pytest.raises(XeroTimedOut):
        sync(services, hung)
    assert sandbox.requests_received() - arrived_before == 1, "one timeout per try: not retried inline"
    assert time.monotonic() - began < 3.0, "gave up after its timeout, not when the answer came"
    assert sync(services, other).bills_changed == len(sandbox.dataset.tenant(other).bills)
    services.close()
