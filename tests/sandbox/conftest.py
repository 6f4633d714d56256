"""Fixtures for the Xero sandbox's own tests: running sandboxes, a thin HTTP client and Xero's schemas."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from openapi_schema_validator import OAS30ReadValidator, oas30_format_checker

from sandbox.xero import XeroSandbox

#: Xero's OpenAPI documents, kept next to the checkout (override with CONNECTOR_XERO_SPECS).
SPECS = Path(os.environ.get("CONNECTOR_XERO_SPECS") or Path(__file__).resolve().parents[3] / "shared/reference/xero")


@dataclass
class Client:
    """A signed-in API client for one sandbox: refreshes once, then calls with a bearer token."""

    sandbox: XeroSandbox
    consent: dict[str, Any]
    session: requests.Session = field(default_factory=requests.Session)
    access_token: str = ""
    refresh_token: str = ""

    def __post_init__(self) -> None:
        self.refresh_token = self.consent["refresh_token"]
        self.refresh()

    @property
    def urls(self) -> dict[str, str]:
        return self.consent["urls"]

    @property
    def tenant_id(self) -> str:
        return self.consent["tenant_ids"][0]

    def token(self, **form: str) -> requests.Response:
        return self.session.post(self.urls["token"], data=form,
                                 auth=(self.consent["client_id"], self.consent["client_secret"]))

    def refresh(self) -> dict[str, Any]:
        answer = self.token(grant_type="refresh_token", refresh_token=self.refresh_token)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        self.access_token, self.refresh_token = body["access_token"], body["refresh_token"]
        return body

    def get(self, endpoint: str, *, tenant: str | None = "", headers: dict[str, str] | None = None,
            **params: Any) -> requests.Response:
        """GET an Accounting endpoint; `tenant=None` leaves the tenant header out."""
        sent = {"Authorization": f"Bearer {self.access_token}", "Accept": "application/json"}
        if tenant is not None:
            sent["xero-tenant-id"] = tenant or self.tenant_id
        sent.update(headers or {})
        return self.session.get(f"{self.urls['api']}/{endpoint}", params=params, headers=sent)

    def json(self, endpoint: str, **params: Any) -> dict[str, Any]:
        answer = self.get(endpoint, **params)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def close(self) -> None:
        self.session.close()


@pytest.fixture(scope="session")
def shared() -> Iterator[XeroSandbox]:
    """A read-only sandbox for tests that do not change state (no updates, faults or clock). Its rate
    limits are lifted because many tests share it; test_ratelimit.py uses the real ones."""
    with XeroSandbox(seed=42, tenants=2, bills=250) as sandbox:
        sandbox.set_limits(minute=1_000_000, day=1_000_000, app_minute=1_000_000)
        yield sandbox


@pytest.fixture(scope="session")
def shared_client(shared: XeroSandbox) -> Iterator[Client]:
    client = Client(shared, shared.consent())
    yield client
    client.close()


@pytest.fixture
def fresh() -> Iterator[XeroSandbox]:
    """A small sandbox of its own, for tests that change state."""
    with XeroSandbox(seed=7, tenants=2, bills=60) as sandbox:
        yield sandbox


@pytest.fixture
def client(fresh: XeroSandbox) -> Iterator[Client]:
    c = Client(fresh, fresh.consent())
    yield c
    c.close()


@pytest.fixture(scope="session")
def accounting_spec() -> dict[str, Any]:
    """Xero's Accounting OpenAPI document, parsed once (about 900 KB)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with (SPECS / "xero_accounting.yaml").open(encoding="utf-8") as handle:
        spec: dict[str, Any] = yaml.load(handle, Loader=loader)
    return spec


@pytest.fixture(scope="session")
def identity_spec() -> dict[str, Any]:
    with (SPECS / "xero-identity.yaml").open(encoding="utf-8") as handle:
        spec: dict[str, Any] = yaml.safe_load(handle)
    return spec


def validator(spec: dict[str, Any], schema: str | dict[str, Any]) -> OAS30ReadValidator:
    """A response validator for one schema of `spec` (formats checked), resolving `#/components/...`
    references inside the spec."""
    root = {"$ref": f"#/components/schemas/{schema}"} if isinstance(schema, str) else dict(schema)
    root["components"] = spec["components"]
    return OAS30ReadValidator(root, format_checker=oas30_format_checker)
