"""Hostile and malformed Xero data: one bad record never stops a tenant, and is always explained.

Records are served inside the sandbox's real answers (tests.support.hostile) and travel the real client,
poll and mapping, on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from connector.domain.intake import RecordKind, check_record
from connector.domain.states import BillState
from connector.secret import Secret
from connector.services import map as mapping
from connector.services import poll
from connector.services.context import Services
from connector.services.messages import MapInvoice, Message
from connector.sftp import SftpTarget
from connector.store.intake import column_lengths
from connector.store.models import Bill, ContactRow, OperationalEvent, PurchaseOrderRow, Tenant, Watermark
from connector.xero.budget import Limits, LocalLeases, RateBudget
from connector.xero.client import XeroApi
from connector.xero.dates import ms_to_datetime
from sandbox.xero import XeroSandbox
from tests.support.hostile import Hostile, HostileXero, bill_pages, contact_records
from tests.support.pipeline import onboard

NO_SFTP = SftpTarget(host="127.0.0.1", port=22, username="x", import_dir="/x", host_key="", password=Secret("p"))
#: Pages per database: a few dozen here (fresh random ones every run), hundreds with `make fuzz`.
FUZZ_EXAMPLES = int(os.environ.get("CONNECTOR_FUZZ_EXAMPLES", "40"))


@pytest.fixture(scope="module")
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=61, tenants=1, bills=8) as running:
        running.set_limits(minute=10_000_000, day=100_000_000, app_minute=100_000_000)  # not what is tested here
        yield running


@pytest.fixture
def xero(services_on_both_databases: Services) -> HostileXero:
    services = services_on_both_databases
    roomy = RateBudget("memory://", LocalLeases(), Limits(per_minute=10_000_000, per_day=100_000_000,
                                                          app_per_minute=100_000_000))
    real = XeroApi(requests.Session(), services.settings.xero.api, services.settings.xero_timeout_seconds, roomy)
    hostile = HostileXero(real)
    services_on_both_databases.xero = hostile  # type: ignore[assignment]
    return hostile


def run_poll(services: Services) -> list[Message]:
    """One poll of the tenant, then every map message it sent mapped: what a worker pair would do."""
    tenant_id = tenant_of(services)
    sent: list[Message] = []
    poll.poll_tenant(services, tenant_id, emit=sent.append)
    for message in sent:
        if isinstance(message, MapInvoice):
            mapping.map_invoice(services, message.tenant_id, message.invoice_id, message.version)
    return sent


def tenant_of(services: Services) -> str:
    with services.ledger.transaction() as session:
        return str(session.scalars(select(Tenant.id)).one())


def bill_row(services: Services, invoice_id: str) -> Bill:
    with services.ledger.transaction() as session:
        found = session.scalars(select(Bill).where(Bill.invoice_id == invoice_id)).one()
        session.expunge(found)
        return found


def good_bill(sandbox: XeroSandbox, number: int, stamp_ms: int, **changes: Any) -> dict[str, Any]:
    """A plain, well-formed bill of a supplier the sandbox knows."""
    tenant = sandbox.dataset.tenants[0]
    supplier = next(c for c in tenant.contacts if c.is_supplier)
    record = {"InvoiceID": f"5e1f0000-0000-4000-8000-{number:012d}", "Type": "ACCPAY", "Status": "AUTHORISED",
              "InvoiceNumber": f"Hostile {number}", "Contact": {"ContactID": supplier.contact_id},
              "Date": "/Date(1700000000000+0000)/", "LineAmountTypes": "NoTax", "SubTotal": 10.0, "TotalTax": 0.0,
              "Total": 10.0, "CurrencyCode": "NZD", "UpdatedDateUTC": f"/Date({stamp_ms}+0000)/",
              "LineItems": [{"Description": "Widget", "Quantity": 1.0, "UnitAmount": 10.0, "LineAmount": 10.0,
                             "TaxAmount": 0.0, "AccountCode": "473", "Tracking": []}]}
    record.update(changes)
    return record


def now_ms(sandbox: XeroSandbox) -> int:
    return int(sandbox.now().timestamp() * 1000) - 60_000


def onboarded(services: Services, sandbox: XeroSandbox) -> str:
    tenant_id = onboard(services, sandbox, NO_SFTP)
    run_poll(services)
    return tenant_id


def assert_held_naming(services: Services, invoice_id: str, field: str) -> None:
    held = bill_row(services, invoice_id)
    assert held.state == BillState.HELD, (invoice_id, held.state, held.reasons)
    assert held.reasons[0]["code"] == "bad_record"
    assert f"'{field}'" in held.reasons[0]["problem"], held.reasons


# --- the regressions of the issue, each on SQLite and PostgreSQL ------------------------------------------

def test_a_bill_stamped_past_year_9999_is_held_and_the_page_and_the_watermark_go_on(
    sandbox: XeroSandbox, services_on_both_databases: Services, xero: HostileXero,
) -> None:
    services = services_on_both_databases
    onboarded(services, sandbox)
    stamp = now_ms(sandbox)
    xero.serve("Invoices", [good_bill(sandbox, 1, stamp),
                            good_bill(sandbox, 2, stamp, UpdatedDateUTC="/Date(253402300800000)/")])
    run_poll(services)
    assert_held_naming(services, good_bill(sandbox, 2, 0)["InvoiceID"], "UpdatedDateUTC")
    assert bill_row(services, good_bill(sandbox, 1, 0)["InvoiceID"]).state != BillState.DISCOVERED
    with services.ledger.transaction() as session:
        mark = session.get(Watermark, (tenant_of(services), "Invoices"))
        assert mark is not None
        assert mark.value >= ms_to_datetime(stamp).replace(microsecond=0)
    run_poll(services)  # and the next poll of the tenant works too


@pytest.mark.parametrize(("contact_id", "refused"), [("not-a-guid", False),
                                                    ("00000000-0000-4000-8000-00000000dead", False),
                                                    ("00000000-0000-4000-8000-0000000bad00", True)])
def test_a_bill_naming_a_contact_xero_cannot_find_holds_that_bill_and_the_poll_goes_on(
    sandbox: XeroSandbox, services_on_both_databases: Services, xero: HostileXero, contact_id: str, refused: bool,
) -> None:
    services = services_on_both_databases
    onboarded(services, sandbox)
    if refused:
        xero.refuse(contact_id)  # Xero answers 400 to the whole IDs= call that names it
    stamp = now_ms(sandbox)
    odd_contact = {"ContactID": contact_id}
    xero.serve("Invoices", [good_bill(sandbox, 3, stamp), good_bill(sandbox, 4, stamp, Contact=odd_contact)])
    run_poll(services)
    odd = bill_row(services, good_bill(sandbox, 4, 0)["InvoiceID"])
    assert odd.state == BillState.HELD
    assert odd.reasons[0]["code"] in ("vendor_unknown", "bad_record"), odd.reasons
    assert bill_row(services, good_bill(sandbox, 3, 0)["InvoiceID"]).state != BillState.DISCOVERED
    run_poll(services)  # and the next poll of the tenant works too


@pytest.mark.parametrize(("changes", "field"), [
    ({"Status": "AUTHORISED" * 4}, "Status"),
    ({"InvoiceID": "x" * 65}, "InvoiceID"),
    ({"InvoiceNumber": "PO-" + "9" * 300}, "InvoiceNumber"),
])
def test_text_longer_than_its_column_holds_the_bill_instead_of_failing_every_poll(
    sandbox: XeroSandbox, services_on_both_databases: Services, xero: HostileXero, changes: dict[str, Any],
    field: str,
) -> None:
    services = services_on_both_databases
    onboarded(services, sandbox)
    bad = good_bill(sandbox, 3, now_ms(sandbox), **changes)
    xero.serve("Invoices", [good_bill(sandbox, 4, now_ms(sandbox)), bad])
    run_poll(services)
    stored_as = check_record(RecordKind.BILL, bad, 1, column_lengths()).storage_id()
    assert_held_naming(services, stored_as, field)
    assert bill_row(services, good_bill(sandbox, 4, 0)["InvoiceID"]).state != BillState.DISCOVERED
    run_poll(services)


def test_a_purchase_order_number_longer_than_its_column_marks_the_po_unusable(
    sandbox: XeroSandbox, services_on_both_databases: Services, xero: HostileXero,
) -> None:
    services = services_on_both_databases
    onboarded(services, sandbox)
    xero.serve("PurchaseOrders", [{"PurchaseOrderID": "7a000000-0000-4000-8000-000000000001",
                                   "PurchaseOrderNumber": "PO-" + "1" * 300, "Status": "AUTHORISED",
                                   "UpdatedDateUTC": f"/Date({now_ms(sandbox)}+0000)/"}])
    run_poll(services)
    with services.ledger.transaction() as session:
        row = session.get(PurchaseOrderRow, (tenant_of(services), "7a000000-0000-4000-8000-000000000001"))
        assert row is not None
        assert row.key is None
        assert "'PurchaseOrderNumber'" in (row.unusable_reason or "")


def test_a_contact_status_longer_than_its_column_marks_the_vendor_unusable(
    sandbox: XeroSandbox, services_on_both_databases: Services, xero: HostileXero,
) -> None:
    services = services_on_both_databases
    onboard(services, sandbox, NO_SFTP)
    xero.serve("Contacts", [{"ContactID": "c0000000-0000-4000-8000-000000000001", "Name": "Too long a status",
                             "ContactStatus": "ACTIVE" * 10, "IsSupplier": True}])
    run_poll(services)
    with services.ledger.transaction() as session:
        row = session.get(ContactRow, (tenant_of(services), "c0000000-0000-4000-8000-000000000001"))
        assert row is not None
        assert "'ContactStatus'" in (row.unusable_reason or "")
        assert session.scalars(select(OperationalEvent).where(OperationalEvent.kind == "unusable_xero_record")).all()


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(("changes", "field"), [
    ({"LineItems": [None]}, "LineItems[1]"),
    ({"LineItems": "Widget"}, "LineItems"),
    ({"LineItems": {"Description": "Widget"}}, "LineItems"),
    ({"LineItems": [{"LineAmount": 10.0, "Tracking": [None]}]}, "LineItems[1].Tracking[1]"),
    ({"Total": NAN}, "Total"),
    ({"Total": INF}, "Total"),
    ({"Total": "1E+999999"}, "Total"),
])
def test_a_bill_that_crashed_mapping_is_held_naming_its_field_and_the_batch_is_asked_for(
    sandbox: XeroSandbox, services_on_both_databases: Services, xero: HostileXero, changes: dict[str, Any],
    field: str,
) -> None:
    services = services_on_both_databases
    onboarded(services, sandbox)
    bad = good_bill(sandbox, 5, now_ms(sandbox), **changes)
    xero.serve("Invoices", [bad, good_bill(sandbox, 6, now_ms(sandbox))])
    sent = run_poll(services)
    assert_held_naming(services, bad["InvoiceID"], field)
    assert bill_row(services, good_bill(sandbox, 6, 0)["InvoiceID"]).state != BillState.DISCOVERED
    assert sent  # the good bill's map message went; its mapping asked for the batch (no bill left DISCOVERED)
    with services.ledger.transaction() as session:
        assert not session.scalars(select(Bill).where(Bill.state == BillState.DISCOVERED)).all()


@pytest.mark.parametrize("payload_change", [{"LineItems": [None]}, {"LineItems": "Widget"},
                                            {"LineItems": [{"LineAmount": 1, "Tracking": [None]}]}])
def test_a_bill_stored_before_these_checks_is_held_by_mapping_with_an_operational_event(
    sandbox: XeroSandbox, services_on_both_databases: Services, payload_change: dict[str, Any],
) -> None:
    services = services_on_both_databases
    tenant_id = onboarded(services, sandbox)
    with services.ledger.transaction() as session:
        bill = session.scalars(select(Bill).order_by(Bill.id).limit(1)).one()
        invoice_id, version = bill.invoice_id, bill.version
        session.execute(update(Bill).where(Bill.id == bill.id).values(
            state=BillState.DISCOVERED, payload={**bill.payload, **payload_change}))
    mapping.map_invoice(services, tenant_id, invoice_id, version)
    held = bill_row(services, invoice_id)
    assert held.state == BillState.HELD
    assert held.reasons[0]["code"] == "bad_record"
    with services.ledger.transaction() as session:
        events = session.scalars(select(OperationalEvent.message).where(
            OperationalEvent.kind == mapping.BILL_HELD_BAD_RECORD)).all()
    assert any(invoice_id in message for message in events)


def test_a_row_the_database_refuses_fails_alone_and_the_page_is_stored(
    sandbox: XeroSandbox, services_on_both_databases: Services, xero: HostileXero, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The last line: a value no check foresaw (here the checks are told a column is wider than it is)."""
    services = services_on_both_databases
    onboarded(services, sandbox)
    monkeypatch.setattr(poll, "column_lengths", lambda: {**column_lengths(), "bills.xero_status": 10_000})
    bad = good_bill(sandbox, 7, now_ms(sandbox), Status="AUTHORISED" * 4)
    xero.serve("Invoices", [good_bill(sandbox, 8, now_ms(sandbox)), bad, good_bill(sandbox, 9, now_ms(sandbox))])
    run_poll(services)
    for number in (8, 9):
        assert bill_row(services, good_bill(sandbox, number, 0)["InvoiceID"]).state != BillState.DISCOVERED
    stored = bill_row(services, bad["InvoiceID"])
    if services.ledger.engine.dialect.name == "postgresql":  # SQLite stores any length
        assert stored.state == BillState.HELD
        assert "the ledger refused it" in stored.reasons[0]["problem"]


def test_a_purchase_order_the_database_refuses_fails_alone_and_is_marked_unusable(
    sandbox: XeroSandbox, services_on_both_databases: Services, xero: HostileXero, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The last line for a page of purchase orders, which goes to PostgreSQL as one array per column: a
    value too long for its column is refused by the column, never cut short on the way."""
    services = services_on_both_databases
    onboarded(services, sandbox)
    monkeypatch.setattr(poll, "column_lengths", lambda: {**column_lengths(), "purchase_orders.number": 10_000})
    stamp = f"/Date({now_ms(sandbox)}+0000)/"
    xero.serve("PurchaseOrders", [
        {"PurchaseOrderID": "7a000000-0000-4000-8000-000000000001", "PurchaseOrderNumber": "PO-" + "1" * 300,
         "Status": "AUTHORISED", "UpdatedDateUTC": stamp},
        {"PurchaseOrderID": "7a000000-0000-4000-8000-000000000002", "PurchaseOrderNumber": "PO-2",
         "Status": "AUTHORISED", "UpdatedDateUTC": stamp}])
    run_poll(services)
    with services.ledger.transaction() as session:
        good = session.get(PurchaseOrderRow, (tenant_of(services), "7a000000-0000-4000-8000-000000000002"))
        bad = session.get(PurchaseOrderRow, (tenant_of(services), "7a000000-0000-4000-8000-000000000001"))
        assert good is not None
        assert good.key is not None
        assert bad is not None
        if services.ledger.engine.dialect.name == "postgresql":  # SQLite stores any length
            assert bad.key is None  # no bill matches it: not cut short and used
            assert "the ledger refused it" in (bad.unusable_reason or "")


@pytest.mark.parametrize("envelope", [HostileXero.MISSING, None, {"InvoiceID": "x"}, "Invoices"])
def test_an_answer_without_its_list_is_an_empty_page_not_a_crash(
    sandbox: XeroSandbox, services_on_both_databases: Services, xero: HostileXero, envelope: Any,
) -> None:
    services = services_on_both_databases
    onboarded(services, sandbox)
    xero.mangle("Invoices", envelope)
    run_poll(services)


# --- the property: generated from Xero's schemas, mutated, through the real poll and mapping -------------

def test_generated_and_mutated_pages_never_stop_the_tenant_and_every_bad_record_is_explained(
    sandbox: XeroSandbox, services_on_both_databases: Services, xero: HostileXero,
) -> None:
    services = services_on_both_databases
    tenant_id = onboarded(services, sandbox)
    tenant = sandbox.dataset.tenants[0]
    suppliers = [c.contact_id for c in tenant.contacts if c.is_supplier]
    tried = [0]

    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.function_scoped_fixture])
    @given(data=st.data())
    def case(data: st.DataObject) -> None:
        tried[0] += 1
        sandbox.advance(60)
        page = data.draw(bill_pages(suppliers, now_ms(sandbox) - 30_000), label="bills")
        contacts = data.draw(contact_records(), label="contacts") if data.draw(st.booleans()) else []
        xero.serve("Invoices", [h.data for h in page])
        if contacts:
            xero.serve("Contacts", [h.data for h in contacts])
            with services.ledger.transaction() as session:  # the reference read is due on this poll
                session.execute(update(Tenant).where(Tenant.id == tenant_id).values(reference_read_at=None))
        run_poll(services)  # no exception escapes
        check_outcome(services, tenant_id, page, contacts)

    case()
    print(f"\nhostile Xero pages tried on {services.ledger.engine.dialect.name}: {tried[0]}")


def check_outcome(services: Services, tenant_id: str, page: list[Hostile], contacts: list[Hostile]) -> None:
    lengths = column_lengths()
    newest = max((h.stamp_ms for h in page if h.field is None), default=0)
    with services.ledger.transaction() as session:
        for position, hostile in enumerate(page, start=1):
            if hostile.field == "superseded":
                continue
            stored_as = hostile.record_id or check_record(RecordKind.BILL, hostile.data, position,
                                                          lengths).storage_id()
            bill = session.scalars(select(Bill).where(Bill.tenant_id == tenant_id,
                                                      Bill.invoice_id == stored_as)).one_or_none()
            if hostile.record_id is None and bill is None:
                continue  # its place in the answer was after the sandbox's own records: found by the id test
            assert bill is not None, (hostile.field, stored_as)
            assert bill.state != BillState.DISCOVERED, (hostile.field, bill.reasons)
            codes = [r.get("code") for r in bill.reasons]
            if hostile.field is None:
                assert "bad_record" not in codes, bill.reasons
                assert bill.version == hostile.stamp_ms
            else:
                assert bill.state == BillState.HELD, (hostile.field, bill.reasons)
                assert codes == ["bad_record"], (hostile.field, bill.reasons)
                assert f"'{hostile.field}'" in bill.reasons[0]["problem"] or hostile.field == "InvoiceID", (
                    hostile.field, bill.reasons[0]["problem"][:300])
        for hostile in contacts:
            row = session.get(ContactRow, (tenant_id, hostile.record_id))
            assert row is not None
            if hostile.field is None:
                assert row.unusable_reason is None
            else:
                assert f"'{hostile.field}'" in (row.unusable_reason or ""), (hostile.field, row.unusable_reason)
        mark = session.get(Watermark, (tenant_id, "Invoices"))
        if newest:
            assert mark is not None
            assert mark.value >= ms_to_datetime(newest) - timedelta(seconds=1)
