"""A supplier credit applied in Xero to a bill Stampli already has is settlement, not a change to the bill:
Xero raises the bill's AmountCredited, lowers its AmountDue, lists the credit and stamps the bill anew, but
nothing Stampli was sent (number, supplier, dates, lines, total, status) moved, and the credit itself
reaches Stampli as its own credit note. The bill stays DELIVERED (a clerk is not asked to look at a bill
that did not change), in the poll and in a reconcile alike; a real change still marks it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from connector.domain.states import BatchState, BillState
from connector.errors import SftpRejected
from connector.services import deliver, reconcile
from connector.services.context import Services
from connector.services.replay import replay_invoice
from connector.sftp import upload as sftp_upload
from connector.store.models import Bill
from sandbox.xero import XeroSandbox
from tests.support.pipeline import onboard, run_cycle
from tests.support.sftp_fixtures import BundledSftp


@pytest.fixture(scope="module")
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=11, tenants=1, bills=40) as running:
        yield running


def state_of(services: Services, invoice_id: str) -> str:
    with services.ledger.transaction() as session:
        return str(session.scalar(select(Bill.state).where(Bill.invoice_id == invoice_id)))


def delivered_bills(services: Services) -> list[str]:
    with services.ledger.transaction() as session:
        return list(session.scalars(select(Bill.invoice_id).where(
            Bill.state == BillState.DELIVERED, Bill.document_type == "BILL").order_by(Bill.id)))


def test_a_credit_applied_to_a_delivered_bill_leaves_it_delivered_and_the_credit_note_follows(
    services_on_both_databases: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    services = services_on_both_databases
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    run_cycle(services, tenant_id)
    credited, *_ = delivered_bills(services)
    note = sandbox.add_credit_note(tenant_id, credited, fraction="0.25", allocate=True)
    sandbox.advance(1)

    run_cycle(services, tenant_id)

    assert state_of(services, credited) == BillState.DELIVERED
    assert state_of(services, str(note["CreditNoteID"])) == BillState.DELIVERED, "the credit reaches Stampli"
    with services.ledger.transaction() as session:
        bill = session.scalars(select(Bill).where(Bill.invoice_id == credited)).one()
        assert float(bill.payload["AmountCredited"]) > 0, "the ledger holds Xero's newest record of the bill"
    report = reconcile.reconcile(services, tenant_id, emit=lambda message: None)
    assert not [line for line in report.changed_after_delivery if line.startswith(credited)]
    assert state_of(services, credited) == BillState.DELIVERED


def test_a_bill_whose_total_changed_after_delivery_is_still_marked(
    services_on_both_databases: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    services = services_on_both_databases
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    run_cycle(services, tenant_id)
    before = set(delivered_bills(services))
    sandbox.update(tenant_id, modify=10)
    sandbox.advance(1)
    run_cycle(services, tenant_id)
    with services.ledger.transaction() as session:
        changed = set(session.scalars(select(Bill.invoice_id).where(
            Bill.state == BillState.CHANGED_AFTER_DELIVERY)))
    assert changed, "an edit to what Stampli was sent is a change"
    assert changed <= before


def test_a_credit_applied_to_a_bill_whose_file_failed_is_settlement_too_and_the_replayed_bill_is_delivered(
    services_on_both_databases: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A FAILED bill was put in a file too: the replay sends that file's bytes, so a credit applied meanwhile
    changes nothing Stampli is sent, and the bill is not marked changed once the replay delivers it."""
    services = services_on_both_databases
    tenant_id = onboard(services, sandbox, bundled_sftp.target())

    def refused(*_args: Any, **_kwargs: Any) -> Any:
        raise SftpRejected("uploading: permission denied (PermissionError)")

    monkeypatch.setattr(deliver, "upload", refused)
    run_cycle(services, tenant_id)
    monkeypatch.setattr(deliver, "upload", sftp_upload.deliver)  # the folder's permissions are fixed
    with services.ledger.transaction() as session:
        credited = str(session.scalars(select(Bill.invoice_id).where(
            Bill.state == BillState.FAILED, Bill.document_type == "BILL").order_by(Bill.id)).first())
    note = sandbox.add_credit_note(tenant_id, credited, fraction="0.25", allocate=True)
    sandbox.advance(1)
    run_cycle(services, tenant_id)
    assert state_of(services, credited) == BillState.FAILED

    assert replay_invoice(services, credited, actor="ap.ops").state == BatchState.DELIVERED

    assert state_of(services, credited) == BillState.DELIVERED, "not marked changed: it was sent as it is"
    assert state_of(services, str(note["CreditNoteID"])) == BillState.DISCOVERED, "the credit follows its bill"
