"""Onboarding a Xero grant: the consent URL (state + PKCE), the code exchange, and the tenants it reaches.

The access token from the exchange is used once, to list `/connections`; the grant itself (client id,
secret and the refresh token) goes into the ledger encrypted, and everything after that refreshes
through the one TokenKeeper path.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import urlparse

import requests
from oauthlib.oauth2 import OAuth2Error
from requests.auth import HTTPBasicAuth
from requests_oauthlib import OAuth2Session

from connector.errors import PermanentError, XeroGrantRevoked, XeroUnavailable
from connector.secret import Secret
from connector.settings import XeroUrls
from connector.xero.transport import permit_loopback_http

# The least this connector needs (read-only; offline_access yields the refresh token). Apps created
# before March 2026 may use accounting.transactions.read in place of accounting.invoices.read.
DEFAULT_SCOPES = ("offline_access", "accounting.invoices.read", "accounting.contacts.read",
                  "accounting.settings.read")


@dataclass(frozen=True)
class Connection:
    tenant_id: str
    tenant_name: str
    tenant_type: str


@dataclass(frozen=True)
class Tokens:
    access_token: Secret
    refresh_token: Secret | None


class Consent:
    """One consent in progress: holds the state and PKCE verifier between the URL and the callback."""

    def __init__(self, urls: XeroUrls, client_id: str, client_secret: Secret, redirect_uri: str,
                 scopes: tuple[str, ...] = DEFAULT_SCOPES, timeout: float = 30.0) -> None:
        self._urls = urls
        self._client_secret = client_secret
        self._timeout = timeout
        permit_loopback_http(redirect_uri)  # a loopback redirect is plain http
        permit_loopback_http(urls.token)
        self._session = OAuth2Session(client_id, redirect_uri=redirect_uri, scope=list(scopes), pkce="S256")
        self.url, self.state = self._session.authorization_url(urls.authorize)

    def complete(self, redirected_url: str) -> Tokens:
        """Exchange the code in the redirected URL; the state must match the one we sent."""
        try:
            token = self._session.fetch_token(
                self._urls.token, authorization_response=redirected_url, timeout=self._timeout,
                auth=HTTPBasicAuth(str(self._session.client_id), self._client_secret.reveal()),
                include_client_id=False,
            )
        except OAuth2Error as exc:
            raise XeroGrantRevoked(f"Xero refused the consent: {exc.error}") from None
        except requests.RequestException as exc:
            raise XeroUnavailable(f"Xero token endpoint: {type(exc).__name__}") from None
        refresh = token.get("refresh_token")
        return Tokens(Secret(str(token["access_token"])), Secret(str(refresh)) if refresh else None)


def wait_for_redirect(redirect_uri: str, timeout: float = 300.0) -> str:
    """Serve one request on the redirect URI's loopback port and return the full URL it was sent to."""
    parsed = urlparse(redirect_uri)
    captured: dict[str, str] = {}

    class OneShot(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if urlparse(self.path).path != (parsed.path or "/"):  # e.g. a browser asking for /favicon.ico
                self.send_response(404)
                self.end_headers()
                return
            captured["url"] = f"{parsed.scheme}://{parsed.netloc}{self.path}"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.end_headers()
            self.wfile.write(b"Xero consent received; you can close this window.\n")

        def log_message(self, *args: Any) -> None:
            """Silent: the query string carries the authorisation code."""

    server = HTTPServer((parsed.hostname or "127.0.0.1", parsed.port or 80), OneShot)
    server.timeout = 1.0
    deadline = time.monotonic() + timeout
    try:
        while "url" not in captured and time.monotonic() < deadline:
            server.handle_request()
    finally:
        server.server_close()
    if "url" not in captured:
        raise PermanentError("no redirect arrived from Xero in time")
    return captured["url"]


def list_connections(urls: XeroUrls, access_token: Secret, timeout: float = 30.0) -> list[Connection]:
    """The tenants a token reaches (GET /connections)."""
    try:
        response = requests.get(
            urls.connections, headers={"Authorization": f"Bearer {access_token.reveal()}",
                                       "Accept": "application/json"}, timeout=timeout,
        )
    except requests.RequestException as exc:
        raise XeroUnavailable(f"Xero connections: {type(exc).__name__}") from None
    if response.status_code != 200:
        raise XeroUnavailable(f"Xero connections: HTTP {response.status_code}")
    return [
        Connection(str(c["tenantId"]), str(c.get("tenantName") or ""), str(c.get("tenantType") or ""))
        for c in response.json()
    ]
