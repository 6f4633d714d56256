"""Key rotation: re-encrypt every stored secret under the newest Fernet key, while workers keep running.

A row is read, re-encrypted outside any transaction, and written back only if it still holds exactly what
was read (the grant's version and every ciphertext); otherwise it is read again. So a token refresh or a
credential change committed meanwhile is never overwritten by the old secret re-encrypted.

Rotation is refused while a running worker lacks the newest key: each worker records the ids of the keys
it holds with its heartbeat (`record_held_keys`), and a worker that cannot read the re-encrypted secrets
would fail every poll and delivery it takes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from connector.crypto import UnreadableSecret, Vault
from connector.domain.key_custody import LIVE_FOR, WorkerKeys, stranded_by_rotation
from connector.errors import ActionRefused, PermanentError, RetryableError
from connector.services.context import Services
from connector.store.db import Ledger
from connector.store.grants import GrantCiphertexts, all_grant_ids, read_ciphertexts, replace_ciphertexts
from connector.store.models import utcnow
from connector.store.sftp_targets import (
    SftpCiphertexts,
    all_sftp_target_ids,
    read_sftp_ciphertexts,
    replace_sftp_ciphertexts,
)
from connector.store.worker_keys import forget_worker_keys, record_worker_keys, workers_seen

ATTEMPTS_PER_ROW = 5  # a grant changes at most every few minutes; losing five races in a row means a bug


class KeyRotationIncomplete(PermanentError):
    """Some secrets cannot be decrypted with CONNECTOR_FERNET_KEYS: the key they were sealed with is missing."""


class RotationWouldStrandWorkers(ActionRefused):
    """A running worker lacks the newest key: after the rotation it could read no secret, so it is refused."""


def record_held_keys(ledger: Ledger, worker: str, key_ids: list[str], *, now: datetime | None = None) -> None:
    """A worker says, with its heartbeat, which keys it holds (their ids, never the keys)."""
    with ledger.transaction() as session:
        record_worker_keys(session, worker, key_ids, now or utcnow())


def forget_worker(ledger: Ledger, worker: str) -> None:
    """A worker stopping cleanly: it no longer needs any key."""
    with ledger.transaction() as session:
        forget_worker_keys(session, worker)


def key_custody(ledger: Ledger, vault: Vault, *, now: datetime | None = None) -> dict[str, Any]:
    """The configured key ids here and, per worker recorded, what it holds: for `connector keys status`."""
    now = now or utcnow()
    with ledger.transaction() as session:
        workers = workers_seen(session)
    return {"configured": list(vault.key_ids), "workers": [
        {"worker": w.worker, "key_ids": list(w.key_ids), "live": w.live(now),
         "has_newest_key": vault.key_ids[0] in w.key_ids, "started_at": w.started_at.isoformat(),
         "heartbeat_at": w.heartbeat_at.isoformat(), "heard_seconds_ago": int((now - w.heartbeat_at).total_seconds())}
        for w in workers]}


def refuse_if_workers_lack(ledger: Ledger, newest_key_id: str, *, now: datetime | None = None) -> None:
    now = now or utcnow()
    with ledger.transaction() as session:
        stranded = stranded_by_rotation(workers_seen(session), newest_key_id, now)
    if stranded:
        raise RotationWouldStrandWorkers(
            f"nothing re-encrypted: {len(stranded)} running worker(s) lack the newest key {newest_key_id} and could "
            f"read no secret after the rotation: {'; '.join(_describe(w, now) for w in stranded)}. Restart them with "
            f"the new CONNECTOR_FERNET_KEYS first (a worker killed without a clean stop counts as running until "
            f"{int(LIVE_FOR.total_seconds())} s after its last heartbeat)")


def _describe(worker: WorkerKeys, now: datetime) -> str:
    heard = int((now - worker.heartbeat_at).total_seconds())
    return f"{worker.worker} holds {', '.join(worker.key_ids) or 'no key'} (last heartbeat {heard} s ago)"


def rotate_keys(services: Services) -> int:
    """Returns how many values were rewritten; old keys can be dropped once this has run without error.

    Every readable secret is rewritten even when some are not; those are named together at the end."""
    refuse_if_workers_lack(services.ledger, services.vault.key_ids[0])
    rewritten, unreadable = 0, []
    with services.ledger.transaction() as session:
        grant_ids, target_ids = all_grant_ids(session), all_sftp_target_ids(session)
    for grant_id in grant_ids:
        try:
            rewritten += _rotate_grant(services, grant_id)
        except UnreadableSecrets as failure:
            unreadable += failure.names
    for target_id in target_ids:
        try:
            rewritten += _rotate_sftp_target(services, target_id)
        except UnreadableSecrets as failure:
            unreadable += failure.names
    if unreadable:
        raise KeyRotationIncomplete(
            f"{rewritten} secrets re-encrypted, but no key in CONNECTOR_FERNET_KEYS decrypts "
            f"{', '.join(unreadable)}: put the key they were encrypted with back in the list (after the newest) "
            "and run `connector keys rotate` again, or re-enter those secrets")
    return rewritten


def _rotate_grant(services: Services, grant_id: int) -> int:
    for _ in range(ATTEMPTS_PER_ROW):
        with services.ledger.transaction() as session:
            read = read_ciphertexts(session, grant_id)
        if read is None:
            return 0
        name = f"grant {grant_id}"
        sealed = _reseal_all(services.vault, {f"{name} (client secret)": read.client_secret,
                                              f"{name} (refresh token)": read.refresh_token,
                                              f"{name} (access token)": read.access_token})
        rotated = GrantCiphertexts(grant_id, read.version, *sealed)
        with services.ledger.transaction() as session:
            if replace_ciphertexts(session, read, rotated):
                return _count(read.client_secret, read.refresh_token, read.access_token)
    raise RetryableError(f"grant {grant_id} kept changing while it was re-encrypted; run the rotation again")


def _rotate_sftp_target(services: Services, target_id: int) -> int:
    for _ in range(ATTEMPTS_PER_ROW):
        with services.ledger.transaction() as session:
            read = read_sftp_ciphertexts(session, target_id)
        if read is None:
            return 0
        name = f"SFTP target {target_id}"
        sealed = _reseal_all(services.vault, {f"{name} (password)": read.password,
                                              f"{name} (private key)": read.private_key})
        rotated = SftpCiphertexts(target_id, *sealed)
        with services.ledger.transaction() as session:
            if replace_sftp_ciphertexts(session, read, rotated):
                return _count(read.password, read.private_key)
    raise RetryableError(f"SFTP target {target_id} kept changing while it was re-encrypted; run the rotation again")


class UnreadableSecrets(Exception):
    """The secrets of one row that no configured key decrypts, named (never their values)."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(", ".join(names))
        self.names = names


def _reseal_all(vault: Vault, named: dict[str, bytes | None]) -> list[bytes | None]:
    """Each ciphertext re-encrypted under the newest key, in order; every unreadable one is named at once."""
    sealed: list[bytes | None] = []
    unreadable: list[str] = []
    for name, ciphertext in named.items():
        try:
            sealed.append(None if ciphertext is None else vault.rotate(ciphertext, secret=name))
        except UnreadableSecret:
            unreadable.append(name)
    if unreadable:
        raise UnreadableSecrets(unreadable)
    return sealed


def _count(*ciphertexts: bytes | None) -> int:
    return sum(1 for c in ciphertexts if c)
