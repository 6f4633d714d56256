"""The admin API over HTTP: seed, update, stats, reset, clock, limits, faults, answer key, credentials.

Admin calls are neither rate limited nor counted.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from sandbox.xero import msdate
from tests.sandbox.conftest import Client

pytestmark = pytest.mark.sandbox


def admin(client: Client, method: str, route: str, **body: Any) -> Any:
    answer = requests.request(method, f"{client.sandbox.base_url}/_sandbox/{route}", json=body or None, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_index_lists_tenants_and_routes(client: Client) -> None:
    index = admin(client, "GET", "")
    assert [t["tenant_id"] for t in index["tenants"]] == client.sandbox.tenant_ids
    assert any(r.startswith("POST /_sandbox/update") for r in index["routes"])


def test_stats_count_calls_429s_refreshes_records_and_page_sizes(client: Client) -> None:
    client.sandbox.set_limits(minute=3)
    client.get("Invoices", page=1, pageSize=20)
    client.get("Invoices", page=1, pageSize=1500)
    client.get("Contacts")
    client.get("Contacts")
    client.refresh()
    for _ in range(5):
        admin(client, "GET", "stats")
    stats = admin(client, "GET", "stats")
    assert stats["calls_by_endpoint"]["GET /api.xro/2.0/Invoices"] == {"200": 2}
    assert stats["calls_by_endpoint"]["GET /api.xro/2.0/Contacts"] == {"200": 1, "429": 1}
    assert stats["calls_by_endpoint"]["POST /connect/token"] == {"200": 2}
    assert stats["rate_limited"] == {"minute": 1, "day": 0, "concurrent": 0, "appminute": 0}
    assert stats["token_refreshes"] == 2
    assert stats["records_served"]["Invoices"] == 20 + len(client.sandbox.dataset.tenants[0].invoices)
    assert stats["records_served"]["Contacts"] > 0
    assert stats["largest_page_size_asked"] == 1500
    assert stats["calls"] == 6, "admin calls are not counted"
    assert admin(client, "POST", "stats/reset")["calls"] == 0


def test_update_then_answer_key(client: Client) -> None:
    tenant = client.sandbox.tenant_ids[1]
    before = len(client.json("Invoices", tenant=tenant)["Invoices"])
    result = admin(client, "POST", "update", tenant_id=tenant, modify=4, add=3)
    assert len(result["modified"]) == 4
    assert len(result["added"]) == 3
    assert len(client.json("Invoices", tenant=tenant)["Invoices"]) == before + 3
    key = admin(client, "GET", f"answer-key?tenant={tenant}")
    for invoice_id in result["added"]:
        (number,) = key[invoice_id]
        bill = client.json(f"Invoices/{invoice_id}", tenant=tenant)["Invoices"][0]
        assert bill["InvoiceNumber"] == number
        assert bill["UpdatedDateUTC"] == result["UpdatedDateUTC"]
    assert key == client.sandbox.answer_key(tenant)


def test_reset_restores_data_and_keeps_consents(client: Client) -> None:
    original = len(client.json("Invoices")["Invoices"])
    admin(client, "POST", "update", add=5)
    assert len(client.json("Invoices")["Invoices"]) == original + 5
    admin(client, "POST", "reset")
    assert len(client.json("Invoices")["Invoices"]) == original
    client.refresh()


def test_seed_rebuilds_and_drops_consents(client: Client) -> None:
    old_tenants = client.sandbox.tenant_ids
    seeded = admin(client, "POST", "seed", seed=99, tenants=1, bills=30)
    assert seeded["tenant_ids"] != old_tenants
    assert len(seeded["tenant_ids"]) == 1
    assert client.token(grant_type="refresh_token", refresh_token=client.refresh_token).json() == {
        "error": "invalid_grant"}
    consent = admin(client, "POST", "consent")
    assert consent["tenant_ids"] == seeded["tenant_ids"]
    fresh_client = Client(client.sandbox, consent)
    try:
        assert len(fresh_client.json("Invoices", where='Type=="ACCPAY"')["Invoices"]) == 30
    finally:
        fresh_client.close()


def test_clock_advance_and_scale(client: Client) -> None:
    admin(client, "POST", "clock/scale", time_scale=0)
    now = admin(client, "GET", "clock")
    later = admin(client, "POST", "clock/advance", seconds=90)
    assert msdate.parse(later["DateTimeUTC"]).timestamp() - msdate.parse(now["DateTimeUTC"]).timestamp() == 90
    assert later["time_scale"] == 0
    envelope = client.json("Organisation")["DateTimeUTC"]
    assert envelope == later["DateTimeUTC"], "the API's DateTimeUTC is the sandbox clock"
    admin(client, "POST", "clock/scale", time_scale=3600)
    assert msdate.parse(admin(client, "GET", "clock")["DateTimeUTC"]) > msdate.parse(later["DateTimeUTC"])


def test_expire_tokens_limits_and_faults(client: Client) -> None:
    assert admin(client, "POST", "expire-tokens")["expired"] >= 1
    assert client.get("Organisation").status_code == 401
    client.refresh()
    assert admin(client, "POST", "limits", day=1)["day"] == 1
    client.get("Organisation")
    assert client.get("Organisation").headers["X-Rate-Limit-Problem"] == "day"
    admin(client, "POST", "limits", day=5000)
    admin(client, "POST", "faults/fail-next", path="/api.xro/2.0/Organisation", count=1, status=502)
    assert client.get("Organisation").status_code == 502
    faults = admin(client, "POST", "faults", error_rate=0.25, latency_ms=1)
    assert (faults["error_rate"], faults["latency_ms"]) == (0.25, 1)
    assert admin(client, "DELETE", "faults")["error_rate"] == 0


def test_masters_and_custom_connection(client: Client) -> None:
    masters = admin(client, "GET", "masters")
    assert "477" in {a["Code"] for a in masters["Accounts"]}
    assert {t["Name"] for t in masters["TrackingCategories"]} == {"Department", "Region"}
    custom = admin(client, "POST", "custom-connection", tenant_index=1)
    assert custom["tenant_id"] == client.sandbox.tenant_ids[1]
    token = requests.post(custom["urls"]["token"], data={"grant_type": "client_credentials"}, timeout=5,
                          auth=(custom["client_id"], custom["client_secret"]))
    assert token.status_code == 200


def test_unknown_routes_and_methods(client: Client) -> None:
    base = f"{client.sandbox.base_url}/_sandbox"
    assert requests.get(f"{base}/nope", timeout=5).status_code == 404
    assert requests.get(f"{base}/reset", timeout=5).status_code == 405
    assert requests.post(f"{base}/clock/advance", json={"seconds": -5}, timeout=5).status_code == 400
    assert requests.post(f"{base}/update", json={"tenant_id": "nobody"}, timeout=5).status_code == 400
