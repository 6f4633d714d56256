"""Identity as Xero does it: consent redirect, code + PKCE exchange, rotating refresh tokens, client
credentials for custom connections, revocation, connections, and the 401/403 shapes of the API.
"""

from __future__ import annotations

import base64
import secrets
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from sandbox.xero import XeroSandbox
from sandbox.xero.tokens import read_claims, s256
from tests.sandbox.conftest import Client

pytestmark = pytest.mark.sandbox

REDIRECT = "http://127.0.0.1:9/callback"


def _authorize(sandbox: XeroSandbox, **extra: str) -> dict[str, list[str]]:
    params = {"response_type": "code", "client_id": sandbox.consent()["client_id"], "redirect_uri": REDIRECT,
              "scope": "offline_access accounting.transactions.read", "state": "xyz", **extra}
    answer = requests.get(sandbox.urls["authorize"], params=params, allow_redirects=False, timeout=5)
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith(REDIRECT + "?")
    return parse_qs(urlsplit(location).query)


def test_authorization_code_with_secret(fresh: XeroSandbox) -> None:
    consent = fresh.consent()
    query = _authorize(fresh)
    assert query["state"] == ["xyz"]
    form = {"grant_type": "authorization_code", "code": query["code"][0], "redirect_uri": REDIRECT}
    answer = requests.post(fresh.urls["token"], data=form, auth=(consent["client_id"], consent["client_secret"]),
                           timeout=5)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["expires_in"] == 1800
    assert body["token_type"] == "Bearer"
    assert body["refresh_token"]
    assert read_claims(body["access_token"])["client_id"] == consent["client_id"]
    again = requests.post(fresh.urls["token"], data=form, auth=(consent["client_id"], consent["client_secret"]),
                          timeout=5)
    assert (again.status_code, again.json()) == (400, {"error": "invalid_grant"})


def test_pkce_s256_without_a_secret(fresh: XeroSandbox) -> None:
    client_id = fresh.consent()["client_id"]
    verifier = secrets.token_urlsafe(48)
    query = _authorize(fresh, code_challenge=s256(verifier), code_challenge_method="S256")
    form = {"grant_type": "authorization_code", "code": query["code"][0], "redirect_uri": REDIRECT,
            "client_id": client_id, "code_verifier": verifier}
    answer = requests.post(fresh.urls["token"], data=form, timeout=5)
    assert answer.status_code == 200, answer.text
    refreshed = requests.post(fresh.urls["token"], timeout=5, data={
        "grant_type": "refresh_token", "client_id": client_id, "refresh_token": answer.json()["refresh_token"]})
    assert refreshed.status_code == 200, "a PKCE grant refreshes without a secret"


def test_pkce_wrong_verifier_and_plain_method_are_refused(fresh: XeroSandbox) -> None:
    client_id = fresh.consent()["client_id"]
    query = _authorize(fresh, code_challenge=s256("right"), code_challenge_method="S256")
    form = {"grant_type": "authorization_code", "code": query["code"][0], "redirect_uri": REDIRECT,
            "client_id": client_id, "code_verifier": "wrong"}
    assert requests.post(fresh.urls["token"], data=form, timeout=5).json()["error"] == "invalid_grant"
    plain = _authorize(fresh, code_challenge="abc", code_challenge_method="plain")
    assert plain["error"] == ["invalid_request"]
    assert "code" not in plain


def test_refresh_rotates_and_the_old_token_is_dead(client: Client) -> None:
    old = client.refresh_token
    body = client.refresh()
    assert body["refresh_token"] != old
    reuse = client.token(grant_type="refresh_token", refresh_token=old)
    assert reuse.status_code == 400
    assert reuse.json() == {"error": "invalid_grant"}
    assert client.token(grant_type="refresh_token", refresh_token=client.refresh_token).status_code == 200
    assert client.sandbox.stats()["token_refreshes"] == 3


def test_client_auth_by_form_fields_and_bad_secret(client: Client) -> None:
    form = {"grant_type": "refresh_token", "refresh_token": client.refresh_token,
            "client_id": client.consent["client_id"], "client_secret": "wrong"}
    bad = requests.post(client.urls["token"], data=form, timeout=5)
    assert (bad.status_code, bad.json()["error"]) == (400, "invalid_client")
    form["client_secret"] = client.consent["client_secret"]
    assert requests.post(client.urls["token"], data=form, timeout=5).status_code == 200
    missing = requests.post(client.urls["token"], timeout=5, data={
        "grant_type": "refresh_token", "refresh_token": "x", "client_id": client.consent["client_id"]})
    assert missing.json()["error"] in ("invalid_grant", "invalid_client")
    unknown = requests.post(client.urls["token"], data={"grant_type": "password"}, timeout=5,
                            auth=(client.consent["client_id"], client.consent["client_secret"]))
    assert unknown.json() == {"error": "unsupported_grant_type"}


def test_custom_connection_uses_client_credentials(fresh: XeroSandbox) -> None:
    custom = fresh.custom_connection(1)
    basic = base64.b64encode(f"{custom['client_id']}:{custom['client_secret']}".encode()).decode()
    answer = requests.post(fresh.urls["token"], data={"grant_type": "client_credentials"}, timeout=5,
                           headers={"Authorization": f"Basic {basic}"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert "refresh_token" not in body
    assert body["expires_in"] == 1800
    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    api = fresh.urls["api"]
    no_header = requests.get(f"{api}/Organisation", headers=bearer, timeout=5)
    assert no_header.status_code == 200
    assert no_header.json()["Organisations"][0]["Name"] == fresh.dataset.tenants[1].name
    other = requests.get(f"{api}/Organisation", headers={**bearer, "xero-tenant-id": fresh.tenant_ids[0]}, timeout=5)
    assert other.status_code == 403
    standard = fresh.consent()
    refused = requests.post(fresh.urls["token"], data={"grant_type": "client_credentials"}, timeout=5,
                            auth=(standard["client_id"], standard["client_secret"]))
    assert refused.json() == {"error": "unauthorized_client"}


def test_revocation_drops_the_grant(client: Client) -> None:
    revoked = requests.post(client.urls["revocation"], data={"token": client.refresh_token}, timeout=5,
                            auth=(client.consent["client_id"], client.consent["client_secret"]))
    assert revoked.status_code == 200
    again = client.token(grant_type="refresh_token", refresh_token=client.refresh_token)
    assert again.json() == {"error": "invalid_grant"}
    assert client.get("Organisation").status_code == 403
    listed = requests.get(client.urls["connections"], timeout=5,
                          headers={"Authorization": f"Bearer {client.access_token}"})
    assert listed.json() == []


def test_connections_list_and_delete(client: Client) -> None:
    bearer = {"Authorization": f"Bearer {client.access_token}"}
    listed = requests.get(client.urls["connections"], headers=bearer, timeout=5).json()
    assert [c["tenantId"] for c in listed] == client.sandbox.tenant_ids
    assert {c["authEventId"] for c in listed} == {read_claims(client.access_token)["authentication_event_id"]}
    assert requests.get(client.urls["connections"], headers=bearer, params={"authEventId": secrets.token_hex(4)},
                        timeout=5).json() == []
    gone = requests.delete(f"{client.urls['connections']}/{listed[1]['id']}", headers=bearer, timeout=5)
    assert gone.status_code == 204
    assert client.get("Organisation", tenant=listed[1]["tenantId"]).status_code == 403
    assert client.get("Organisation", tenant=listed[0]["tenantId"]).status_code == 200


def test_expired_token_answers_401_token_expired(client: Client) -> None:
    assert client.get("Organisation").status_code == 200
    client.sandbox.advance(1800)
    answer = client.get("Organisation")
    assert answer.status_code == 401
    body = answer.json()
    assert body["Title"] == "Unauthorized"
    assert body["Status"] == 401
    assert body["Detail"].startswith("TokenExpired: token expired at ")
    assert set(body) == {"Type", "Title", "Status", "Detail", "Instance", "Extensions"}
    assert answer.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    client.refresh()
    assert client.get("Organisation").status_code == 200


def test_token_lives_just_under_thirty_minutes(client: Client) -> None:
    client.sandbox.set_time_scale(0)
    client.refresh()
    client.sandbox.advance(1799)
    assert client.get("Organisation").status_code == 200
    client.sandbox.advance(1)
    assert client.get("Organisation").status_code == 401


def test_unknown_or_missing_token_answers_401(client: Client) -> None:
    for header in ({"Authorization": "Bearer not-a-token"}, {}):
        answer = requests.get(f"{client.urls['api']}/Invoices", timeout=5,
                              headers={**header, "xero-tenant-id": client.tenant_id})
        assert answer.status_code == 401
        assert answer.json()["Detail"] == "AuthenticationUnsuccessful"
        assert "WWW-Authenticate" in answer.headers


@pytest.mark.parametrize("tenant", [None, "00000000-0000-0000-0000-000000000000", "junk"])
def test_missing_or_foreign_tenant_answers_403(client: Client, tenant: str | None) -> None:
    answer = client.get("Invoices", tenant=tenant)
    assert answer.status_code == 403
    body = answer.json()
    assert (body["Title"], body["Status"], body["Detail"]) == ("Forbidden", 403, "AuthenticationUnsuccessful")


def test_a_consent_can_cover_one_tenant_only(fresh: XeroSandbox) -> None:
    consent = fresh.consent([fresh.tenant_ids[1]])
    assert consent["tenant_ids"] == [fresh.tenant_ids[1]]
    one = Client(fresh, consent)
    try:
        assert one.get("Organisation", tenant=fresh.tenant_ids[0]).status_code == 403
        assert one.get("Organisation", tenant=fresh.tenant_ids[1]).status_code == 200
    finally:
        one.close()
