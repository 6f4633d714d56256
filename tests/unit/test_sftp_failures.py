"""How SFTP failures are sorted: a person must act, or the next attempt will do."""

from __future__ import annotations

import socket

import pytest
from paramiko.ssh_exception import AuthenticationException

from connector.errors import SftpRejected, SftpUnavailable
from connector.sftp.failures import classify


@pytest.mark.parametrize(
    ("failure", "family"),
    [
        (AuthenticationException("Authentication failed."), SftpRejected),
        # The server went away while we logged in (a restart, sshd stopped): nothing is wrong with the login.
        (AuthenticationException("Authentication failed: transport shut down or saw EOF"), SftpUnavailable),
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), SftpRejected),
        (socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"), SftpUnavailable),
        (ConnectionResetError("reset"), SftpUnavailable),
        (PermissionError("denied"), SftpRejected),
        # A server's text in its locale's encoding (paramiko decodes it strictly as UTF-8): the server's doing.
        (UnicodeDecodeError("utf-8", b"verrouill\xe9", 9, 10, "unexpected end of data"), SftpUnavailable),
    ],
)
def test_each_failure_is_sorted_by_what_the_caller_must_do(failure: BaseException, family: type) -> None:
    assert isinstance(classify(failure, "connecting"), family)
