"""Encryption of secrets at rest (Xero tokens, client secrets, SFTP credentials).

MultiFernet so keys can rotate: the first key encrypts, every listed key decrypts, and
`rotate()` re-encrypts a token under the first key. Each key has a short id (`key_id`), a fingerprint
that names it in the ledger and in messages without revealing it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from connector.errors import ConfigurationError, PermanentError
from connector.secret import Secret

KEYS_VARIABLE = "CONNECTOR_FERNET_KEYS"
_KEY_ID_CONTEXT = b"connector fernet key id\x00"  # so the id is no plain hash another tool might also publish


def key_id(key: Secret) -> str:
    """A 12-hex-digit fingerprint of a Fernet key: names it (in the ledger, in messages), never reveals it."""
    return hashlib.sha256(_KEY_ID_CONTEXT + key.reveal().strip().encode()).hexdigest()[:12]


def key_problems(keys: Sequence[Secret]) -> list[str]:
    """What is wrong with each key, naming the variable and the key's position, never the value."""
    problems = []
    for position, key in enumerate(keys, start=1):
        try:
            raw = base64.urlsafe_b64decode(key.reveal().encode("ascii"))
        except (binascii.Error, ValueError, UnicodeEncodeError):
            raw = b""
        if len(raw) != 32:
            problems.append(f"{KEYS_VARIABLE}: key {position} of {len(keys)} is not a Fernet key (32 bytes in url-safe"
                            " base64, 44 characters); generate one with `connector keys new`")
    return problems


class UnreadableSecret(PermanentError):
    """A stored secret none of the configured keys decrypts: the key it was sealed with is missing from the
    list. Names the secret (grant N, SFTP target M), never its value; a person must put the key back."""

    def __init__(self, secret: str, key_ids: Sequence[str]) -> None:
        super().__init__(
            f"{secret} cannot be decrypted with the keys in {KEYS_VARIABLE} (key ids {', '.join(key_ids)}): the key "
            f"it was encrypted with is missing; put it back in the list, after the newest")
        self.secret = secret


class Vault:
    """Encrypts and decrypts small secrets with the configured Fernet keys (newest first)."""

    def __init__(self, keys: Sequence[Secret]) -> None:
        if not keys:
            raise ConfigurationError([f"{KEYS_VARIABLE} is empty: at least one key is required"])
        problems = key_problems(keys)
        if problems:
            raise ConfigurationError(problems)
        self._fernet = MultiFernet([Fernet(key.reveal().encode()) for key in keys])
        self.key_ids: tuple[str, ...] = tuple(key_id(key) for key in keys)

    def encrypt(self, plaintext: str) -> bytes:
        return self._fernet.encrypt(plaintext.encode())

    def decrypt(self, token: bytes, *, secret: str) -> Secret:
        """`secret` names what is decrypted ("grant 3 (refresh token)"), for the error if no key fits."""
        try:
            return Secret(self._fernet.decrypt(token).decode())
        except InvalidToken:
            raise UnreadableSecret(secret, self.key_ids) from None

    def rotate(self, token: bytes, *, secret: str) -> bytes:
        """Re-encrypt under the newest key, for key rotation."""
        try:
            return self._fernet.rotate(token)
        except InvalidToken:
            raise UnreadableSecret(secret, self.key_ids) from None

    @staticmethod
    def new_key() -> str:
        return Fernet.generate_key().decode()
