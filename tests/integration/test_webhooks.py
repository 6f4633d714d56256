"""Xero webhooks against the sandbox's real signed requests: the receiver answers as Xero requires, keeps
each payload once, and only wakes a known tenant's poll (one per burst, never next to a running poll)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from jsonschema import Draft202012Validator
from sqlalchemy import func, select, text, update

from connector.domain.webhooks import MAX_BODY_BYTES, sign
from connector.onboarding import add_grant, add_tenant
from connector.reporting import summarise
from connector.secret import Secret
from connector.services.context import Services
from connector.services.dispatch import dispatch_due_polls
from connector.services.messages import PollTenant
from connector.services.poll import poll_tenant
from connector.store.models import Tenant, utcnow
from connector.store.polls import take_poll_lease
from connector.store.webhooks import WebhookHeardRow, WebhookInboxRow
from connector.webhooks import WEBHOOK_PATH, Receiver
from sandbox.xero import XeroSandbox
from sandbox.xero.server import SandboxServer
from tests.sandbox.conftest import SPECS
from tests.support.services import services_for_sandbox

KEY = "webhook-key-" + "k" * 76


class Harness:
    def __init__(self, services: Services, sandbox: XeroSandbox, window: float) -> None:
        self.services, self.sandbox = services, sandbox
        self.wakes: list[tuple[str, float]] = []
        self.receiver = Receiver(services.ledger, Secret(KEY), timedelta(seconds=window),
                                 lambda tenant, delay: self.wakes.append((tenant, delay)))
        self.server = SandboxServer(self.receiver)
        self.server.start()
        self.url = self.server.base_url + WEBHOOK_PATH
        consent = sandbox.consent()
        grant = add_grant(services.ledger, services.vault, client_id=str(consent["client_id"]),
                          client_secret=Secret(str(consent["client_secret"])),
                          refresh_token=Secret(str(consent["refresh_token"])))
        self.tenant_id = sandbox.tenant_ids[0]
        add_tenant(services.ledger, tenant_id=self.tenant_id, name="Acme", short_name="acme", grant_id=grant,
                   sftp_target_id=None)
        with services.ledger.transaction() as session:  # polled a minute ago: not due for a cadence
            session.execute(update(Tenant).values(next_poll_at=utcnow() + timedelta(minutes=14)))

    def inbox(self) -> int:
        with self.services.ledger.transaction() as session:
            return session.scalar(select(func.count()).select_from(WebhookInboxRow)) or 0

    def heard(self, tenant_id: str) -> tuple[bool, int]:
        """Whether the webhooks named a tenant we sync, and how many events they carried for it."""
        with self.services.ledger.transaction() as session:
            rows = session.execute(select(WebhookHeardRow.known, WebhookHeardRow.events)
                                   .where(WebhookHeardRow.tenant_id == tenant_id)).all()
        return all(known for known, _ in rows), sum(events for _, events in rows)

    def next_poll_at(self) -> object:
        with self.services.ledger.transaction() as session:
            return session.scalar(select(Tenant.next_poll_at).where(Tenant.id == self.tenant_id))

    def post(self, body: bytes, signature: str | None) -> requests.Response:
        headers = {"Content-Type": "application/json"}
        if signature is not None:
            headers["x-xero-signature"] = signature
        # The client's patience, not a check: 400 deliveries from 16 threads queue on one SQLite writer in
        # this process, and a loaded machine (parallel test runners) has seen one wait past 5 s.
        return requests.post(self.url, data=body, headers=headers, timeout=30)

    def stop(self) -> None:
        self.server.shutdown()
        self.receiver.close()


@pytest.fixture
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=11, tenants=2, bills=40) as running:
        yield running


@pytest.fixture(params=["postgresql", "sqlite"])
def services(request: pytest.FixtureRequest, sandbox: XeroSandbox, pg_schema: str,
             tmp_path: Path) -> Iterator[Services]:
    """PostgreSQL takes each payload in one statement (store.webhooks.Inbox); SQLite, the embedded
    default, in a Session: both keep the same rules."""
    built = services_for_sandbox(sandbox, tmp_path, request.param, schema=pg_schema)
    yield built
    built.close()


@pytest.fixture
def harness(services: Services, sandbox: XeroSandbox) -> Iterator[Harness]:
    running = Harness(services, sandbox, window=5.0)
    yield running
    running.stop()


def test_the_sandbox_intent_to_receive_check_passes_with_200_empty_and_401(harness: Harness) -> None:
    snapshot = harness.sandbox.webhooks.configure(harness.url, KEY)
    assert snapshot["intent_to_receive"] is True
    assert snapshot["enabled"] is True
    good, bad = harness.sandbox.webhooks.deliveries
    assert (good.status, good.response_body) == (200, b"")
    assert (bad.status, bad.response_body) == (401, b"")
    assert harness.wakes == []


def test_a_wrong_webhook_key_fails_the_intent_to_receive_check(harness: Harness) -> None:
    assert harness.sandbox.webhooks.configure(harness.url, "another-key")["intent_to_receive"] is False
    assert [d.status for d in harness.sandbox.webhooks.deliveries] == [401, 401]


def test_a_correctly_signed_change_gets_200_with_an_empty_body_and_wakes_the_tenant(harness: Harness) -> None:
    harness.sandbox.webhooks.configure(harness.url, KEY)
    changed = harness.sandbox.update(harness.tenant_id, modify=1, add=1)
    assert harness.sandbox.webhooks.flush()
    delivery = harness.sandbox.webhooks.deliveries[-1]
    assert (delivery.status, delivery.response_body) == (200, b"")
    events = json.loads(delivery.body)["events"]
    assert {e["resourceId"] for e in events} == {changed["added"][0], changed["modified"][0]["InvoiceID"]}
    assert [tenant for tenant, _ in harness.wakes] == [harness.tenant_id]
    assert 0 < harness.wakes[0][1] <= 5.0


def test_bad_missing_or_replayed_with_a_changed_body_signatures_get_401_and_change_nothing(harness: Harness) -> None:
    harness.sandbox.webhooks.configure(harness.url, KEY)
    harness.sandbox.update(harness.tenant_id, modify=1)
    assert harness.sandbox.webhooks.flush()
    real = harness.sandbox.webhooks.deliveries[-1]
    before, wakes, due = harness.inbox(), list(harness.wakes), harness.next_poll_at()

    tampered = real.body.replace(b'"UPDATE"', b'"CREATE"')
    assert tampered != real.body
    answers = [
        harness.post(tampered, real.signature),
        harness.post(real.body, None),
        harness.post(real.body, sign(real.body, "not-the-key")),
        harness.post(real.body, real.signature[:-4] + "AAA="),
    ]
    assert [(a.status_code, a.content) for a in answers] == [(401, b"")] * 4
    assert (harness.inbox(), harness.wakes, harness.next_poll_at()) == (before, wakes, due)

    replayed = harness.post(real.body, real.signature)  # Xero's own retry of the same delivery
    assert (replayed.status_code, replayed.content) == (200, b"")
    assert harness.inbox() == before, "the same payload is kept once"


def test_a_body_over_the_limit_is_refused_unread(harness: Harness) -> None:
    body = b"{" + b" " * MAX_BODY_BYTES + b"}"
    assert harness.post(body, sign(body, KEY)).status_code == 413
    assert harness.inbox() == 0


def test_a_burst_of_500_events_for_one_tenant_makes_one_poll(harness: Harness) -> None:
    harness.sandbox.webhooks.configure(harness.url, KEY)
    for _ in range(500):
        harness.sandbox.state.webhooks.changed(harness.tenant_id, "INVOICE", [], [str(uuid.uuid4())], utcnow())
    assert harness.sandbox.webhooks.flush(30)
    assert {d.status for d in harness.sandbox.webhooks.deliveries} == {200, 401}
    assert harness.heard(harness.tenant_id) == (True, 500)
    assert len(harness.wakes) == 1

    [(tenant, delay)] = harness.wakes
    harness.services.clock = lambda: utcnow() + timedelta(seconds=delay)  # the wake's countdown ran out
    assert dispatch_due_polls(harness.services, tenant) == [PollTenant(harness.tenant_id)]
    assert dispatch_due_polls(harness.services, tenant) == []
    assert dispatch_due_polls(harness.services) == [], "beat's tick finds nothing left to poll"


def test_a_webhook_for_a_tenant_mid_poll_does_not_start_a_second_poll(harness: Harness) -> None:
    harness.sandbox.webhooks.configure(harness.url, KEY)
    now = utcnow()
    with harness.services.ledger.transaction() as session:
        assert take_poll_lease(session, harness.tenant_id, now, now + timedelta(minutes=2))
    harness.sandbox.update(harness.tenant_id, modify=1)
    assert harness.sandbox.webhooks.flush()
    [(tenant, delay)] = harness.wakes

    harness.services.clock = lambda: utcnow() + timedelta(seconds=delay)
    assert dispatch_due_polls(harness.services, tenant) == []
    assert dispatch_due_polls(harness.services) == []
    with harness.services.ledger.transaction() as session:
        assert session.get_one(Tenant, harness.tenant_id).poll_lease_until == now + timedelta(minutes=2)


def test_an_event_for_an_unknown_tenant_is_recorded_and_changes_nothing(harness: Harness) -> None:
    harness.sandbox.webhooks.configure(harness.url, KEY)
    stranger = harness.sandbox.tenant_ids[1]  # a Xero organisation the app reaches but we do not sync
    due = harness.next_poll_at()
    harness.sandbox.update(stranger, modify=2)
    assert harness.sandbox.webhooks.flush()
    assert harness.sandbox.webhooks.deliveries[-1].status == 200
    assert harness.wakes == []
    assert harness.next_poll_at() == due
    with harness.services.ledger.transaction() as session:
        assert session.get(Tenant, stranger) is None
    assert harness.heard(stranger) == (False, 2)
    assert dispatch_due_polls(harness.services) == []


def test_status_shows_the_last_webhook_per_app_and_tenant_and_warns_when_they_stop_while_bills_change(
    harness: Harness,
) -> None:
    harness.sandbox.webhooks.configure(harness.url, KEY)
    harness.sandbox.update(harness.tenant_id, modify=1)
    harness.sandbox.update(harness.sandbox.tenant_ids[1], modify=1)
    assert harness.sandbox.webhooks.flush()
    poll_tenant(harness.services, harness.tenant_id, emit=lambda message: None)
    summary = summarise(harness.services.ledger)
    client_id = harness.sandbox.consent()["client_id"]
    [ours, stranger] = summary.webhooks
    assert ours.startswith(f"app {client_id} tenant {harness.tenant_id}: last webhook 20")
    assert stranger.startswith(f"tenant {harness.sandbox.tenant_ids[1]} (not synced): 1 events ignored")
    assert not [line for line in summary.attention if "webhooks stopped" in line]

    # Xero disabled the webhook: the bills keep changing, and no webhook comes any more.
    with harness.services.ledger.transaction() as session:
        session.execute(update(WebhookHeardRow).values(received_at=utcnow() - timedelta(hours=3)))
    harness.sandbox.webhooks.clear()
    harness.sandbox.update(harness.tenant_id, modify=1)
    poll_tenant(harness.services, harness.tenant_id, emit=lambda message: None)
    [warning] = [line for line in summarise(harness.services.ledger).attention if "webhooks stopped" in line]
    assert warning.startswith(f"tenant {harness.tenant_id}: webhooks stopped")
    assert "developer portal" in warning


def payload(*tenants: str, category: str = "INVOICE") -> bytes:
    """A Xero envelope with one event per tenant named, distinct on every call."""
    return json.dumps({"events": [{
        "resourceUrl": f"https://api.xero.com/api.xro/2.0/Invoices/{uuid.uuid4()}", "resourceId": str(uuid.uuid4()),
        "eventDateUtc": "2026-11-29T10:00:00.000", "eventType": "UPDATE", "eventCategory": category,
        "tenantId": tenant, "tenantType": "ORGANISATION"} for tenant in tenants],
        "firstEventSequence": 1, "lastEventSequence": len(tenants), "entropy": uuid.uuid4().hex}).encode()


def test_concurrent_deliveries_for_one_tenant_are_each_kept_once_and_plan_one_wake(harness: Harness) -> None:
    # All at one instant of the receiver's clock: on a loaded machine the 400 posts can take longer than
    # the 5 s window, and a delivery after the window rightly plans the next wake (the test below).
    now = utcnow()
    harness.receiver.clock = lambda: now
    bodies = [payload(harness.tenant_id) for _ in range(200)]
    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda body: harness.post(body, sign(body, KEY)).status_code, bodies + bodies))
    assert statuses == [200] * 400, "Xero's retries of a delivery are answered 200 too"
    assert harness.inbox() == 200
    assert harness.heard(harness.tenant_id) == (True, 200)
    assert [tenant for tenant, _ in harness.wakes] == [harness.tenant_id]


def test_a_delivery_after_the_planned_wake_plans_the_next_and_one_inside_it_does_not(harness: Harness) -> None:
    start = utcnow()
    clock: list[datetime] = [start]
    harness.receiver.clock = lambda: clock[0]
    first = payload(harness.tenant_id)
    assert harness.post(first, sign(first, KEY)).status_code == 200
    inside = payload(harness.tenant_id)
    clock[0] = start + timedelta(seconds=4)  # the window is 5 s
    assert harness.post(inside, sign(inside, KEY)).status_code == 200
    assert len(harness.wakes) == 1
    assert harness.next_poll_at() == start + timedelta(seconds=5)

    after = payload(harness.tenant_id)
    clock[0] = start + timedelta(seconds=6)
    assert harness.post(after, sign(after, KEY)).status_code == 200
    assert len(harness.wakes) == 2
    assert harness.wakes[1][1] == 5.0
    assert harness.next_poll_at() == start + timedelta(seconds=5), "a wake never makes a tenant due later"


def test_a_payload_naming_ours_and_a_stranger_wakes_ours_and_records_both(harness: Harness) -> None:
    stranger = harness.sandbox.tenant_ids[1]
    body = payload(harness.tenant_id, stranger, stranger)
    assert harness.post(body, sign(body, KEY)).status_code == 200
    assert [tenant for tenant, _ in harness.wakes] == [harness.tenant_id]
    assert harness.heard(harness.tenant_id) == (True, 1)
    assert harness.heard(stranger) == (False, 2)


def test_a_subscription_event_is_recorded_but_wakes_no_poll(harness: Harness) -> None:
    body = payload(harness.tenant_id, category="SUBSCRIPTION")
    due = harness.next_poll_at()
    assert harness.post(body, sign(body, KEY)).status_code == 200
    assert harness.inbox() == 1
    assert harness.heard(harness.tenant_id) == (True, 1)
    assert (harness.wakes, harness.next_poll_at()) == ([], due)


@pytest.mark.parametrize("services", ["postgresql"], indirect=True)  # only there does the inbox keep connections
def test_a_delivery_after_the_database_dropped_the_inbox_connection_is_still_stored(harness: Harness) -> None:
    first = payload(harness.tenant_id)
    assert harness.post(first, sign(first, KEY)).status_code == 200
    kept = harness.receiver.inbox._idle.get_nowait()  # the connection the next delivery will use
    backend = kept.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    harness.receiver.inbox._idle.put(kept)
    with harness.services.ledger.transaction() as session:  # as a failover or a restart would
        session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
    second = payload(harness.tenant_id)
    assert harness.post(second, sign(second, KEY)).status_code == 200, "not a 503 for Xero to retry"
    assert harness.inbox() == 2


def _schema_errors(schema: str, body: dict[str, Any]) -> list[str]:
    """Against Xero's webhooks spec (OpenAPI 3.1, so JSON Schema 2020-12; Xero's own eventDateUtc carries
    no zone, so formats are not checked)."""
    spec = yaml.safe_load((SPECS / "xero-webhooks.yaml").read_text(encoding="utf-8"))
    root = {"$ref": f"#/components/schemas/{schema}", "components": spec["components"]}
    return [f"{list(e.absolute_path)}: {e.message}" for e in Draft202012Validator(root).iter_errors(body)]


def test_credit_note_events_carry_what_xero_sends_and_wake_the_tenant_as_invoice_events_do(harness: Harness) -> None:
    """Xero's CREDITNOTE events (CreditNoteWebhookEvent): CREATE for a new credit note and UPDATE for a
    changed one (an allocation), each with its resourceUrl, resourceId, eventDateUtc, tenantId, tenantType
    ORGANISATION and `data` {Type, Status}; the bill an allocation moved gets an INVOICE UPDATE. A payload
    of credit-note events alone wakes the tenant's poll as an invoice event does, once per window."""
    sandbox = harness.sandbox
    sandbox.webhooks.configure(harness.url, KEY)
    tenant = sandbox.dataset.tenant(harness.tenant_id)
    bill = next(b for b in tenant.bills if b.status == "AUTHORISED" and b.amount_paid == 0 and not b.credits)
    due = harness.next_poll_at()
    made = sandbox.add_credit_note(harness.tenant_id, bill.invoice_id, fraction="0.1", allocate=False)
    assert sandbox.webhooks.flush()
    body = json.loads(sandbox.webhooks.deliveries[-1].body)
    [created] = body["events"]
    assert created == {
        "resourceUrl": f"https://api.xero.com/api.xro/2.0/CreditNotes/{made['CreditNoteID']}",
        "resourceId": made["CreditNoteID"], "eventDateUtc": created["eventDateUtc"], "eventType": "CREATE",
        "eventCategory": "CREDITNOTE", "tenantId": harness.tenant_id, "tenantType": "ORGANISATION",
        "data": {"Type": "ACCPAYCREDIT", "Status": "AUTHORISED"}}
    assert _schema_errors("CreditNoteWebhookEvent", body) == []
    assert [tenant for tenant, _ in harness.wakes] == [harness.tenant_id]
    woken = harness.next_poll_at()
    assert isinstance(woken, datetime)
    assert isinstance(due, datetime)
    assert woken < due

    sandbox.allocate_credit_note(harness.tenant_id, made["CreditNoteID"], bill.invoice_id)
    assert sandbox.webhooks.flush()
    body = json.loads(sandbox.webhooks.deliveries[-1].body)
    assert {(e["eventCategory"], e["eventType"], e["resourceId"]) for e in body["events"]} == {
        ("CREDITNOTE", "UPDATE", made["CreditNoteID"]), ("INVOICE", "UPDATE", bill.invoice_id)}
    credit = next(e for e in body["events"] if e["eventCategory"] == "CREDITNOTE")
    assert credit["data"] == {"Type": "ACCPAYCREDIT", "Status": "PAID"}  # applied in full
    assert all("data" not in e for e in body["events"] if e["eventCategory"] == "INVOICE")
    assert _schema_errors("WebhookEvent", body) == []
    assert len(harness.wakes) == 1, "inside the window the wake already planned covers it"


def test_a_sales_credit_note_event_wakes_the_poll_but_asks_for_no_credit_note_read(harness: Harness) -> None:
    """Sales credit notes (data.Type ACCRECCREDIT) are never read: their event wakes the poll as any data
    event does, and only a supplier one makes that poll read the credit notes."""
    def asked_at() -> object:
        with harness.services.ledger.transaction() as session:
            return session.scalar(select(Tenant.credit_notes_asked_at).where(Tenant.id == harness.tenant_id))

    def credit_note_event(kind: str) -> bytes:
        event = json.loads(payload(harness.tenant_id, category="CREDITNOTE"))
        event["events"][0]["data"] = {"Type": kind, "Status": "AUTHORISED"}
        return json.dumps(event).encode()

    sales = credit_note_event("ACCRECCREDIT")
    assert harness.post(sales, sign(sales, KEY)).status_code == 200
    assert [tenant for tenant, _ in harness.wakes] == [harness.tenant_id]
    assert asked_at() is None
    supplier = credit_note_event("ACCPAYCREDIT")
    assert harness.post(supplier, sign(supplier, KEY)).status_code == 200
    assert asked_at() is not None
