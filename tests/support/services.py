"""Building real Services over a real database for integration tests."""

from __future__ import annotations

from pathlib import Path

from connector.crypto import Vault
from connector.services.context import Services, build_services
from connector.settings import load_settings


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
