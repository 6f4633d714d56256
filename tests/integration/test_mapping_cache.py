"""A worker keeps the vendors and accounts it mapped with, and still sees every change at once: a contact or
account written by a poll (in bulk) or by the intake check (row by row) is seen by the very next bill."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, select

from connector.domain.intake import RecordKind, check_record
from connector.domain.states import BillState
from connector.services import map as mapping
from connector.services import poll
from connector.services.context import Services
from connector.services.messages import MapInvoice, Message
from connector.store.intake import column_lengths, mark_unusable_contacts
from connector.store.models import Bill, ContactRow
from connector.store.reference import Contact
from connector.store.xero_records import upsert_contacts
from sandbox.xero import XeroSandbox
from tests.support.pipeline import onboard
from tests.support.sftp_fixtures import BundledSftp


@pytest.fixture
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=42, tenants=1, bills=200) as running:
        yield running


def polled(services: Services, tenant_id: str) -> dict[str, list[MapInvoice]]:
    """Poll without mapping; the map messages of AUTHORISED bills (mapped, not excluded) by their ContactID."""
    sent: list[Message] = []
    poll.poll_tenant(services, tenant_id, emit=sent.append)
    with services.ledger.transaction() as session:
        contact_of = {b.invoice_id: str((b.payload.get("Contact") or {}).get("ContactID"))
                      for b in session.scalars(select(Bill).where(Bill.xero_status == "AUTHORISED"))}
    by_contact: dict[str, list[MapInvoice]] = {}
    for message in sent:
        if isinstance(message, MapInvoice) and message.invoice_id in contact_of:
            by_contact.setdefault(contact_of[message.invoice_id], []).append(message)
    return by_contact


def mapped(services: Services, message: MapInvoice) -> Bill:
    mapping.map_invoice(services, message.tenant_id, message.invoice_id, message.version)
    with services.ledger.transaction() as session:
        return session.scalars(select(Bill).where(Bill.invoice_id == message.invoice_id)).one()


def codes(bill: Bill) -> set[str]:
    return {r["code"] for r in bill.reasons}


def busiest(by_contact: dict[str, list[MapInvoice]], services: Services) -> tuple[ContactRow, list[MapInvoice]]:
    contact_id, messages = max(by_contact.items(), key=lambda item: len(item[1]))
    with services.ledger.transaction() as session:
        row = session.get(ContactRow, (messages[0].tenant_id, contact_id))
    assert row is not None
    assert len(messages) >= 3
    return row, messages


class Statements:
    def __init__(self, services: Services) -> None:
        self.texts: list[str] = []
        self._engine = services.ledger.engine
        event.listen(self._engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        self.texts.append(statement)

    def close(self) -> None:
        event.remove(self._engine, "before_cursor_execute", self._seen)


def test_a_vendor_archived_by_a_poll_is_seen_by_the_next_bill_of_the_same_worker(
    sandbox: XeroSandbox, services: Services, bundled_sftp: BundledSftp,
) -> None:
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    row, messages = busiest(polled(services, tenant_id), services)
    first, second, third = messages[:3]
    assert "vendor_archived" not in codes(mapped(services, first))
    counted = Statements(services)
    assert "vendor_archived" not in codes(mapped(services, second))
    counted.close()
    assert not any("FROM contacts" in text for text in counted.texts), "the second bill reads the kept vendor"
    with services.ledger.transaction() as session:
        upsert_contacts(session, tenant_id, [Contact(row.contact_id, row.name, "ARCHIVED", True, None,
                                                     row.version + 1, {**row.payload, "ContactStatus": "ARCHIVED"})],
                        read_at=services.clock())
    assert "vendor_archived" in codes(mapped(services, third))


def test_a_vendor_the_intake_check_refused_is_unknown_to_the_next_bill_of_the_same_worker(
    sandbox: XeroSandbox, services: Services, bundled_sftp: BundledSftp,
) -> None:
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    row, messages = busiest(polled(services, tenant_id), services)
    assert "vendor_unknown" not in codes(mapped(services, messages[0]))
    refused = check_record(RecordKind.CONTACT, {**row.payload, "Name": ["not", "text"]}, 1, column_lengths())
    assert not refused.ok
    with services.ledger.transaction() as session:
        mark_unusable_contacts(session, tenant_id, [refused], read_at=services.clock())
    later = mapped(services, messages[1])
    assert later.state == BillState.HELD
    assert "vendor_unknown" in codes(later)
