"""Encryption of secrets at rest (Xero tokens, client secrets, SFTP credentials).

MultiFernet so keys can rotate: the first key encrypts, every listed key decrypts, and
`rotate()` re-encrypts a token under the first key.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from connector.errors import ConfigurationError, PermanentError
from connector.secret import Secret


class Vault:
    """Encrypts and decrypts small secrets with the configured Fernet keys (newest first)."""

    def __init__(self, keys: Sequence[Secret]) -> None:
        if not keys:
            raise ConfigurationError(["CONNECTOR_FERNET_KEYS is empty: at least one key is required"])
        try:
            self._fernet = MultiFernet([Fernet(key.reveal().encode()) for key in keys])
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(["CONNECTOR_FERNET_KEYS holds a key that is not a Fernet key"]) from exc

    def encrypt(self, plaintext: str) -> bytes:
        return self._fernet.encrypt(plaintext.encode())

    def decrypt(self, token: bytes) -> Secret:
        try:
            return Secret(self._fernet.decrypt(token).decode())
        except InvalidToken as exc:
            raise PermanentError("a stored secret cannot be decrypted with the configured keys") from exc

    def rotate(self, token: bytes) -> bytes:
        """Re-encrypt under the newest key, for key rotation."""
        return self._fernet.rotate(token)

    @staticmethod
    def new_key() -> str:
        return Fernet.generate_key().decode()
