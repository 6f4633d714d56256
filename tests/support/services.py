"""Building real Services over a real database for integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connector.crypto import Vault
from connector.services.context import Services, build_services
from connector.settings import load_settings, xero_url_environment
from tests.conftest import PG_ADMIN_URL


def make_services(database_url: str, tmp_path: Path, *, schema: str | None = None,
                  extra_env: dict[str, str] | None = None) -> Services:
    env = {
        "CONNECTOR_DATABASE_URL": database_url,
        "CONNECTOR_FERNET_KEYS": Vault.new_key(),
        "CONNECTOR_STAGING_DIR": str(tmp_path / "staging"),
        "CONNECTOR_BROKER_DIR": str(tmp_path / "broker"),
        **(extra_env or {}),
    }
    return build_services(load_settings(env), schema=schema)


def services_for_sandbox(sandbox: Any, tmp_path: Path, database: str, *, schema: str | None = None,
                         extra_env: dict[str, str] | None = None) -> Services:
    """Services pointed at a running sandbox, on "sqlite" (a file in tmp_path) or "postgresql" (`schema`)."""
    env = {**xero_url_environment(sandbox.urls), **(extra_env or {})}
    if database == "sqlite":
        return make_services(f"sqlite:///{tmp_path / 'ledger.db'}", tmp_path, extra_env=env)
    return make_services(PG_ADMIN_URL, tmp_path, schema=schema, extra_env=env)


@pytest.fixture(name="services")
def services_on_postgres(pg_schema: str, tmp_path: Path) -> Iterator[Services]:
    """The services on a fresh PostgreSQL schema, as real worker processes share them (end-to-end, chaos)."""
    built = make_services(PG_ADMIN_URL, tmp_path, schema=pg_schema)
    yield built
    built.close()
