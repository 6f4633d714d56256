"""The embedded default's broker (kombu's filesystem transport): a consumer never takes a message file
before its producer has finished writing it.

kombu writes a message in place (open, lock, write) while its consumer renames and reads without the lock,
so a consumer polling in that window read an empty file and the worker died on a JSONDecodeError
(`make run`, with the webhook receiver as one more producer, showed it). Messages are now written under a
name no consumer looks at and renamed into place whole."""

from __future__ import annotations

import builtins
import types
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection
from kombu.transport import filesystem as kombu_filesystem

from connector.crypto import Vault
from connector.settings import load_settings
from workers import filesystem_broker


def channel(folder: Path, transport: type) -> Any:
    connection = Connection("filesystem://", transport=transport, transport_options={
        "data_folder_in": str(folder), "data_folder_out": str(folder), "store_processed": False})
    return connection.default_channel


class PollsBeforeEachWrite:
    """A file whose every write first lets a consumer poll: the window a producer in another process has."""

    def __init__(self, file: Any, poll: Any) -> None:
        self._file, self._poll = file, poll

    def write(self, data: bytes) -> int:
        self._poll()
        return int(self._file.write(data))

    def __enter__(self) -> PollsBeforeEachWrite:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)


@pytest.mark.parametrize("module", [
    pytest.param(kombu_filesystem, marks=pytest.mark.xfail(strict=True, reason="kombu writes in place"), id="kombu"),
    pytest.param(filesystem_broker, id="embedded"),
])
def test_a_message_is_visible_to_consumers_only_once_written_whole(
        tmp_path: Path, module: types.ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    producer, consumer = channel(tmp_path, module.Transport), channel(tmp_path, module.Transport)
    seen_mid_write: list[str] = []

    def poll() -> None:
        try:
            seen_mid_write.append(repr(consumer._get("poll")))
        except Exception as exc:  # Empty, or the JSONDecodeError of a half-written file
            seen_mid_write.append(type(exc).__name__)

    def open_polling(*args: Any, **kwargs: Any) -> PollsBeforeEachWrite:
        return PollsBeforeEachWrite(builtins.open(*args, **kwargs), poll)

    monkeypatch.setattr(module, "open", open_polling, raising=False)
    producer._put("poll", {"body": "wake"})
    monkeypatch.undo()
    assert seen_mid_write
    assert set(seen_mid_write) == {"Empty"}, "no consumer may take a message file before it is whole"
    assert consumer._get("poll") == {"body": "wake"}


def test_the_embedded_default_runs_on_the_whole_file_transport(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"CONNECTOR_FERNET_KEYS": Vault.new_key(), "CONNECTOR_BROKER_DIR": str(tmp_path / "broker"),
           "CONNECTOR_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)  # importing workers.app builds the app from the environment
    from workers.app import celery_config

    settings = load_settings(env, base_dir=tmp_path)
    assert settings.broker_url.startswith("filesystem://")
    assert celery_config(settings)["broker_transport"] == "workers.filesystem_broker:Transport"
