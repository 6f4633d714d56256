"""One checked SFTP connection per batch: pinned host key, authenticated, import directory writable.

Fabric's `Connection` trusts any host key it has not seen (it installs paramiko's `AutoAddPolicy`), so
before `open()` we replace the policy with a rejecting one and load only the pinned key: a mismatch or
an unknown key stops the handshake before any credential is sent. Fabric is also kept from reading
`~/.ssh/config` and the agent, so what connects is exactly what the target says.
"""

from __future__ import annotations

import contextlib
import io
import stat
import uuid
from types import TracebackType
from typing import Any, Final, NoReturn

from fabric import Config, Connection
from paramiko import ECDSAKey, Ed25519Key, PKey, RejectPolicy, RSAKey, SFTPClient, SSHClient
from paramiko.config import SSHConfig
from paramiko.ssh_exception import SSHException

from connector.errors import SftpRejected
from connector.secret import Secret
from connector.sftp.failures import TRANSLATED, translated
from connector.sftp.target import SftpTarget, fingerprint, parse_public_key

#: Prefix of the empty file created and removed to prove the import directory is writable.
PROBE_PREFIX: Final = ".connector-probe-"


class _PinnedOnlyPolicy(RejectPolicy):
    """Refuses a server with no pinned key, naming the key it offered so an operator can verify it."""

    def __init__(self, target: SftpTarget) -> None:
        self._target = target

    def missing_host_key(self, client: SSHClient, hostname: str, key: PKey) -> NoReturn:
        raise SftpRejected(
            f"connecting to {self._target.address}: no host key is pinned for this target; the server "
            f"offered {fingerprint(key)} ({key.get_name()}): verify it with the server's operator and pin it"
        )


class SftpSession:
    """An open, checked SFTP session to one target; use it as a context manager around a whole batch.

    Connecting costs a TCP and SSH handshake, authentication and a few round trips (about 0.13 s on
    loopback), so deliver every file of a batch through one session and never connect per bill.
    """

    def __init__(self, target: SftpTarget, *, check_writable: bool = True) -> None:
        self.target = target
        self.check_writable = check_writable
        self._conn: Any = None
        self._sftp: SFTPClient | None = None

    def __enter__(self) -> SftpSession:
        return self.open()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "open" if self._sftp is not None else "closed"
        return f"SftpSession({self.target.username}@{self.target.address}:{self.target.import_dir}, {state})"

    @property
    def sftp(self) -> SFTPClient:
        """The paramiko SFTP client; only valid while the session is open."""
        if self._sftp is None:
            raise RuntimeError("the SFTP session is not open")
        return self._sftp

    def path(self, name: str) -> str:
        """Remote path of `name` inside the import directory."""
        return self.target.remote_path(name)

    def open(self) -> SftpSession:
        """Connect, verify the host key, authenticate, then check the import directory."""
        if self._sftp is not None:
            return self
        target = self.target
        conn = Connection(
            host=target.host,
            port=target.port,
            user=target.username,
            config=Config(ssh_config=SSHConfig(), lazy=True),
            connect_kwargs=_connect_kwargs(target),
        )
        client: SSHClient = conn.client
        client.set_missing_host_key_policy(_PinnedOnlyPolicy(target))
        if target.host_key:
            key = parse_public_key(target.host_key)
            known_as = target.host if target.port == 22 else f"[{target.host}]:{target.port}"
            client.get_host_keys().add(known_as, key.get_name(), key)
        self._conn = conn
        try:
            with translated(f"connecting to {target.username}@{target.address}"):
                conn.open()
                sftp: SFTPClient = conn.sftp()
                channel = sftp.get_channel()
                if channel is not None:  # a stalled server must not hang a worker forever
                    channel.settimeout(target.timeout)
            self._sftp = sftp
            self._check_import_dir()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Close the session; safe to call twice and on a connection the server already dropped."""
        conn, self._conn, self._sftp = self._conn, None, None
        if conn is not None:
            with contextlib.suppress(*TRANSLATED):  # the server may be gone already: nothing left to close
                conn.close()

    def _check_import_dir(self) -> None:
        """Fail fast, with a reason a person can act on, if files could not land in the import directory.

        Creating and removing one empty, uniquely named dot-file is the only check that holds on every
        server (ACLs, chroots and uid mapping make the mode bits unreliable); it costs two round trips
        per connection, not per file.
        """
        target, sftp = self.target, self.sftp
        where = f"import directory {target.import_dir!r} on {target.address}"
        with translated(f"checking {where}"):
            try:
                attrs = sftp.stat(target.import_dir)
            except FileNotFoundError:
                raise SftpRejected(f"{where} does not exist") from None
            if attrs.st_mode is None or not stat.S_ISDIR(attrs.st_mode):
                raise SftpRejected(f"{where} is not a directory")
            if not self.check_writable:
                return
            probe = self.path(f"{PROBE_PREFIX}{uuid.uuid4().hex}.probe")
            try:
                sftp.open(probe, "w").close()
            except PermissionError:
                raise SftpRejected(f"{where} is not writable by {target.username}") from None
            try:
                sftp.remove(probe)
            except PermissionError:
                raise SftpRejected(f"{where} lets {target.username} create but not remove files") from None


def open_session(target: SftpTarget, *, check_writable: bool = True) -> SftpSession:
    """Open and check a session; the caller closes it (or uses it in a `with` block)."""
    return SftpSession(target, check_writable=check_writable).open()


def _connect_kwargs(target: SftpTarget) -> dict[str, object]:
    kwargs: dict[str, object] = {
        "timeout": target.timeout,
        "banner_timeout": target.timeout,
        "auth_timeout": target.timeout,
        "channel_timeout": target.timeout,
        "allow_agent": False,
        "look_for_keys": False,
    }
    if target.private_key:
        kwargs["pkey"] = load_private_key(target.private_key, f"{target.username}@{target.address}")
    if target.password:
        kwargs["password"] = target.password.reveal()
    return kwargs


def load_private_key(secret: Secret, owner: str) -> PKey:
    """Parse a private key (OpenSSH or PEM; Ed25519, ECDSA or RSA, unencrypted: it is encrypted at rest)."""
    text = secret.reveal()
    for key_class in (Ed25519Key, ECDSAKey, RSAKey):
        try:
            key: PKey = key_class.from_private_key(io.StringIO(text))
        except (SSHException, ValueError, TypeError, IndexError):
            continue
        return key
    # `from None`: the parser's own error must not travel with the key material nearby.
    raise SftpRejected(
        f"the private key for {owner} cannot be read "
        "(expected an unencrypted OpenSSH or PEM Ed25519, ECDSA or RSA key)"
    ) from None
