"""A long poll hands over instead of running into the poll queue's time limit: past its reading budget
(CONNECTOR_POLL_HANDOVER_SECONDS) it stops before its next page, frees its tenant and sends a fresh poll,
which goes on from the committed watermark. Nothing is read twice into the pipeline, nothing is skipped,
and a fresh poll whose message is lost is sent again by the dispatcher."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from connector.crypto import Vault
from connector.errors import ConfigurationError
from connector.services import dispatch, poll
from connector.services.context import Services
from connector.services.messages import AssembleBatch, MapInvoice, Message, PollTenant
from connector.settings import load_settings
from connector.store.models import Bill, Tenant
from sandbox.xero import XeroSandbox
from tests.support.pipeline import onboard, with_master_data
from tests.support.services import services_for_sandbox
from tests.support.sftp_fixtures import BundledSftp

BILLS = 300
PAGE = 50


@pytest.fixture
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=5, tenants=1, bills=BILLS) as running:
        running.faults.configure(latency_ms=150)  # each page takes longer than the whole reading budget
        yield running


@pytest.fixture(params=["sqlite", "postgresql"])
def services(request: pytest.FixtureRequest, sandbox: XeroSandbox, tmp_path: Path) -> Iterator[Services]:
    schema = request.getfixturevalue("pg_schema") if request.param == "postgresql" else None
    built = services_for_sandbox(sandbox, tmp_path, request.param, schema=schema, extra_env={
        "CONNECTOR_XERO_PAGE_SIZE": str(PAGE), "CONNECTOR_POLL_HANDOVER_SECONDS": "0.1"})
    yield built
    built.close()


def tenant_row(services: Services, tenant_id: str) -> Tenant:
    with services.ledger.transaction() as session:
        tenant = session.scalars(select(Tenant).where(Tenant.id == tenant_id)).one()
        session.expunge(tenant)
        return tenant


def test_a_poll_past_its_budget_hands_over_at_a_page_boundary_and_the_fresh_polls_read_every_bill_once(
    services: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    sent: list[Message] = []
    reports: list[poll.PollReport] = []
    while not reports or reports[-1].handed_over:
        assert len(reports) < 3 * BILLS // PAGE, "the hand-overs make progress"
        before = len(sent)
        reports.append(poll.poll_tenant(services, tenant_id, emit=sent.append))
        asked = sent[before:]
        if reports[-1].handed_over:
            assert asked[-1] == PollTenant(tenant_id), "a fresh poll is sent, after the page's map messages"
            assert tenant_row(services, tenant_id).poll_lease_until is None, "the tenant is free for it"

    assert len(reports) >= BILLS // PAGE, "each poll read about one page before handing over"
    assert sum(r.bills_seen for r in reports[:-1]) > 0, "a poll that hands over still reports what it read"
    mapped = Counter(m.invoice_id for m in sent if isinstance(m, MapInvoice))
    with services.ledger.transaction() as session:
        in_ledger = set(session.scalars(select(Bill.invoice_id).where(Bill.tenant_id == tenant_id)))
    assert {bill.invoice_id for bill in sandbox.dataset.tenant(tenant_id).bills} <= in_ledger
    assert set(mapped) == in_ledger, "every bill and supplier credit note read went to mapping"
    assert max(mapped.values()) == 1, "no bill was sent to mapping twice across the hand-overs"
    bills = {bill.invoice_id for bill in sandbox.dataset.tenant(tenant_id).bills}
    assert sum(r.bills_changed for r in reports) == len(bills)
    finished = tenant_row(services, tenant_id)
    assert finished.last_polled_at is not None, "the last poll finished the cycle"
    assert finished.poll_runs == 0


def test_hand_overs_end_even_when_more_bills_than_a_budget_can_read_share_the_overlap_window(
    services: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    """A fresh poll re-reads the overlap before its watermark (300 s); after a bulk edit stamping every bill
    within a minute, that window holds more than one budget's pages. A poll hands over only once it has
    moved a watermark, so each fresh poll reads past the overlap into new ground (it looped for ever)."""
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    store = sandbox.state.store.tenant(tenant_id)
    assert store is not None
    bills = [bill for bill in store.invoices() if bill.type == "ACCPAY"]
    first = min(bill.updated for bill in bills)
    for n, bill in enumerate(bills):
        store.replace_invoice(dataclasses.replace(bill, updated=first + timedelta(milliseconds=200 * n), cache={}))
    sent: list[Message] = []
    reports: list[poll.PollReport] = []
    while not reports or reports[-1].handed_over:
        mapped = {m.invoice_id for m in sent if isinstance(m, MapInvoice)}
        assert len(reports) < 3 * BILLS // PAGE, f"no progress after {len(reports)} polls: {len(mapped)} mapped"
        reports.append(poll.poll_tenant(services, tenant_id, emit=sent.append))
    mapped = {m.invoice_id for m in sent if isinstance(m, MapInvoice)}
    assert {bill.invoice_id for bill in bills} <= mapped


def test_a_fresh_poll_whose_message_is_lost_is_dispatched_again_within_a_lease(
    services: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    lost: list[Message] = []
    assert poll.poll_tenant(services, tenant_id, emit=lost.append).handed_over
    assert lost[-1] == PollTenant(tenant_id)  # ... and the broker loses it
    now = services.clock()
    assert dispatch.dispatch_due_polls(services) == [], "not before a poll lease has gone by"
    later = dataclasses.replace(services, clock=lambda: now + timedelta(seconds=services.settings.poll_lease_seconds))
    assert dispatch.dispatch_due_polls(later) == [PollTenant(tenant_id)]


def test_the_reading_budget_is_at_most_half_the_poll_queues_soft_time_limit() -> None:
    """The other half is for the page being read when it runs out, its suppliers and the poll's wrap-up."""
    with pytest.raises(ConfigurationError, match="CONNECTOR_POLL_HANDOVER_SECONDS must be at most 285"):
        load_settings({"CONNECTOR_POLL_HANDOVER_SECONDS": "300"})
    long_requests = {"CONNECTOR_FERNET_KEYS": Vault.new_key(), "CONNECTOR_XERO_TIMEOUT_SECONDS": "90",
                     "CONNECTOR_POLL_LEASE_SECONDS": "600"}
    assert load_settings(long_requests).poll_handover_seconds == 240, (
        "a long Xero timeout does not make the default budget refuse to start")


def test_a_tenant_sending_master_data_has_its_master_data_files_asked_for_at_each_hand_over(
    services: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    """So the bills mapped while a large first sync still reads may go in full files before it ends."""
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    with_master_data(services, tenant_id)
    sent: list[Message] = []
    assert poll.poll_tenant(services, tenant_id, emit=sent.append).handed_over
    assert sent[-2:] == [AssembleBatch(tenant_id, bills=False), PollTenant(tenant_id)]
