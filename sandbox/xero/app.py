"""The WSGI application: routes every URL the connector uses on one port, in Xero's order of checks.

Accounting calls go: bearer token (401) -> tenant header (403) -> rate limiter (429) -> faults and
latency -> endpoint. Identity calls skip the tenant and limiter steps. `/_sandbox/...` is the admin API,
neither limited nor counted. Paths are matched case-insensitively, as Xero's are.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from werkzeug.wrappers import Request, Response

from sandbox.xero import admin
from sandbox.xero.accounting import ENDPOINTS, HANDLERS, ApiCall
from sandbox.xero.faults import failure_response
from sandbox.xero.identity import AccessToken, TokenError
from sandbox.xero.query import BadParameter, TooManyIds
from sandbox.xero.responses import (
    forbidden,
    json_response,
    not_found,
    oauth_error,
    query_parse_error,
    unauthorized,
    validation_error,
)
from sandbox.xero.state import API_PREFIX, SandboxState
from sandbox.xero.where import QueryParseError

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

class SandboxApp:
    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        if request.path.startswith("/_sandbox"):
            response = admin.handle(self.state, request)
        else:
            self.state.stats.receive(request.path)
            label, response = self._serve(request)
            self.state.stats.call(label, response.status_code)
        return response(environ, start_response)

    def _serve(self, request: Request) -> tuple[str, Response]:
        path = request.path.rstrip("/").lower()
        method = request.method
        if path == "/identity/connect/authorize":
            return self._only("GET", request, "/identity/connect/authorize", self._authorize)
        if path == "/connect/token":
            return self._only("POST", request, "/connect/token", self._token)
        if path == "/connect/revocation":
            return self._only("POST", request, "/connect/revocation", self._revoke)
        if path == "/connections":
            return self._only("GET", request, "/connections", self._connections)
        if path.startswith("/connections/"):
            return self._only("DELETE", request, "/connections/{id}", self._delete_connection)
        if path.startswith(API_PREFIX.lower() + "/"):
            parts = request.path.rstrip("/")[len(API_PREFIX) + 1:].split("/")
            endpoint = ENDPOINTS.get(parts[0].lower())
            if endpoint is not None and len(parts) <= 2:
                label = f"{API_PREFIX}/{endpoint}" + ("/{id}" if len(parts) == 2 else "")
                key = parts[1] if len(parts) == 2 else None
                return self._only("GET", request, label, lambda r: self._api(r, endpoint, key), faults=False)
            if endpoint in ("Invoices", "CreditNotes") and len(parts) in (3, 4) and parts[2].lower() == "attachments":
                label = f"{API_PREFIX}/{endpoint}/{{id}}/Attachments" + ("/{id}" if len(parts) == 4 else "")
                which = parts[3] if len(parts) == 4 else None
                handler = f"{endpoint.removesuffix('s')}Attachments"  # InvoiceAttachments, CreditNoteAttachments
                return self._only("GET", request, label,
                                  lambda r: self._api(r, handler, parts[1], which), faults=False)
        return f"{method} (unknown)", not_found()

    def _only(self, method: str, request: Request, label: str, handler: Callable[[Request], Response], *,
              faults: bool = True) -> tuple[str, Response]:
        """Serve one route; identity routes get faults here, API routes after auth and the limiter."""
        if request.method != method:
            return f"{request.method} {label}", Response("Method Not Allowed", 405, {"Allow": method})
        if not faults:
            return f"{method} {label}", handler(request)
        return f"{method} {label}", self._with_faults(request, lambda: handler(request), api=False)

    def _with_faults(self, request: Request, work: Callable[[], Response], *, api: bool,
                     tenant: str | None = None) -> Response:
        rule = self.state.faults.pick(request.path, api=api, tenant=tenant)
        self.state.faults.delay(tenant)
        if rule is not None and not rule.after:
            self.state.stats.fault()
            return failure_response(rule)
        response = work()
        if rule is not None:
            self.state.stats.fault()
            return failure_response(rule)
        return response

    # --- identity --------------------------------------------------------------------------------------

    def _authorize(self, request: Request) -> Response:
        try:
            location = self.state.identity.authorize(request.args.to_dict())
        except TokenError as exc:
            return oauth_error(exc.error, exc.description)
        return Response(status=302, headers={"Location": location})

    def _token(self, request: Request) -> Response:
        form = request.form.to_dict()
        try:
            result = self.state.identity.token(form, request.headers.get("Authorization"))
        except TokenError as exc:
            self.state.stats.token(form.get("grant_type", ""), exc.error)
            return oauth_error(exc.error, exc.description)
        self.state.stats.token(result.grant_type)
        return json_response(result.body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    def _revoke(self, request: Request) -> Response:
        try:
            self.state.identity.revoke(request.form.to_dict(), request.headers.get("Authorization"))
        except TokenError as exc:
            return oauth_error(exc.error, exc.description)
        return Response(status=200)

    def _bearer(self, request: Request) -> AccessToken | Response:
        token = self.state.identity.authenticate(request.headers.get("Authorization"))
        if isinstance(token, str):
            description = None
            if token.startswith("TokenExpired"):
                description = f"The token expired at '{token.split(' at ', 1)[1]}'"
            return unauthorized(token, description)
        return token

    def _connections(self, request: Request) -> Response:
        token = self._bearer(request)
        if isinstance(token, Response):
            return token
        return json_response(self.state.identity.connections(token, request.args.get("authEventId")))

    def _delete_connection(self, request: Request) -> Response:
        token = self._bearer(request)
        if isinstance(token, Response):
            return token
        if not self.state.identity.delete_connection(token, request.path.rstrip("/").rsplit("/", 1)[1]):
            return not_found()
        return Response(status=204)

    # --- accounting ------------------------------------------------------------------------------------

    def _api(self, request: Request, endpoint: str, key: str | None, sub_key: str | None = None) -> Response:
        token = self._bearer(request)
        if isinstance(token, Response):
            return token
        tenant_id = self.state.identity.tenant_for(token, request.headers.get("xero-tenant-id"))
        tenant = self.state.store.tenant(tenant_id) if tenant_id else None
        if tenant is None:
            return forbidden()
        verdict = self.state.limiter.acquire(tenant.tenant_id, token.app.client_id)
        if not verdict.allowed:
            self.state.stats.rate_limited(verdict.problem or "")
            response = json_response({"Title": "Too Many Requests", "Status": 429,
                                      "Detail": f"Rate limit exceeded: {verdict.problem}"}, 429)
        else:
            call = ApiCall(request, tenant, self.state.clock.now(), token.app.name, key, sub_key=sub_key)
            try:
                response = self._with_faults(request, lambda: self._run(call, endpoint), api=True,
                                             tenant=tenant.tenant_id)
            finally:
                self.state.limiter.release(tenant.tenant_id)
            self.state.stats.served(call.collection, call.records_served, call.asked_page_size)
        response.headers.update(verdict.headers())
        response.headers["Xero-Correlation-Id"] = str(uuid.uuid4())
        return response

    @staticmethod
    def _run(call: ApiCall, endpoint: str) -> Response:
        try:
            return HANDLERS[endpoint](call)
        except QueryParseError as exc:
            return query_parse_error(str(exc))
        except TooManyIds:
            return not_found()
        except BadParameter as exc:
            return validation_error(str(exc))
