"""Where and as whom files are delivered: one SFTP target with its pinned host key.

The host key is pinned as an OpenSSH known_hosts value ("ssh-ed25519 AAAA..."), captured once when the
target is set up and checked by an operator. An empty `host_key` means "not pinned yet": connecting is
then refused, with the fingerprint the server offered in the error so an operator can verify and pin it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import posixpath
from dataclasses import dataclass

from paramiko import PKey
from paramiko.pkey import UnknownKeyType
from paramiko.ssh_exception import SSHException

from connector.errors import ConfigurationError
from connector.secret import Secret


@dataclass(frozen=True)
class SftpTarget:
    """Connection settings for one SFTP import folder; secrets stay masked in every repr."""

    host: str
    port: int
    username: str
    import_dir: str
    host_key: str
    password: Secret | None = None
    private_key: Secret | None = None
    timeout: float = 15.0

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not self.host:
            problems.append("SFTP host is empty")
        if not 0 < self.port < 65536:
            problems.append(f"SFTP port {self.port} is out of range")
        if not self.username:
            problems.append("SFTP username is empty")
        if not self.import_dir or "\0" in self.import_dir:
            problems.append("SFTP import directory is empty or invalid")
        if not self.password and not self.private_key:
            problems.append("SFTP target needs a password or a private key")
        if self.timeout <= 0:
            problems.append("SFTP timeout must be positive")
        if self.host_key:
            try:
                parse_public_key(self.host_key)
            except ValueError as exc:
                problems.append(f"SFTP host key: {exc}")
        if problems:
            raise ConfigurationError(problems)

    @property
    def address(self) -> str:
        """host:port as people and logs write it, never with credentials."""
        return f"{self.host}:{self.port}"

    def remote_path(self, name: str) -> str:
        """The remote path of a file directly inside the import directory."""
        return posixpath.join(self.import_dir, name)


def parse_public_key(value: str) -> PKey:
    """Parse "key-type base64 [comment]" into a paramiko public key; ValueError names what is wrong."""
    fields = value.split()
    if len(fields) < 2:
        raise ValueError("expected '<key-type> <base64>' as in a known_hosts line")
    key_type, b64 = fields[0], fields[1]
    try:
        blob = base64.b64decode(b64, validate=True)
    except binascii.Error as exc:
        raise ValueError("the key is not valid base64") from exc
    try:
        key = PKey.from_type_string(key_type, blob)
    except (SSHException, UnknownKeyType, ValueError, IndexError) as exc:
        raise ValueError(f"unsupported or malformed {key_type!r} key") from exc
    if key.get_name() != key_type:
        raise ValueError(f"the key data is not a {key_type!r} key")
    return key


def fingerprint(key: str | PKey) -> str:
    """OpenSSH's SHA256 fingerprint ("SHA256:..." unpadded base64), the form `ssh-keygen -lf` prints."""
    blob = parse_public_key(key).asbytes() if isinstance(key, str) else key.asbytes()
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def public_key_line(key: PKey) -> str:
    """The "key-type base64" form of a key, as pinned in `SftpTarget.host_key`."""
    return f"{key.get_name()} {key.get_base64()}"
