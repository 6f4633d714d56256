"""Accounting endpoints behave as Xero's do: paging and its caps, line items only when paged, filters,
IDs limits, order, If-Modified-Since to the second, and the envelope.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest

from sandbox.xero import XeroSandbox, msdate
from tests.sandbox.conftest import Client

pytestmark = pytest.mark.sandbox


def test_envelope_has_xero_fields(shared_client: Client) -> None:
    body = shared_client.json("Invoices", page=1)
    assert list(body)[:5] == ["Id", "Status", "ProviderName", "DateTimeUTC", "pagination"]
    uuid.UUID(body["Id"])
    assert body["Status"] == "OK"
    assert re.fullmatch(r"/Date\(\d{13}\)/", body["DateTimeUTC"])


def test_paging_defaults_to_100_and_reports_pagination(shared_client: Client) -> None:
    total = len(shared_client.sandbox.dataset.tenants[0].invoices)
    body = shared_client.json("Invoices", page=2)
    assert body["pagination"] == {"page": 2, "pageSize": 100, "pageCount": -(-total // 100), "itemCount": total}
    assert len(body["Invoices"]) == 100
    past = shared_client.json("Invoices", page=99)
    assert past["Invoices"] == []
    assert past["pagination"]["itemCount"] == total


def test_page_size_above_1000_is_clamped(shared_client: Client) -> None:
    body = shared_client.json("Invoices", page=1, pageSize=5000)
    assert body["pagination"]["pageSize"] == 1000
    assert len(body["Invoices"]) == body["pagination"]["itemCount"]  # all fit on one 1,000 page here
    assert shared_client.sandbox.stats()["largest_page_size_asked"] >= 5000


def test_line_items_only_on_paged_or_single_reads(shared_client: Client) -> None:
    unpaged = shared_client.json("Invoices")
    assert "pagination" not in unpaged
    assert len(unpaged["Invoices"]) == len(shared_client.sandbox.dataset.tenants[0].invoices)
    assert all(i["LineItems"] == [] for i in unpaged["Invoices"])
    assert set(unpaged["Invoices"][0]["Contact"]) == {"ContactID", "Name", "HasValidationErrors"}
    paged = shared_client.json("Invoices", page=1)
    assert all(i["LineItems"] for i in paged["Invoices"])
    single = shared_client.json(f"Invoices/{unpaged['Invoices'][0]['InvoiceID']}")
    assert single["Invoices"][0]["LineItems"]
    assert "pagination" not in single
    summary = shared_client.json("Invoices", page=1, summaryOnly="true")
    assert all(i["LineItems"] == [] for i in summary["Invoices"])


def test_invoice_by_number_returns_every_match(shared_client: Client) -> None:
    body = shared_client.json("Invoices/po 0002")
    assert [i["InvoiceNumber"] for i in body["Invoices"]] == ["po 0002"]
    assert body["Invoices"][0]["LineItems"]
    assert shared_client.get(f"Invoices/{uuid.uuid4()}").status_code == 404


def test_dates_and_helpers(shared_client: Client) -> None:
    bill = shared_client.json("Invoices", page=1)["Invoices"][0]
    assert re.fullmatch(r"/Date\(\d+\+0000\)/", bill["Date"])
    assert bill["DateString"] == msdate.parse(bill["Date"]).strftime("%Y-%m-%dT00:00:00")
    assert bill["DueDateString"] == msdate.parse(bill["DueDate"]).strftime("%Y-%m-%dT00:00:00")
    assert msdate.parse(bill["Date"]).time().isoformat() == "00:00:00"
    updated = msdate.parse(bill["UpdatedDateUTC"])
    assert bill["UpdatedDateUTCString"] == updated.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert updated.microsecond % 1000 == 0


def test_where_type_and_status(shared_client: Client) -> None:
    tenant = shared_client.sandbox.dataset.tenants[0]
    body = shared_client.json("Invoices", where='Type=="ACCPAY" AND (Status=="AUTHORISED" OR Status=="PAID")')
    expected = [b.invoice_id for b in tenant.bills if b.status in ("AUTHORISED", "PAID")]
    assert [i["InvoiceID"] for i in body["Invoices"]] == expected
    sales = shared_client.json("Invoices", where='Type=="ACCREC"')["Invoices"]
    assert sales
    assert {i["Type"] for i in sales} == {"ACCREC"}


def test_where_guid_and_datetime(shared_client: Client) -> None:
    tenant = shared_client.sandbox.dataset.tenants[0]
    contact = tenant.bills[0].contact_id
    body = shared_client.json("Invoices", where=f'Contact.ContactID==Guid("{contact}")')
    assert {i["Contact"]["ContactID"] for i in body["Invoices"]} == {contact}
    cut = tenant.bills[0].day
    since = shared_client.json("Invoices", where=f"Date >= DateTime({cut.year}, {cut.month}, {cut.day})")
    assert all(msdate.parse(i["Date"]).date() >= cut for i in since["Invoices"])
    assert len(since["Invoices"]) == sum(1 for i in tenant.invoices if i.day >= cut)


@pytest.mark.parametrize("where", [
    'Type=="ACCPAY" AND', "Type==", '(Type=="ACCPAY"', "()", 'Nope=="x"', 'Contact.ContactID=="abc"',
    'Type=="ACCPAY" Status=="PAID"', "Total", 'Guid("not-a-guid")==InvoiceID', "DateTime(2024, 13, 1) == Date",
])
def test_bad_where_is_a_query_parse_exception(shared_client: Client, where: str) -> None:
    answer = shared_client.get("Invoices", where=where)
    assert answer.status_code == 400
    body = answer.json()
    assert (body["ErrorNumber"], body["Type"]) == (16, "QueryParseException")
    assert body["Message"]


def test_statuses_and_order(shared_client: Client) -> None:
    body = shared_client.json("Invoices", Statuses="DRAFT,VOIDED", order="UpdatedDateUTC DESC")
    assert {i["Status"] for i in body["Invoices"]} == {"DRAFT", "VOIDED"}
    stamps = [msdate.parse(i["UpdatedDateUTC"]) for i in body["Invoices"]]
    assert stamps == sorted(stamps, reverse=True)
    assert shared_client.get("Invoices", order="Bogus ASC").status_code == 400


def test_ids_filter_and_the_53_guid_limit(shared_client: Client) -> None:
    tenant = shared_client.sandbox.dataset.tenants[0]
    ids = [b.invoice_id for b in tenant.bills[:52]]
    body = shared_client.json("Invoices", IDs=",".join(ids))
    assert sorted(i["InvoiceID"] for i in body["Invoices"]) == sorted(ids)
    too_many = shared_client.get("Invoices", IDs=",".join([*ids, str(uuid.uuid4())]))
    assert too_many.status_code == 404
    assert too_many.headers["Content-Type"].startswith("text/plain")
    assert too_many.text == "The resource you're looking for cannot be found"


def test_contacts_ids_include_archived_and_paged_fields(shared_client: Client) -> None:
    tenant = shared_client.sandbox.dataset.tenants[0]
    merged = next(c for c in tenant.contacts if c.merged_to)
    active = next(c for c in tenant.contacts if c.status == "ACTIVE")
    ids = f"{merged.contact_id},{active.contact_id}"
    assert [c["ContactID"] for c in shared_client.json("Contacts", IDs=ids)["Contacts"]] == [active.contact_id]
    both = shared_client.json("Contacts", IDs=ids, includeArchived="true", page=1)["Contacts"]
    assert {c["ContactID"] for c in both} == {merged.contact_id, active.contact_id}
    assert next(c for c in both if c["ContactID"] == merged.contact_id)["MergedToContactID"] == merged.merged_to
    unpaged = shared_client.json("Contacts", IDs=ids, includeArchived="true")["Contacts"]
    assert all("MergedToContactID" not in c and "PaymentTerms" not in c for c in unpaged)
    everyone = shared_client.json("Contacts", includeArchived="true")["Contacts"]
    assert len(everyone) == len(tenant.contacts)


def test_purchase_orders_are_paged_by_default(shared_client: Client) -> None:
    tenant = shared_client.sandbox.dataset.tenants[0]
    body = shared_client.json("PurchaseOrders")
    assert body["pagination"]["itemCount"] == len(tenant.purchase_orders)
    assert len(body["PurchaseOrders"]) == 100
    assert all(p["LineItems"] for p in body["PurchaseOrders"])
    draft = shared_client.json("PurchaseOrders", Status="DRAFT")["PurchaseOrders"]
    assert draft
    assert {p["Status"] for p in draft} == {"DRAFT"}
    by_number = shared_client.json("PurchaseOrders/PO-0009")["PurchaseOrders"][0]
    assert by_number["CurrencyCode"] != tenant.organisation.base_currency


def test_accounts_and_tracking_with_archived(shared_client: Client) -> None:
    accounts = shared_client.json("Accounts")["Accounts"]
    assert {"200", "SW-SAAS", "477"} <= {a["Code"] for a in accounts}
    archived = shared_client.json("Accounts", where='Status=="ARCHIVED"')["Accounts"]
    assert [a["Code"] for a in archived] == ["477"]
    active_only = shared_client.json("TrackingCategories")["TrackingCategories"]
    assert all(o["Status"] == "ACTIVE" for c in active_only for o in c["Options"])
    everything = shared_client.json("TrackingCategories", includeArchived="true")["TrackingCategories"]
    assert sum(o["Status"] == "ARCHIVED" for c in everything for o in c["Options"]) == 2


def test_paths_and_parameters_are_case_insensitive(shared_client: Client) -> None:
    assert shared_client.get("invoices", PAGE=1, pagesize=5).json()["pagination"]["pageSize"] == 5
    assert shared_client.get("TRACKINGCATEGORIES").status_code == 200
    assert shared_client.get("Payments").status_code == 404


def test_if_modified_since_is_inclusive_to_the_second_after_an_update(client: Client) -> None:
    sandbox = client.sandbox
    sandbox.set_time_scale(0)  # freeze, so "now" is one known instant
    before = sandbox.now()
    result = sandbox.update(modify=3, add=2)
    changed = {m["InvoiceID"] for m in result["modified"]} | set(result["added"])
    stamp = msdate.parse(result["UpdatedDateUTC"])
    assert stamp == msdate.parse(msdate.timestamp_field(before))

    def ids_since(header: str) -> set[str]:
        body = client.json("Invoices", headers={"If-Modified-Since": header})
        return {i["InvoiceID"] for i in body["Invoices"]}

    same_second = stamp.replace(microsecond=999_000)
    assert ids_since(same_second.strftime("%Y-%m-%dT%H:%M:%S")) == changed
    assert ids_since(same_second.isoformat()) == changed  # sub-second digits are ignored
    assert ids_since((stamp + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S")) == set()
    assert ids_since(stamp.strftime("%a, %d %b %Y %H:%M:%S GMT")) == changed
    assert changed <= ids_since((stamp - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S"))
    assert client.get("Invoices", headers={"If-Modified-Since": "yesterday"}).status_code == 400


def test_same_second_bills_are_all_returned(shared_client: Client) -> None:
    tenant = shared_client.sandbox.dataset.tenants[0]
    first = tenant.bills[0].updated
    group = [b.invoice_id for b in tenant.bills if b.updated.replace(microsecond=0) == first.replace(microsecond=0)]
    assert len(group) >= 4
    end = first.replace(microsecond=0) + timedelta(seconds=1)
    body = shared_client.json("Invoices", headers={"If-Modified-Since": first.strftime("%Y-%m-%dT%H:%M:%S")},
                              where=f"UpdatedDateUTC < DateTime({end:%Y, %m, %d, %H, %M, %S})")
    assert {i["InvoiceID"] for i in body["Invoices"]} == set(group)


def test_a_page_never_holds_more_than_1000() -> None:
    with XeroSandbox(seed=3, tenants=1, bills=1050) as sandbox:
        client = Client(sandbox, sandbox.consent())
        try:
            body = client.json("Invoices", page=1, pageSize=5000)
            total = len(sandbox.dataset.tenants[0].invoices)
            assert total > 1000
            assert len(body["Invoices"]) == 1000
            assert body["pagination"] == {"page": 1, "pageSize": 1000, "pageCount": 2, "itemCount": total}
            assert len(client.json("Invoices", page=2, pageSize=5000)["Invoices"]) == total - 1000
        finally:
            client.close()
