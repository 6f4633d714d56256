"""Every kind of body the sandbox sends validates against Xero's own OpenAPI schemas.

The envelope fields (`Id`, `Status`, `ProviderName`, `DateTimeUTC`) are in Xero's examples, not its
schemas; the schemas allow additional properties, which the last test pins down.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.sandbox.conftest import Client, validator

pytestmark = pytest.mark.sandbox

LIST_SCHEMAS = ["Invoices", "PurchaseOrders", "Contacts", "Accounts", "TrackingCategories", "Organisations"]


def _errors(spec: dict[str, Any], schema: str | dict[str, Any], body: Any) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator(spec, schema).iter_errors(body)]


@pytest.mark.parametrize(
    ("endpoint", "params", "schema"),
    [
        pytest.param("Invoices", {}, "Invoices", id="invoices-unpaged"),
        pytest.param("Invoices", {"page": 1}, "Invoices", id="invoices-paged"),
        pytest.param("Invoices", {"page": 2, "pageSize": 50, "where": 'Type=="ACCPAY"'}, "Invoices",
                     id="bills-page-2"),
        pytest.param("Invoices", {"page": 1, "unitdp": 4}, "Invoices", id="invoices-unitdp-4"),
        pytest.param("PurchaseOrders", {}, "PurchaseOrders", id="purchase-orders"),
        pytest.param("PurchaseOrders", {"page": 3, "pageSize": 20}, "PurchaseOrders", id="purchase-orders-page-3"),
        pytest.param("Contacts", {}, "Contacts", id="contacts-unpaged"),
        pytest.param("Contacts", {"page": 1, "includeArchived": "true"}, "Contacts", id="contacts-paged"),
        pytest.param("Accounts", {}, "Accounts", id="accounts"),
        pytest.param("TrackingCategories", {"includeArchived": "true"}, "TrackingCategories", id="tracking"),
        pytest.param("Organisation", {}, "Organisations", id="organisation"),
    ],
)
def test_list_bodies_match_xero_schemas(shared_client: Client, accounting_spec: dict[str, Any], endpoint: str,
                                        params: dict[str, Any], schema: str) -> None:
    body = shared_client.json(endpoint, **params)
    assert body["Status"] == "OK"
    collection = "Organisations" if endpoint == "Organisation" else endpoint
    assert body[collection], "an empty list proves nothing"
    assert _errors(accounting_spec, schema, body) == []


def test_every_bill_of_a_tenant_validates(shared_client: Client, accounting_spec: dict[str, Any]) -> None:
    page, seen = 1, 0
    while True:
        body = shared_client.json("Invoices", page=page, pageSize=100)
        assert _errors(accounting_spec, "Invoices", body) == []
        seen += len(body["Invoices"])
        if len(body["Invoices"]) < 100:
            break
        page += 1
    assert seen == len(shared_client.sandbox.dataset.tenants[0].invoices)


@pytest.mark.parametrize("kind", ["Invoices", "PurchaseOrders", "Contacts"])
def test_single_record_bodies_match(shared_client: Client, accounting_spec: dict[str, Any], kind: str) -> None:
    tenant = shared_client.sandbox.dataset.tenants[0]
    key = {"Invoices": tenant.invoices[4].invoice_id, "PurchaseOrders": tenant.purchase_orders[0].number,
           "Contacts": tenant.contacts[0].contact_id}[kind]
    body = shared_client.json(f"{kind}/{key}")
    assert len(body[kind]) == 1
    assert _errors(accounting_spec, kind, body) == []


def test_error_bodies_match_the_error_schema(shared_client: Client, accounting_spec: dict[str, Any]) -> None:
    bad_where = shared_client.get("Invoices", where='Type=="ACCPAY" AND')
    bad_ids = shared_client.get("Contacts", IDs="not-a-guid")
    for answer in (bad_where, bad_ids):
        assert answer.status_code == 400
        assert _errors(accounting_spec, "Error", answer.json()) == []


def test_identity_bodies_match_the_identity_schemas(shared_client: Client, identity_spec: dict[str, Any]) -> None:
    token_body = shared_client.refresh()
    assert _errors(identity_spec, "AccessToken", token_body) == []
    connections = shared_client.session.get(shared_client.urls["connections"],
                                            headers={"Authorization": f"Bearer {shared_client.access_token}"})
    array = {"type": "array", "items": {"$ref": "#/components/schemas/Connection"}}
    # Xero's own example sends createdDateUtc without a zone ("2019-12-07T18:46:19.5165400"), which a strict
    # RFC 3339 check rejects; the sandbox copies Xero, so formats are checked on everything but that one.
    body = connections.json()
    assert len(body) == 2
    assert [e for e in _errors(identity_spec, array, body) if "date-time" not in e] == []


def test_no_schema_we_serve_is_strict(accounting_spec: dict[str, Any]) -> None:
    schemas = accounting_spec["components"]["schemas"]
    for name in [*LIST_SCHEMAS, "Invoice", "PurchaseOrder", "Contact", "Account", "TrackingCategory",
                 "Organisation", "LineItem", "Error"]:
        assert schemas[name].get("additionalProperties", True) is not False, name
