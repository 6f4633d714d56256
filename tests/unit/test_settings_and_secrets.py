"""Settings are read once, validated in full, and never print a secret."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import pytest

from connector.crypto import Vault
from connector.errors import ConfigurationError, PermanentError
from connector.secret import Secret
from connector.settings import ENV_VARS, load_settings

KEY = Vault.new_key()


def test_defaults_are_the_embedded_mode(tmp_path: Path) -> None:
    settings = load_settings({"CONNECTOR_FERNET_KEYS": KEY}, base_dir=tmp_path)
    assert settings.database_url.startswith("sqlite:///")
    assert settings.broker_url == "filesystem://"
    assert settings.xero.api == "https://api.xero.com/api.xro/2.0"


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigurationError) as error:
        load_settings({"CONNECTOR_XERO_PAGE_SIZE": "5000", "CONNECTOR_XERO_TIMEOUT_SECONDS": "soon",
                       "CONNECTOR_XERO_API_URL": "ftp://x"})
    text = str(error.value)
    for name in ("CONNECTOR_FERNET_KEYS", "CONNECTOR_XERO_PAGE_SIZE", "CONNECTOR_XERO_TIMEOUT_SECONDS",
                 "CONNECTOR_XERO_API_URL"):
        assert name in text


def test_printing_settings_never_shows_a_key() -> None:
    settings = load_settings({"CONNECTOR_FERNET_KEYS": KEY})
    assert KEY not in repr(settings)
    assert KEY not in str(settings.describe())


def test_secret_is_masked_and_not_picklable() -> None:
    secret = Secret("hunter2")
    assert "hunter2" not in repr(secret)
    assert "hunter2" not in f"{secret}"
    with pytest.raises(TypeError):
        pickle.dumps(secret)


def test_vault_rotates_to_a_new_key_and_old_tokens_still_read() -> None:
    old = Vault([Secret(KEY)])
    token = old.encrypt("refresh-token")
    new_key = Vault.new_key()
    both = Vault([Secret(new_key), Secret(KEY)])
    rotated = both.rotate(token, secret="test")
    assert Vault([Secret(new_key)]).decrypt(rotated, secret="test").reveal() == "refresh-token"
    with pytest.raises(PermanentError):
        Vault([Secret(Vault.new_key())]).decrypt(token, secret="test")


def test_readme_documents_every_environment_variable() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    documented = set(re.findall(r"`(CONNECTOR_[A-Z_]+)`", readme))
    assert set(ENV_VARS) <= documented, sorted(set(ENV_VARS) - documented)


def test_url_passwords_are_masked_in_every_printable_view() -> None:
    settings = load_settings({
        "CONNECTOR_FERNET_KEYS": KEY,
        "CONNECTOR_DATABASE_URL": "postgresql://app:hunter2@db:5432/ledger",
        "CONNECTOR_BROKER_URL": "redis://:s3cret@redis:6379/0",
    })
    printed = f"{settings!r} {settings.describe()}"
    assert "hunter2" not in printed
    assert "s3cret" not in printed
    assert settings.describe()["database_url"] == "postgresql://app:***@db:5432/ledger"
