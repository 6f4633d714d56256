"""Read-only Xero Accounting client: one request shape, one place that classifies every answer."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import requests
from urllib3.exceptions import ReadTimeoutError

from connector.domain.backoff import backoff
from connector.errors import (
    XeroRateLimited,
    XeroRequestRejected,
    XeroTenantDisconnected,
    XeroTimedOut,
    XeroTokenExpired,
    XeroUnavailable,
)
from connector.secret import Secret
from connector.xero.budget import RateBudget
from connector.xero.dates import if_modified_since

log = logging.getLogger(__name__)

INLINE_ATTEMPTS = 3  # a 5xx or a dropped connection is tried this often before the task backs off (a timeout once)
INLINE_PAUSE_CAP = 2.0  # seconds: a worker never sleeps longer than this between tries


class XeroApi:
    """GETs against the Accounting API for one tenant with a given access token."""

    def __init__(self, http: requests.Session, api_url: str, timeout: float, budget: RateBudget) -> None:
        self._http = http
        self._api_url = api_url.rstrip("/")
        self._timeout = timeout
        self._budget = budget

    def get(
        self,
        token: Secret,
        tenant_id: str,
        endpoint: str,
        params: Mapping[str, str | int],
        *,
        modified_since: datetime | None = None,
    ) -> dict[str, Any]:
        headers = {
            "Authorization": f"Bearer {token.reveal()}",
            "xero-tenant-id": tenant_id,
            "Accept": "application/json",
        }
        if modified_since is not None:
            headers["If-Modified-Since"] = if_modified_since(modified_since)
        for attempt in range(1, INLINE_ATTEMPTS + 1):
            try:
                return self._send(tenant_id, endpoint, params, headers)
            except XeroUnavailable as exc:  # a blip: retried here, briefly; a longer outage goes to the task
                if isinstance(exc, XeroTimedOut):
                    raise  # a hang is no blip: one timeout per try of the task, never three
                pause = backoff(attempt + 1, base=0.25, cap=INLINE_PAUSE_CAP, retry_after=exc.retry_after)
                if attempt == INLINE_ATTEMPTS or (exc.retry_after or 0) > INLINE_PAUSE_CAP:
                    raise
                log.info("%s; trying again in %.1fs", exc, pause)
                time.sleep(pause)
        raise AssertionError("unreachable")

    def get_file(self, token: Secret, tenant_id: str, endpoint: str, mime_type: str) -> bytes:
        """A file's bytes (an attachment), through the same budget, retries and classification as `get`."""
        headers = {"Authorization": f"Bearer {token.reveal()}", "xero-tenant-id": tenant_id, "Accept": mime_type}
        for attempt in range(1, INLINE_ATTEMPTS + 1):
            try:
                return self._send_raw(tenant_id, endpoint, headers)
            except XeroUnavailable as exc:
                if isinstance(exc, XeroTimedOut):
                    raise
                pause = backoff(attempt + 1, base=0.25, cap=INLINE_PAUSE_CAP, retry_after=exc.retry_after)
                if attempt == INLINE_ATTEMPTS or (exc.retry_after or 0) > INLINE_PAUSE_CAP:
                    raise
                log.info("%s; trying again in %.1fs", exc, pause)
                time.sleep(pause)
        raise AssertionError("unreachable")

    def _send_raw(self, tenant_id: str, endpoint: str, headers: dict[str, str]) -> bytes:
        url = f"{self._api_url}/{endpoint}"
        with self._budget.call(tenant_id):
            try:
                response = self._http.get(url, headers=headers, timeout=self._timeout)
            except (requests.Timeout, requests.ConnectionError) as exc:
                raise _unanswered(exc, endpoint, tenant_id) from None
        self._budget.observe(tenant_id, response.headers)
        if response.status_code == 200:
            return response.content
        try:
            _classify(response, endpoint, tenant_id)
        except XeroRateLimited as limited:
            self._budget.rejected(tenant_id, limited.problem, limited.retry_after)
            raise
        raise XeroUnavailable(f"Xero {endpoint} (tenant {tenant_id}): unexpected answer")

    def _send(self, tenant_id: str, endpoint: str, params: Mapping[str, str | int],
              headers: dict[str, str]) -> dict[str, Any]:
        url = f"{self._api_url}/{endpoint}"
        with self._budget.call(tenant_id):
            try:
                response = self._http.get(url, params=dict(params), headers=headers, timeout=self._timeout)
            except (requests.Timeout, requests.ConnectionError) as exc:
                raise _unanswered(exc, endpoint, tenant_id) from None
        self._budget.observe(tenant_id, response.headers)
        try:
            return _classify(response, endpoint, tenant_id)
        except XeroRateLimited as limited:
            self._budget.rejected(tenant_id, limited.problem, limited.retry_after)
            raise


def _unanswered(exc: requests.Timeout | requests.ConnectionError, endpoint: str, tenant_id: str) -> XeroUnavailable:
    """A request that got no whole answer. A timeout is a hang, whether before the headers or while the
    body stalls after them (requests reports the latter as a ConnectionError wrapping urllib3's
    ReadTimeoutError); anything else is a dropped connection, a blip."""
    if isinstance(exc, requests.Timeout) or any(isinstance(arg, ReadTimeoutError) for arg in exc.args):
        return XeroTimedOut(f"Xero {endpoint} (tenant {tenant_id}): {type(exc).__name__} (timed out)")
    return XeroUnavailable(f"Xero {endpoint}: {type(exc).__name__}")


def is_last_page(body: Mapping[str, Any], page: int, count: int, page_size: int) -> bool:
    """A short page is the last; so is the page Xero's `pagination.pageCount` names, saving the empty call."""
    if count < page_size:
        return True
    pagination = body.get("pagination")
    if isinstance(pagination, dict) and isinstance(pagination.get("pageCount"), int):
        return page >= int(pagination["pageCount"])
    return False


def _classify(response: requests.Response, endpoint: str, tenant_id: str) -> dict[str, Any]:
    status = response.status_code
    where = f"Xero {endpoint} (tenant {tenant_id})"
    if status == 200:
        try:
            body = response.json()
        except ValueError:
            raise XeroUnavailable(f"{where}: answer is not JSON") from None
        if not isinstance(body, dict):
            raise XeroUnavailable(f"{where}: answer is not a JSON object")
        return body
    if status == 429:
        problem = response.headers.get("X-Rate-Limit-Problem", "unknown").lower()
        retry_after = _seconds(response.headers.get("Retry-After"))
        raise XeroRateLimited(f"{where}: rate limited ({problem})", problem=problem, retry_after=retry_after)
    if status == 401:
        raise XeroTokenExpired(f"{where}: 401 unauthorised")
    if status == 403:
        raise XeroTenantDisconnected(f"{where}: 403 AuthenticationUnsuccessful")
    if status >= 500:
        raise XeroUnavailable(f"{where}: HTTP {status}", retry_after=_seconds(response.headers.get("Retry-After")))
    raise XeroRequestRejected(f"{where}: HTTP {status}: {response.text[:200]}")


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None
