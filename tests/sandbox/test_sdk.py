"""Xero's official Python SDK, pointed at the sandbox, refreshes a token and parses every page of bills,
purchase orders and contacts; its typed values equal the raw JSON the sandbox sent.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
import requests
from xero_python.accounting import AccountingApi
from xero_python.api_client import ApiClient, Configuration
from xero_python.api_client.oauth2 import OAuth2Token, TokenApi
from xero_python.identity import IdentityApi

from sandbox.xero import XeroSandbox, msdate

pytestmark = pytest.mark.sandbox


@pytest.fixture
def sdk(shared: XeroSandbox, monkeypatch: pytest.MonkeyPatch) -> tuple[ApiClient, dict[str, Any]]:
    """An SDK client with a fresh consent; the SDK's token URL is a class attribute of TokenApi."""
    consent = shared.consent()
    monkeypatch.setattr(TokenApi, "refresh_token_url", consent["urls"]["token"])
    store: dict[str, Any] = {"token": {
        "access_token": "", "refresh_token": consent["refresh_token"], "scope": consent["scopes"].split(),
        "expires_in": 0, "expires_at": 0, "token_type": "Bearer",
    }}
    configuration = Configuration(oauth2_token=OAuth2Token(client_id=consent["client_id"],
                                                           client_secret=consent["client_secret"]))
    client = ApiClient(configuration, pool_threads=1, oauth2_token_getter=lambda: store["token"],
                       oauth2_token_saver=lambda token: store.update(token=token))
    return client, consent


def _raw(consent: dict[str, Any], token: str, endpoint: str, **params: Any) -> dict[str, Any]:
    answer = requests.get(f"{consent['urls']['api']}/{endpoint}", params=params, timeout=10, headers={
        "Authorization": f"Bearer {token}", "xero-tenant-id": consent["tenant_ids"][0]})
    answer.raise_for_status()
    body: dict[str, Any] = json.loads(answer.text, parse_float=Decimal)
    return body


def _day(value: str) -> date:
    return msdate.parse(value).date()


def _instant(value: str) -> datetime:
    return msdate.parse(value)


def _pages(fetch: Any, collection: str) -> list[Any]:
    records: list[Any] = []
    page = 1
    while True:
        got = getattr(fetch(page), collection)
        records.extend(got)
        if len(got) < 100:
            return records
        page += 1


def test_sdk_refreshes_and_reads_connections(sdk: tuple[ApiClient, dict[str, Any]]) -> None:
    client, consent = sdk
    token = client.refresh_oauth2_token()
    assert token["refresh_token"] != consent["refresh_token"]
    assert token["expires_in"] == 1800
    connections = IdentityApi(client, base_url=consent["urls"]["api"].rsplit("/api.xro", 1)[0]).get_connections()
    assert [c.tenant_id for c in connections] == consent["tenant_ids"]
    assert connections[0].tenant_type == "ORGANISATION"


def test_sdk_parses_every_page_of_bills(sdk: tuple[ApiClient, dict[str, Any]], shared: XeroSandbox) -> None:
    client, consent = sdk
    token = client.refresh_oauth2_token()
    api = AccountingApi(client, base_url=consent["urls"]["api"])
    tenant_id = consent["tenant_ids"][0]
    bills = _pages(lambda p: api.get_invoices(tenant_id, where='Type=="ACCPAY"', page=p, page_size=100), "invoices")
    assert len(bills) == len(shared.dataset.tenants[0].bills)

    raw = {r["InvoiceID"]: r for p in (1, 2, 3) for r in _raw(consent, token["access_token"], "Invoices",
                                                              where='Type=="ACCPAY"', page=p)["Invoices"]}
    assert set(raw) == {b.invoice_id for b in bills}
    for bill in bills[:40] + bills[-20:]:
        r = raw[bill.invoice_id]
        assert bill.invoice_number == r["InvoiceNumber"]
        assert bill.type == r["Type"] == "ACCPAY"
        assert bill.status == r["Status"]
        assert bill.line_amount_types.value == r["LineAmountTypes"]
        assert bill.currency_code.value == r["CurrencyCode"]
        assert bill.currency_rate == r["CurrencyRate"]
        assert (bill.sub_total, bill.total_tax, bill.total) == (r["SubTotal"], r["TotalTax"], r["Total"])
        assert (bill.amount_due, bill.amount_paid) == (r["AmountDue"], r["AmountPaid"])
        assert bill.date == _day(r["Date"])
        assert bill.due_date == _day(r["DueDate"])
        assert bill.updated_date_utc == _instant(r["UpdatedDateUTC"])
        assert bill.updated_date_utc.tzinfo is not None
        assert bill.contact.contact_id == r["Contact"]["ContactID"]
        assert bill.contact.name == r["Contact"]["Name"]
        assert len(bill.line_items) == len(r["LineItems"]) > 0
        for line, raw_line in zip(bill.line_items, r["LineItems"], strict=True):
            assert line.line_item_id == raw_line["LineItemID"]
            assert line.description == raw_line["Description"]
            assert (line.quantity, line.unit_amount) == (raw_line["Quantity"], raw_line["UnitAmount"])
            assert (line.line_amount, line.tax_amount) == (raw_line["LineAmount"], raw_line["TaxAmount"])
            assert line.account_code == raw_line.get("AccountCode")
            assert [(t.name, t.option, t.tracking_option_id) for t in line.tracking] == [
                (t["Name"], t["Option"], t["TrackingOptionID"]) for t in raw_line["Tracking"]]


def test_sdk_parses_every_page_of_purchase_orders(sdk: tuple[ApiClient, dict[str, Any]],
                                                  shared: XeroSandbox) -> None:
    client, consent = sdk
    token = client.refresh_oauth2_token()
    api = AccountingApi(client, base_url=consent["urls"]["api"])
    orders = _pages(lambda p: api.get_purchase_orders(consent["tenant_ids"][0], page=p), "purchase_orders")
    assert len(orders) == len(shared.dataset.tenants[0].purchase_orders)
    raw = _raw(consent, token["access_token"], "PurchaseOrders", page=1)["PurchaseOrders"]
    for order, r in zip(orders[:100], raw, strict=True):
        assert order.purchase_order_id == r["PurchaseOrderID"]
        assert order.purchase_order_number == r["PurchaseOrderNumber"]
        assert order.status == r["Status"]
        assert order.total == r["Total"]
        assert order.date == _day(r["Date"])
        assert order.delivery_date == _day(r["DeliveryDate"])
        assert order.updated_date_utc == _instant(r["UpdatedDateUTC"])
        assert [li.account_code for li in order.line_items] == [li.get("AccountCode") for li in r["LineItems"]]


def test_sdk_parses_every_page_of_contacts(sdk: tuple[ApiClient, dict[str, Any]], shared: XeroSandbox) -> None:
    client, consent = sdk
    token = client.refresh_oauth2_token()
    api = AccountingApi(client, base_url=consent["urls"]["api"])
    contacts = _pages(lambda p: api.get_contacts(consent["tenant_ids"][0], page=p, include_archived=True),
                      "contacts")
    assert len(contacts) == len(shared.dataset.tenants[0].contacts)
    raw = {c["ContactID"]: c for c in _raw(consent, token["access_token"], "Contacts", page=1,
                                           includeArchived="true")["Contacts"]}
    for contact in contacts:
        r = raw[contact.contact_id]
        assert contact.name == r["Name"]
        assert contact.contact_status == r["ContactStatus"]
        assert contact.merged_to_contact_id == r.get("MergedToContactID")
        assert contact.updated_date_utc == _instant(r["UpdatedDateUTC"])
        assert (contact.default_currency.value if contact.default_currency else None) == r.get("DefaultCurrency")
    assert any(c.merged_to_contact_id for c in contacts)
    assert {"株式会社東京精密", "=SUM(A1:A2) Consulting", "O'Brien & Sons Plumbing"} <= {c.name for c in contacts}


def test_sdk_reads_settings_endpoints(sdk: tuple[ApiClient, dict[str, Any]], shared: XeroSandbox) -> None:
    client, consent = sdk
    client.refresh_oauth2_token()
    api = AccountingApi(client, base_url=consent["urls"]["api"])
    tenant_id = consent["tenant_ids"][0]
    accounts = api.get_accounts(tenant_id).accounts
    assert {a.code for a in accounts} == {a.code for a in shared.dataset.tenants[0].accounts}
    categories = api.get_tracking_categories(tenant_id, include_archived=True).tracking_categories
    assert {c.name for c in categories} == {"Department", "Region"}
    organisation = api.get_organisations(tenant_id).organisations[0]
    assert organisation.organisation_id == shared.dataset.tenants[0].organisation.organisation_id
    assert organisation.base_currency.value == "NZD"
    since = datetime(2026, 6, 1, tzinfo=UTC)
    recent = api.get_invoices(tenant_id, if_modified_since=since).invoices
    assert recent
    assert all(i.updated_date_utc >= since for i in recent)
