"""The broker's epoch: a random id kept inside the broker, so a broker that lost its messages shows it.

Whatever empties the broker (a Redis restart without persistence, a failover to an empty replica,
FLUSHALL, a wiped folder of the embedded filesystem broker) takes the epoch with the messages. The sweeper
compares what it finds here with the newest epoch the ledger remembers (store.sweeps); a missing or
different one means every message may be gone, and it asks for all unfinished work again.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final, Protocol

import redis

from connector.errors import RetryableError
from connector.settings import Settings

REDIS_KEY: Final = "connector:broker-epoch"  # in the broker's own Redis database, beside its queues
FILE_NAME: Final = "broker-epoch"  # in CONNECTOR_BROKER_DIR; not named like a queue's message file

# Set the key only if it still holds what the caller saw ("" for missing); answer what it holds after.
_REPLACE_IF_UNCHANGED: Final = """
local seen = redis.call('GET', KEYS[1])
if (seen == false and ARGV[1] == '') or seen == ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[2])
    return ARGV[2]
end
return seen
"""


class BrokerUnreachable(RetryableError):
    """The broker did not answer while its epoch was read or written; the next sweep tries again."""


class EpochKey(Protocol):
    def read(self) -> str | None:
        """The epoch stored in the broker, or None when it is missing."""

    def replace(self, seen: str | None, new: str) -> str:
        """Store `new` unless another process changed the epoch since it was `seen`; the epoch it holds after."""

    def waiting(self, queue: str) -> int:
        """How many messages wait in `queue` (not those a worker has reserved)."""

    def close(self) -> None: ...


class RedisEpochKey:
    def __init__(self, url: str) -> None:
        self._client = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=10)

    def read(self) -> str | None:
        try:
            value = self._client.get(REDIS_KEY)
        except redis.RedisError as exc:
            raise BrokerUnreachable(f"reading the broker epoch: {exc}") from None
        return value.decode() if isinstance(value, bytes) else None

    def replace(self, seen: str | None, new: str) -> str:
        try:
            value = self._client.eval(_REPLACE_IF_UNCHANGED, 1, REDIS_KEY, seen or "", new)
        except redis.RedisError as exc:
            raise BrokerUnreachable(f"writing the broker epoch: {exc}") from None
        return value.decode() if isinstance(value, bytes) else str(value)

    def waiting(self, queue: str) -> int:
        # kombu keeps a queue as one Redis list per priority step: the name, then name + "\x06\x16" + step.
        keys = [queue, *(f"{queue}\x06\x16{step}" for step in range(1, 10))]
        try:
            with self._client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.llen(key)
                return sum(int(n) for n in pipe.execute())
        except redis.RedisError as exc:
            raise BrokerUnreachable(f"reading the length of queue {queue}: {exc}") from None

    def close(self) -> None:
        self._client.close()


class FileEpochKey:
    """For the embedded broker, whose messages are files in one folder (one process tree uses it)."""

    def __init__(self, folder: Path) -> None:
        self._path = folder / FILE_NAME

    def read(self) -> str | None:
        try:
            return self._path.read_text(encoding="ascii").strip() or None
        except FileNotFoundError:
            return None

    def replace(self, seen: str | None, new: str) -> str:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        if seen is None:
            try:
                with self._path.open("x", encoding="ascii") as file:
                    file.write(new)
                return new
            except FileExistsError:
                return self.read() or new
        current = self.read()
        if current is None:
            return self.replace(None, new)
        if current != seen:
            return current
        temporary = self._path.with_name(f".{FILE_NAME}.{os.getpid()}")
        temporary.write_text(new, encoding="ascii")
        temporary.replace(self._path)
        return new

    def waiting(self, queue: str) -> int:
        # kombu's filesystem transport keeps one file per message, named "<time>_<id>.<queue>.msg".
        folder = self._path.parent
        return sum(1 for _ in folder.glob(f"*.{queue}.msg")) if folder.is_dir() else 0

    def close(self) -> None:
        pass


def epoch_key_for(settings: Settings) -> EpochKey | None:
    """Where this broker keeps its epoch; None for a broker with no place for one (no loss detection)."""
    if settings.broker_url.startswith(("redis://", "rediss://", "unix://")):
        return RedisEpochKey(settings.broker_url)
    if settings.broker_url.startswith("filesystem://"):
        return FileEpochKey(settings.broker_dir)
    return None
