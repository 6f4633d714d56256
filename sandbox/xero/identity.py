"""Xero Identity: authorise, token (code + PKCE, refresh with rotation, client credentials), revocation,
connections, and bearer-token checks for the Accounting API.

A *grant* is one user consent (Xero's `authEventId`): it connects tenants and owns a refresh-token chain.
Every refresh rotates the chain; the previous token then answers `invalid_grant` (see choices.py for the
grace window). Custom connections are apps bound to one tenant that use `client_credentials`.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from sandbox.xero import choices, tokens
from sandbox.xero.clock import SandboxClock


@dataclass
class App:
    client_id: str
    client_secret: str
    name: str
    tenant_id: str | None = None  # set for a custom connection: the one organisation it reaches


@dataclass
class Connection:
    id: str
    tenant_id: str
    tenant_name: str
    created: datetime


@dataclass
class Grant:
    auth_event_id: str
    client_id: str
    user_id: str
    scopes: str
    connections: list[Connection]
    refresh_token: str | None
    refresh_issued: datetime
    public: bool = False  # PKCE client without a secret
    revoked: bool = False


@dataclass
class AccessToken:
    value: str
    app: App
    expires_at: datetime
    grant: Grant | None = None


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    scopes: str
    challenge: str | None
    expires_at: datetime


class TokenError(Exception):
    """An OAuth error answer: 400 (or 401) with {"error": ...}."""

    def __init__(self, error: str, description: str | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.description = description


@dataclass
class TokenResult:
    body: dict[str, Any]
    grant_type: str


class Identity:
    """All identity state of one sandbox; every method is thread-safe."""

    def __init__(self, clock: SandboxClock, label: str, tenants: Callable[[], list[tuple[str, str]]]) -> None:
        """`label` makes the app's client id and secret stable; `tenants` lists (id, name) of the dataset."""
        self.clock = clock
        self.label = label
        self.tenants = tenants
        self.app = App(tokens.client_id_for(label), tokens.client_secret_for(label), "Xero Sandbox App")
        self.apps: dict[str, App] = {self.app.client_id: self.app}
        self._key = secrets.token_bytes(32)
        self._lock = threading.RLock()
        self._codes: dict[str, _Code] = {}
        self._grants_by_refresh: dict[str, Grant] = {}
        self._rotated: dict[str, tuple[Grant, datetime]] = {}
        self._access: dict[str, AccessToken] = {}

    # --- set-up used by the Python API and the admin API -------------------------------------------------

    def consent(self, tenant_ids: list[str] | None = None, scopes: str = choices.DEFAULT_SCOPES) -> Grant:
        """A new user consent of the standard app to some (default: all) tenants, with a refresh token."""
        with self._lock:
            return self._new_grant(self.app, scopes, tenant_ids, public=False)

    def custom_connection(self, tenant_id: str, tenant_name: str) -> App:
        label = f"{self.label}/custom/{tenant_id}"
        with self._lock:
            app = App(tokens.client_id_for(label), tokens.client_secret_for(label),
                      f"Custom connection: {tenant_name}", tenant_id=tenant_id)
            self.apps[app.client_id] = app
            return app

    def forget_grants(self) -> None:
        """Drop every grant and token (after a re-seed the tenants they pointed at are gone)."""
        with self._lock:
            self._codes.clear()
            self._grants_by_refresh.clear()
            self._rotated.clear()
            self._access.clear()
            self.apps = {k: a for k, a in self.apps.items() if a.tenant_id is None}

    def expire_access_tokens(self) -> int:
        """Make every access token expired now; returns how many were live."""
        now = self.clock.now()
        with self._lock:
            live = [t for t in self._access.values() if t.expires_at > now]
            for token in live:
                token.expires_at = now
            return len(live)

    # --- endpoints -------------------------------------------------------------------------------------

    def authorize(self, args: Mapping[str, str]) -> str:
        """Consent at once: the redirect location with `code` and `state`. Raises TokenError when the
        request cannot even be redirected (unknown client, no redirect_uri)."""
        app = self.apps.get(args.get("client_id", ""))
        redirect_uri = args.get("redirect_uri", "")
        if app is None or app.tenant_id is not None:
            raise TokenError("invalid_client")
        if not redirect_uri:
            raise TokenError("invalid_request", "redirect_uri is required")
        params: dict[str, str] = {}
        method = args.get("code_challenge_method", "S256" if args.get("code_challenge") else "")
        if args.get("response_type") != "code":
            params["error"] = "unsupported_response_type"
        elif method and method != "S256":
            params["error"] = "invalid_request"
            params["error_description"] = "only S256 code challenges are supported"
        else:
            code = tokens.opaque()
            scopes = args.get("scope") or choices.DEFAULT_SCOPES
            with self._lock:
                self._codes[code] = _Code(app.client_id, redirect_uri, scopes, args.get("code_challenge"),
                                          self.clock.now() + timedelta(seconds=choices.AUTH_CODE_SECONDS))
            params.update({"code": code, "scope": scopes, "session_state": secrets.token_urlsafe(16)})
        if "state" in args:
            params["state"] = args["state"]
        return f"{redirect_uri}{'&' if '?' in redirect_uri else '?'}{urlencode(params)}"

    def token(self, form: Mapping[str, str], authorization: str | None) -> TokenResult:
        client_id, secret = _client_credentials(form, authorization)
        with self._lock:
            app = self.apps.get(client_id or "")
            if app is None:
                raise TokenError("invalid_client")
            secret_ok = secret is not None and hmac.compare_digest(secret, app.client_secret)
            if secret is not None and not secret_ok:
                raise TokenError("invalid_client")
            grant_type = form.get("grant_type", "")
            if grant_type == "client_credentials":
                if app.tenant_id is None:
                    raise TokenError("unauthorized_client")
                if not secret_ok:
                    raise TokenError("invalid_client")
                return TokenResult(self._issue(app, None, form.get("scope") or choices.DEFAULT_SCOPES), grant_type)
            if app.tenant_id is not None and grant_type in ("authorization_code", "refresh_token"):
                raise TokenError("unauthorized_client")
            if grant_type == "authorization_code":
                return TokenResult(self._exchange_code(app, form, secret_ok), grant_type)
            if grant_type == "refresh_token":
                return TokenResult(self._refresh(app, form.get("refresh_token", ""), secret_ok), grant_type)
            raise TokenError("unsupported_grant_type")

    def revoke(self, form: Mapping[str, str], authorization: str | None) -> None:
        """Revoke a refresh token: its grant loses every connection (RFC 7009: unknown tokens are fine)."""
        client_id, secret = _client_credentials(form, authorization)
        with self._lock:
            app = self.apps.get(client_id or "")
            if app is None or (secret is not None and not hmac.compare_digest(secret, app.client_secret)):
                raise TokenError("invalid_client")
            grant = self._grants_by_refresh.pop(form.get("token", ""), None)
            if grant is not None and grant.client_id == app.client_id:
                grant.revoked = True
                grant.connections.clear()
                grant.refresh_token = None

    def authenticate(self, authorization: str | None) -> AccessToken | str:
        """The live access token, or the 401 Detail to answer with."""
        scheme, _, value = (authorization or "").partition(" ")
        with self._lock:
            token = self._access.get(value.strip()) if scheme.lower() == "bearer" else None
        if token is None:
            return choices.INVALID_BEARER_DETAIL
        if token.expires_at <= self.clock.now():
            return f"TokenExpired: token expired at {token.expires_at:%m/%d/%Y %H:%M:%S}"
        return token

    def tenant_for(self, token: AccessToken, header: str | None) -> str | None:
        """The tenant a call may act on, or None (403): custom connections need no header."""
        wanted = (header or "").strip().lower()
        if token.app.tenant_id is not None:
            return token.app.tenant_id if wanted in ("", token.app.tenant_id) else None
        if not wanted or token.grant is None:
            return None
        with self._lock:
            return wanted if any(c.tenant_id == wanted for c in token.grant.connections) else None

    def connections(self, token: AccessToken, auth_event_id: str | None = None) -> list[dict[str, Any]]:
        if token.app.tenant_id is not None:
            names = dict(self.tenants())
            grant_id = str(uuid.uuid5(uuid.NAMESPACE_URL, token.app.client_id))
            conns = [Connection(grant_id, token.app.tenant_id, names.get(token.app.tenant_id, ""),
                                self.clock.now())]
            event = grant_id
        elif token.grant is not None:
            conns, event = list(token.grant.connections), token.grant.auth_event_id
        else:
            conns, event = [], ""
        if auth_event_id and auth_event_id.lower() != event:
            return []
        return [
            {"id": c.id, "authEventId": event, "tenantId": c.tenant_id, "tenantType": "ORGANISATION",
             "tenantName": c.tenant_name, "createdDateUtc": _net_datetime(c.created),
             "updatedDateUtc": _net_datetime(c.created)}
            for c in conns
        ]

    def delete_connection(self, token: AccessToken, connection_id: str) -> bool:
        if token.grant is None:
            return False
        with self._lock:
            before = len(token.grant.connections)
            token.grant.connections[:] = [c for c in token.grant.connections if c.id != connection_id.lower()]
            return len(token.grant.connections) < before

    # --- internals -------------------------------------------------------------------------------------

    def _new_grant(self, app: App, scopes: str, tenant_ids: list[str] | None, *, public: bool) -> Grant:
        now = self.clock.now()
        names = dict(self.tenants())
        chosen = [t for t in names if tenant_ids is None or t in tenant_ids]
        grant = Grant(
            auth_event_id=str(uuid.uuid4()), client_id=app.client_id, user_id=str(uuid.uuid4()), scopes=scopes,
            connections=[Connection(str(uuid.uuid4()), t, names[t], now) for t in chosen],
            refresh_token=tokens.opaque() if "offline_access" in scopes.split() else None,
            refresh_issued=now, public=public,
        )
        if grant.refresh_token:
            self._grants_by_refresh[grant.refresh_token] = grant
        return grant

    def _exchange_code(self, app: App, form: Mapping[str, str], secret_ok: bool) -> dict[str, Any]:
        code = self._codes.pop(form.get("code", ""), None)
        if code is None or code.client_id != app.client_id or code.expires_at <= self.clock.now():
            raise TokenError("invalid_grant")
        if code.redirect_uri != form.get("redirect_uri", ""):
            raise TokenError("invalid_grant", "redirect_uri does not match the authorisation request")
        if code.challenge is not None:
            if tokens.s256(form.get("code_verifier", "")) != code.challenge:
                raise TokenError("invalid_grant", "code_verifier does not match the code_challenge")
        elif not secret_ok:
            raise TokenError("invalid_client")
        grant = self._new_grant(app, code.scopes, None, public=not secret_ok)
        return self._issue(app, grant, code.scopes)

    def _refresh(self, app: App, refresh_token: str, secret_ok: bool) -> dict[str, Any]:
        now = self.clock.now()
        grant = self._grants_by_refresh.get(refresh_token)
        if grant is None:
            rotated = self._rotated.get(refresh_token)
            grace = timedelta(seconds=choices.REFRESH_TOKEN_GRACE_SECONDS)
            if rotated is None or rotated[0].revoked or now - rotated[1] >= grace:
                raise TokenError("invalid_grant")
            grant = rotated[0]
        if grant.client_id != app.client_id:
            raise TokenError("invalid_grant")
        if not secret_ok and not grant.public:
            raise TokenError("invalid_client")
        if now - grant.refresh_issued > timedelta(seconds=choices.REFRESH_TOKEN_IDLE_SECONDS):
            raise TokenError("invalid_grant")
        if grant.refresh_token is not None:
            self._grants_by_refresh.pop(grant.refresh_token, None)
            self._rotated[grant.refresh_token] = (grant, now)
        grant.refresh_token = tokens.opaque()
        grant.refresh_issued = now
        self._grants_by_refresh[grant.refresh_token] = grant
        return self._issue(app, grant, grant.scopes)

    def _issue(self, app: App, grant: Grant | None, scopes: str) -> dict[str, Any]:
        now = self.clock.now()
        expires = now + timedelta(seconds=choices.ACCESS_TOKEN_SECONDS)
        user = grant.user_id if grant else None
        claims: dict[str, Any] = {
            "nbf": int(now.timestamp()), "exp": int(expires.timestamp()), "iss": "https://identity.xero.com",
            "aud": "https://identity.xero.com/resources", "client_id": app.client_id, "sub": user,
            "auth_time": int(now.timestamp()), "xero_userid": user, "jti": secrets.token_hex(16),
            "authentication_event_id": grant.auth_event_id if grant else None, "scope": scopes.split(),
        }
        value = tokens.make_jwt(claims, self._key)
        self._access[value] = AccessToken(value, app, expires, grant)
        body: dict[str, Any] = {"access_token": value, "expires_in": choices.ACCESS_TOKEN_SECONDS,
                                "token_type": "Bearer", "scope": scopes}
        if grant is not None and "openid" in scopes.split():
            body["id_token"] = tokens.make_jwt({**claims, "aud": app.client_id}, self._key)
        if grant is not None and grant.refresh_token:
            body["refresh_token"] = grant.refresh_token
        return body


def _client_credentials(form: Mapping[str, str], authorization: str | None) -> tuple[str | None, str | None]:
    """Client id and secret from HTTP Basic, else from the form (either is accepted by Xero)."""
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() == "basic" and value:
        try:
            client_id, _, secret = base64.b64decode(value.strip()).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return None, None
        return client_id, secret
    return form.get("client_id"), form.get("client_secret")


def _net_datetime(moment: datetime) -> str:
    """The identity service's zone-less ISO form with seven fractional digits, e.g. 2019-12-07T18:46:19.5165400."""
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond:06d}0"
