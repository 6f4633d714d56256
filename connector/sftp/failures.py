"""The one place where SSH, socket and SFTP failures become `SftpUnavailable` or `SftpRejected`.

Callers branch on the family (retry or stop), so the sorting lives here and nowhere else. Messages
carry the action, the original error class and a short detail; they never carry credentials: nothing
secret reaches this module, and paramiko's own texts name hosts, paths and public keys only.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from paramiko import PKey
from paramiko.ssh_exception import (
    AuthenticationException,
    BadHostKeyException,
    IncompatiblePeer,
    NoValidConnectionsError,
    SSHException,
)

from connector.errors import SftpError, SftpRejected, SftpUnavailable
from connector.sftp.target import fingerprint

#: What the network layers raise; anything else is a bug and must not be dressed up as a delivery error.
#: A UnicodeDecodeError is the server's text: paramiko decodes what a server says (a status's message, a
#: disconnect's reason) strictly as UTF-8, and a server may word a passing failure in its locale's encoding.
TRANSLATED: Final = (OSError, EOFError, SSHException, UnicodeDecodeError)

_DETAIL_LIMIT: Final = 200
_LOST_DURING_LOGIN: Final = "transport shut down or saw EOF"

#: Resolver answers that say the name does not exist (as opposed to EAI_AGAIN, "try again later").
_NAME_DOES_NOT_EXIST: Final = frozenset(
    code for code in (getattr(socket, "EAI_NONAME", None), getattr(socket, "EAI_NODATA", None)) if code is not None
)


def classify(exc: BaseException, action: str) -> SftpError:
    """Sort one failure into retryable (network, server hiccup) or permanent (a person must act)."""
    if isinstance(exc, SftpError):
        return exc
    name = type(exc).__name__
    if isinstance(exc, BadHostKeyException):
        return SftpRejected(
            f"{action}: host key mismatch ({name}): the server offered {_describe_key(exc.key)}, "
            f"the pinned key is {_describe_key(exc.expected_key)}; if the server's key was changed on "
            "purpose, verify the new fingerprint with its operator and pin it"
        )
    if isinstance(exc, AuthenticationException) and _LOST_DURING_LOGIN in str(exc):
        # paramiko's word for a server that went away mid-login (sshd restarting): not a refused login.
        return SftpUnavailable(f"{action}: the connection closed during login ({name}: {_detail(exc)})")
    if isinstance(exc, AuthenticationException):
        return SftpRejected(f"{action}: authentication failed ({name}: {_detail(exc)})")
    if isinstance(exc, IncompatiblePeer):
        return SftpRejected(f"{action}: no SSH algorithm in common with the server ({name}: {_detail(exc)})")
    if isinstance(exc, PermissionError):
        return SftpRejected(f"{action}: permission denied ({name}: {_detail(exc)})")
    if isinstance(exc, FileNotFoundError):
        return SftpRejected(f"{action}: no such file or directory ({name}: {_detail(exc)})")
    if isinstance(exc, socket.gaierror):
        if exc.errno in _NAME_DOES_NOT_EXIST:
            # The resolver answered: there is no such name. A typo in the target, not an outage.
            return SftpRejected(f"{action}: the host name does not exist ({name}: {_detail(exc)}); check the "
                                "SFTP target's host")
        return SftpUnavailable(f"{action}: the host name could not be resolved now ({name}: {_detail(exc)})")
    if isinstance(exc, NoValidConnectionsError):
        return SftpUnavailable(f"{action}: connection refused or host unreachable ({name})")
    if isinstance(exc, TimeoutError):
        return SftpUnavailable(f"{action}: timed out ({name}: {_detail(exc)})")
    if isinstance(exc, ConnectionError | EOFError):
        return SftpUnavailable(f"{action}: connection lost ({name}: {_detail(exc)})")
    if isinstance(exc, SSHException):
        return SftpUnavailable(f"{action}: SSH session failed ({name}: {_detail(exc)})")
    if isinstance(exc, UnicodeDecodeError):
        # Not a bug of ours to FAIL the file for (connector.errors.DEFECTS): what the server said is lost,
        # so it is taken as any failure the server reports, and tried again.
        return SftpUnavailable(f"{action}: the server answered in another encoding than UTF-8 ({name}: "
                               f"{_detail(exc)})")
    if isinstance(exc, OSError):
        # OpenSSH answers a full disk, a quota and many other server-side problems with a bare
        # "Failure" status and no errno: treat them as transient and keep the evidence in the text.
        return SftpUnavailable(f"{action}: the server reported a failure ({name}: {_detail(exc)})")
    return SftpUnavailable(f"{action}: unexpected failure ({name})")


@contextmanager
def translated(action: str) -> Iterator[None]:
    """Run a block of SFTP calls, re-raising network and server failures as `SftpError`s."""
    try:
        yield
    except SftpError:
        raise
    except TRANSLATED as exc:
        raise classify(exc, action) from exc


def _detail(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or "no detail"
    return text if len(text) <= _DETAIL_LIMIT else text[: _DETAIL_LIMIT - 3] + "..."


def _describe_key(key: object) -> str:
    if isinstance(key, PKey):
        return f"{fingerprint(key)} ({key.get_name()})"
    return "an unreadable key"
