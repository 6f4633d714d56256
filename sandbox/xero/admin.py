"""The admin API under `/_sandbox/`: drive the sandbox from tests, demos and benchmarks over HTTP.

Not rate limited, not counted in stats and not authenticated (the sandbox listens on loopback by
default). Parameters come from the JSON body, a form body or the query string.

    GET  /_sandbox                      tenants and this route list
    POST /_sandbox/seed                 {seed, tenants, bills}: rebuild the dataset (drops consents)
    POST /_sandbox/reset                back to the seeded data; fresh stats, limits and faults
    POST /_sandbox/update               {tenant_id, modify, add}: change bills, stamped now
    GET  /_sandbox/stats                counters;  POST /_sandbox/stats/reset clears them
    POST /_sandbox/expire-tokens        every access token expires now
    GET  /_sandbox/clock                now and time scale
    POST /_sandbox/clock/advance        {seconds}
    POST /_sandbox/clock/scale          {time_scale}
    GET|POST|DELETE /_sandbox/faults    {error_rate, error_statuses, latency_ms, tenant}; DELETE clears
    POST /_sandbox/faults/fail-next     {path, count, status, after, retry_after, problem, tenant}
    GET|POST /_sandbox/limits           {minute, day, concurrent, app_minute}
    GET  /_sandbox/answer-key?tenant=   {InvoiceID: [PurchaseOrderNumber, ...]}
    GET  /_sandbox/masters?tenant=      accounts, tracking categories and tax rates of a tenant
    POST /_sandbox/consent              {tenant_ids}: a new consent (refresh token)
    POST /_sandbox/custom-connection    {tenant_index}: client-credentials app for one tenant
    GET|POST|DELETE /_sandbox/webhooks  {url, key}: send signed webhooks there (intent to receive first)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from werkzeug.wrappers import Request, Response

from sandbox.xero import msdate, render
from sandbox.xero.responses import json_response
from sandbox.xero.state import SandboxState

Handler = Callable[[SandboxState, Request, dict[str, Any]], Any]


def _params(request: Request) -> dict[str, Any]:
    params: dict[str, Any] = dict(request.args.items())
    if request.mimetype == "application/json" and request.get_data():
        body = json.loads(request.get_data(as_text=True))
        if not isinstance(body, dict):
            raise ValueError("the JSON body must be an object")
        params.update(body)
    else:
        params.update(request.form.items())
    return params


def _int(params: dict[str, Any], name: str, default: int | None = None) -> int | None:
    value = params.get(name)
    return default if value is None or value == "" else int(value)


def _bool(params: dict[str, Any], name: str) -> bool:
    value = params.get(name, False)
    return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")


def _tenant(state: SandboxState, params: dict[str, Any]) -> str:
    tenant = params.get("tenant") or params.get("tenant_id")
    return str(tenant) if tenant else state.store.tenant_ids[0]


def _index(state: SandboxState, request: Request, params: dict[str, Any]) -> Any:
    return {
        "tenants": [{"tenant_id": t.tenant_id, "name": t.name, "bills": len(t.bills)}
                    for t in state.store.dataset.tenants],
        "seed": state.seed,
        "routes": [line.strip() for line in (__doc__ or "").splitlines() if line.strip().startswith(("GET", "POST"))],
    }


def _seed(state: SandboxState, request: Request, params: dict[str, Any]) -> Any:
    state.reseed(_int(params, "seed"), _int(params, "tenants"), _int(params, "bills"))
    return {"seed": state.seed, "tenants": state.tenant_count, "bills": state.bills,
            "tenant_ids": state.store.tenant_ids}


def _reset(state: SandboxState, request: Request, params: dict[str, Any]) -> Any:
    state.reset()
    return {"reset": True, "tenant_ids": state.store.tenant_ids}


def _update(state: SandboxState, request: Request, params: dict[str, Any]) -> Any:
    return state.update(_tenant(state, params), _int(params, "modify", 0) or 0, _int(params, "add", 0) or 0)


def _stats(state: SandboxState, request: Request, params: dict[str, Any]) -> Any:
    if request.method == "POST":
        state.stats.reset()
    return state.stats.snapshot()


def _expire(state: SandboxState, request: Request, params: dict[str, Any]) -> Any:
    return {"expired": state.identity.expire_access_tokens()}


def _clock(state: SandboxState, request: Request, params: dict[str, Any]) -> Any:
    now = state.clock.now()
    return {"now": now.isoformat(), "DateTimeUTC": msdate.envelope_field(now), "time_scale": state.clock.time_scale}


def _advance(state: SandboxState, request: Request, params: dict[str, Any]) -> Any:
    state.clock.advance(float(params.get("seconds", 0)))
    return _clock(state, request, params)


def _scale(state: SandboxState, request: Request, params: dict[str, Any]) -> Any:
    state.clock.set_time_scale(float(params["time_scale"]))
    return _clock(state, request, params)


def _faults(state: SandboxState, request: Request, params: dict[str, Any]) -> Any:
    if request.method == "DELETE":
        state.faults.clear()
    elif request.method == "POST":
        statuses = params.get("error_statuses")
        if isinstance(statuses, str):
            statuses = [int(s) for s in statuses.split(",") if s.strip()]
        rate = params.get("error_rate")
        state.faults.configure(error_rate=None if rate is None else float(rate), error_statuses=statuses,
                               latency_ms=_int(params, "latency_ms"), tenant=params.get("tenant"))
    return state.faults.snapshot()


def _fail_next(state: SandboxState, request: Request, params: dict[str, Any]) -> Any:
    state.faults.fail_next(str(params["path"]), _int(params, "count", 1) or 1, _int(params, "status", 500) or 500,
                           after=_bool(params, "after"), retry_after=_int(params, "retry_after"),
                           problem=params.get("problem"), tenant=params.get("tenant"))
    return state.faults.snapshot()


def _limits(state: SandboxState, request: Request, params: dict[str, Any]) -> Any:
    if request.method == "POST":
        changes = {k: int(params[k]) for k in ("minute", "day", "concurrent", "app_minute") if k in params}
        state.limiter.set_limits(**changes)
    limits = state.limiter.limits
    return {"minute": limits.minute, "day": limits.day, "concurrent": limits.concurrent,
            "app_minute": limits.app_minute}


def _answer_key(state: SandboxState, request: Request, params: dict[str, Any]) -> Any:
    return state.answer_key(_tenant(state, params))


def _masters(state: SandboxState, request: Request, params: dict[str, Any]) -> Any:
    store = state.store.tenant(_tenant(state, params))
    if store is None:
        raise KeyError("unknown tenant")
    tenant = store.tenant
    return {
        "Accounts": [render.account(a) for a in tenant.accounts],
        "TrackingCategories": [render.tracking_category(t, include_archived=True)
                               for t in tenant.tracking_categories],
        "TaxRates": [{"TaxType": r.tax_type, "Name": r.name, "EffectiveRate": str(r.percent)}
                     for r in tenant.tax_rates],
    }


def _consent(state: SandboxState, request: Request, params: dict[str, Any]) -> Any:
    tenant_ids = params.get("tenant_ids")
    if isinstance(tenant_ids, str):
        tenant_ids = [t.strip() for t in tenant_ids.split(",") if t.strip()]
    return state.consent(request.host_url.rstrip("/"), tenant_ids)


def _custom(state: SandboxState, request: Request, params: dict[str, Any]) -> Any:
    return state.custom_connection(request.host_url.rstrip("/"), _int(params, "tenant_index", 0) or 0)


def _webhooks(state: SandboxState, request: Request, params: dict[str, Any]) -> Any:
    if request.method == "POST":
        return state.webhooks.configure(str(params["url"]), params.get("key") or None)
    if request.method == "DELETE":
        state.webhooks.clear()
    return state.webhooks.snapshot()


ROUTES: dict[str, tuple[tuple[str, ...], Handler]] = {
    "": (("GET",), _index),
    "seed": (("POST",), _seed),
    "reset": (("POST",), _reset),
    "update": (("POST",), _update),
    "stats": (("GET",), _stats),
    "stats/reset": (("POST",), _stats),
    "expire-tokens": (("POST",), _expire),
    "clock": (("GET",), _clock),
    "clock/advance": (("POST",), _advance),
    "clock/scale": (("POST",), _scale),
    "faults": (("GET", "POST", "DELETE"), _faults),
    "faults/fail-next": (("POST",), _fail_next),
    "limits": (("GET", "POST"), _limits),
    "answer-key": (("GET",), _answer_key),
    "masters": (("GET",), _masters),
    "consent": (("POST",), _consent),
    "custom-connection": (("POST",), _custom),
    "webhooks": (("GET", "POST", "DELETE"), _webhooks),
}


def handle(state: SandboxState, request: Request) -> Response:
    route = ROUTES.get(request.path[len("/_sandbox"):].strip("/"))
    if route is None:
        return json_response({"error": "no such admin route", "routes": sorted(ROUTES)}, 404)
    methods, handler = route
    if request.method not in methods:
        return json_response({"error": f"use {' or '.join(methods)}"}, 405)
    try:
        return json_response(handler(state, request, _params(request)))
    except KeyError as exc:
        return json_response({"error": f"missing or unknown: {exc}"}, 400)
    except (ValueError, TypeError) as exc:
        return json_response({"error": str(exc)}, 400)
