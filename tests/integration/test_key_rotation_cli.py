"""Finding 2 of the operator's day: key rotation that cannot strand a worker, on the real PostgreSQL.

Workers record which Fernet keys they hold (a short fingerprint of each key, never the key) with their
heartbeat; `keys rotate` refuses while a live worker lacks the new key and names it; every key is checked
when settings load; a secret that cannot be decrypted is named (grant N, SFTP target M), never shown."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from connector.cli import cli
from connector.crypto import Vault, key_id
from connector.errors import ConfigurationError
from connector.onboarding import add_grant, add_sftp_target, add_tenant
from connector.secret import Secret
from connector.services.keys import forget_worker, record_held_keys
from connector.settings import load_settings
from connector.store.db import Ledger
from connector.store.models import utcnow
from tests.conftest import pg_url_for

TENANT_ID = "11111111-2222-3333-4444-555555555555"
REFRESH_TOKEN = "planted-refresh-token-0711"
SFTP_PASSWORD = "planted-sftp-password-0712"
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


@dataclass
class KeyDesk:
    ledger: Ledger
    env: dict[str, str]
    old_key: str
    new_key: str
    grant_id: int
    target_id: int

    def run(self, *args: str, keys: list[str] | None = None) -> Result:
        env = {**self.env, "CONNECTOR_FERNET_KEYS": ",".join(keys or [self.old_key])}
        return CliRunner().invoke(cli, list(args), env=env)

    def worker(self, name: str, *keys: str, heard_seconds_ago: float = 0) -> None:
        record_held_keys(self.ledger, name, [key_id(Secret(k)) for k in keys],
                         now=utcnow() - timedelta(seconds=heard_seconds_ago))


@pytest.fixture
def desk(pg_schema: str, tmp_path: Path) -> Iterator[KeyDesk]:
    url = pg_url_for(pg_schema)
    old_key, new_key = Vault.new_key(), Vault.new_key()
    env = {"CONNECTOR_DATABASE_URL": url, "CONNECTOR_STAGING_DIR": str(tmp_path / "staging"),
           "CONNECTOR_BROKER_DIR": str(tmp_path / "broker")}
    ledger = Ledger.connect(url)
    vault = Vault([Secret(old_key)])
    grant_id = add_grant(ledger, vault, client_id="client-1", client_secret=Secret("planted-client-secret-0713"),
                         refresh_token=Secret(REFRESH_TOKEN))
    target_id = add_sftp_target(ledger, vault, host="127.0.0.1", port=1, username="stampli", import_dir="/import",
                                host_key=HOST_KEY,
                                password=Secret(SFTP_PASSWORD))
    add_tenant(ledger, tenant_id=TENANT_ID, name="Acme Ltd", short_name="acme", grant_id=grant_id,
               sftp_target_id=target_id)
    yield KeyDesk(ledger, env, old_key, new_key, grant_id, target_id)
    ledger.dispose()


def test_rotation_is_refused_while_a_live_worker_lacks_the_new_key_and_the_worker_is_named(desk: KeyDesk) -> None:
    desk.worker("poll@node-a", desk.old_key)
    desk.worker("sftp@node-b", desk.new_key, desk.old_key)
    result = desk.run("keys", "rotate", keys=[desk.new_key, desk.old_key])
    assert result.exit_code == 4, result.output
    assert "poll@node-a" in result.stderr
    assert "sftp@node-b" not in result.stderr
    assert key_id(Secret(desk.new_key)) in result.stderr
    assert desk.new_key not in result.output
    # nothing was re-encrypted: the old key alone still reads every secret
    assert desk.run("keys", "rotate", "--json", keys=[desk.old_key]).exit_code == 0


def test_rotation_goes_ahead_once_every_live_worker_holds_the_new_key(desk: KeyDesk) -> None:
    desk.worker("poll@node-a", desk.new_key, desk.old_key)
    result = desk.run("keys", "rotate", "--json", keys=[desk.new_key, desk.old_key])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["re_encrypted"] == 3  # client secret, refresh token, SFTP password
    assert desk.run("keys", "rotate", keys=[desk.new_key]).exit_code == 0  # the old key can go


def test_a_worker_silent_past_the_live_window_or_stopped_cleanly_does_not_block_rotation(desk: KeyDesk) -> None:
    desk.worker("poll@gone", desk.old_key, heard_seconds_ago=3600)
    desk.worker("map@stopped", desk.old_key)
    forget_worker(desk.ledger, "map@stopped")
    result = desk.run("keys", "rotate", keys=[desk.new_key, desk.old_key])
    assert result.exit_code == 0, result.output


def test_keys_status_lists_the_configured_key_ids_and_what_each_worker_holds(desk: KeyDesk) -> None:
    desk.worker("poll@node-a", desk.old_key)
    result = desk.run("keys", "status", "--json", keys=[desk.new_key, desk.old_key])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["configured"] == [key_id(Secret(desk.new_key)), key_id(Secret(desk.old_key))]
    [worker] = report["workers"]
    assert worker["worker"] == "poll@node-a"
    assert worker["key_ids"] == [key_id(Secret(desk.old_key))]
    assert worker["live"] is True
    assert worker["has_newest_key"] is False
    assert desk.old_key not in result.output
    assert desk.new_key not in result.output


def test_a_malformed_key_is_refused_when_settings_load_naming_the_variable_never_the_value(desk: KeyDesk) -> None:
    malformed = "not-a-fernet-key-0714"
    with pytest.raises(ConfigurationError) as refused:
        load_settings({"CONNECTOR_FERNET_KEYS": f"{desk.old_key},{malformed}"})
    assert "CONNECTOR_FERNET_KEYS" in str(refused.value)
    assert "key 2" in str(refused.value)
    assert malformed not in str(refused.value)
    result = desk.run("status", keys=[desk.old_key, malformed])
    assert result.exit_code == 2, result.output
    assert "CONNECTOR_FERNET_KEYS" in result.stderr
    assert malformed not in result.output
    assert "Traceback" not in result.output


def test_rotation_with_a_wrong_key_names_every_unreadable_secret_and_shows_none(desk: KeyDesk) -> None:
    result = desk.run("keys", "rotate", keys=[desk.new_key])
    assert result.exit_code == 3, result.output
    assert f"grant {desk.grant_id} (refresh token)" in result.stderr
    assert f"SFTP target {desk.target_id} (password)" in result.stderr
    assert "Traceback" not in result.output
    assert REFRESH_TOKEN not in result.output


def test_a_secret_the_keys_cannot_decrypt_is_named_by_the_check_never_shown(desk: KeyDesk) -> None:
    result = desk.run("check", keys=[desk.new_key])
    assert result.exit_code == 3, result.output
    assert f"grant {desk.grant_id} (client secret) cannot be decrypted" in result.output
    assert f"SFTP target {desk.target_id} (password) cannot be decrypted" in result.output
    assert SFTP_PASSWORD not in result.output
    assert REFRESH_TOKEN not in result.output
