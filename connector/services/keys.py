"""Key rotation: re-encrypt every stored secret under the newest Fernet key, while workers keep running.

A row is read, re-encrypted outside any transaction, and written back only if it still holds exactly what
was read (the grant's version and every ciphertext); otherwise it is read again. So a token refresh or a
credential change committed meanwhile is never overwritten by the old secret re-encrypted.
"""

from __future__ import annotations

from cryptography.fernet import InvalidToken

from connector.crypto import Vault
from connector.errors import PermanentError, RetryableError
from connector.services.context import Services
from connector.store.grants import GrantCiphertexts, all_grant_ids, read_ciphertexts, replace_ciphertexts
from connector.store.sftp_targets import (
    SftpCiphertexts,
    all_sftp_target_ids,
    read_sftp_ciphertexts,
    replace_sftp_ciphertexts,
)

ATTEMPTS_PER_ROW = 5  # a grant changes at most every few minutes; losing five races in a row means a bug


class UnreadableSecret(Exception):
    """A stored secret none of the configured keys decrypts; names it (never its value)."""


class KeyRotationIncomplete(PermanentError):
    """Some secrets cannot be decrypted with CONNECTOR_FERNET_KEYS: the key they were sealed with is missing."""


def rotate_keys(services: Services) -> int:
    """Returns how many values were rewritten; old keys can be dropped once this has run without error.

    Every readable secret is rewritten even when some are not; those are named together at the end."""
    rewritten, unreadable = 0, []
    with services.ledger.transaction() as session:
        grant_ids, target_ids = all_grant_ids(session), all_sftp_target_ids(session)
    for grant_id in grant_ids:
        try:
            rewritten += _rotate_grant(services, grant_id)
        except UnreadableSecret as name:
            unreadable.append(str(name))
    for target_id in target_ids:
        try:
            rewritten += _rotate_sftp_target(services, target_id)
        except UnreadableSecret as name:
            unreadable.append(str(name))
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
        rotated = GrantCiphertexts(
            grant_id, read.version,
            client_secret=_reseal(services.vault, read.client_secret, f"{name} (client secret)"),
            refresh_token=_reseal(services.vault, read.refresh_token, f"{name} (refresh token)"),
            access_token=_reseal(services.vault, read.access_token, f"{name} (access token)"),
        )
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
        rotated = SftpCiphertexts(
            target_id,
            password=_reseal(services.vault, read.password, f"{name} (password)"),
            private_key=_reseal(services.vault, read.private_key, f"{name} (private key)"),
        )
        with services.ledger.transaction() as session:
            if replace_sftp_ciphertexts(session, read, rotated):
                return _count(read.password, read.private_key)
    raise RetryableError(f"SFTP target {target_id} kept changing while it was re-encrypted; run the rotation again")


def _reseal(vault: Vault, ciphertext: bytes | None, name: str) -> bytes | None:
    if ciphertext is None:
        return None
    try:
        return vault.rotate(ciphertext)
    except InvalidToken:
        raise UnreadableSecret(name) from None


def _count(*ciphertexts: bytes | None) -> int:
    return sum(1 for c in ciphertexts if c)
