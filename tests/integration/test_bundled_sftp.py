"""The bundled pure-Python SFTP server of `make run`, driven by the connector's own SFTP client.

It must behave like the real thing where delivery depends on it: host key pinned, password and key
login for one user only, files confined to its root, no overwriting rename, and a clean stop.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from connector.errors import SftpRejected, SftpUnavailable
from connector.secret import Secret
from connector.sftp import Outcome, SftpTarget, deliver, fingerprint, open_session
from sandbox.sftp import BundledSftpServer
from tests.support.sftp_fixtures import BundledSftp
from tests.support.sshd import new_ed25519_key

pytestmark = pytest.mark.integration

NAME = "demo_20260101T120000Z_0001.csv"
CONTENT = "InvoiceID,Vendor,Total\r\n7f3c,\"Müller & Co, GmbH\",12.50\r\n".encode()
DIGEST = hashlib.sha256(CONTENT).hexdigest()


@pytest.mark.parametrize("auth", ["password", "key"])
def test_a_file_delivered_lands_inside_the_servers_root(bundled_sftp: BundledSftp, auth: str) -> None:
    with open_session(bundled_sftp.target(auth=auth)) as session:
        outcome = deliver(session, NAME, CONTENT, DIGEST)
    assert outcome.outcome is Outcome.UPLOADED
    folder = bundled_sftp.server.local_path("/stampli/import")
    assert folder == bundled_sftp.server.root / "stampli" / "import"
    assert sorted(p.name for p in folder.iterdir()) == [NAME]
    assert (folder / NAME).read_bytes() == CONTENT


def test_a_second_delivery_of_the_same_file_sends_nothing(bundled_sftp: BundledSftp) -> None:
    with open_session(bundled_sftp.target()) as session:
        first = deliver(session, NAME, CONTENT, DIGEST)
        second = deliver(session, NAME, CONTENT, DIGEST)
    assert (first.outcome, second.outcome) == (Outcome.UPLOADED, Outcome.ALREADY_DELIVERED)


def test_other_content_under_a_delivered_name_is_never_overwritten(bundled_sftp: BundledSftp) -> None:
    final = bundled_sftp.server.local_path(f"/stampli/import/{NAME}")
    final.write_bytes(b"someone else's file")
    with (
        open_session(bundled_sftp.target()) as session,
        pytest.raises(SftpRejected, match="exists with different content"),
    ):
        deliver(session, NAME, CONTENT, DIGEST)
    assert final.read_bytes() == b"someone else's file"
    assert not final.with_name(NAME + ".part").exists()


def test_the_host_key_is_pinned(bundled_sftp: BundledSftp) -> None:
    assert bundled_sftp.server.host_key.startswith("ssh-ed25519 AAAA")
    _, other = new_ed25519_key()
    with pytest.raises(SftpRejected, match="host key mismatch") as caught:
        open_session(bundled_sftp.target(host_key=other))
    assert fingerprint(bundled_sftp.server.host_key) in str(caught.value)


@pytest.mark.parametrize(
    "overrides",
    [
        {"password": Secret("wrong")},
        {"username": "intruder"},
        {"private_key": Secret(new_ed25519_key()[0]), "password": None},
    ],
    ids=["wrong-password", "other-user", "unknown-key"],
)
def test_only_the_configured_user_gets_in(bundled_sftp: BundledSftp, overrides: dict[str, Any]) -> None:
    with pytest.raises(SftpRejected, match="authentication failed"):
        open_session(bundled_sftp.target(**overrides))


def test_the_authorized_key_works_only_for_its_own_user(bundled_sftp: BundledSftp) -> None:
    with pytest.raises(SftpRejected, match="authentication failed"):
        open_session(bundled_sftp.target(auth="key", username="intruder"))


def test_clients_are_confined_to_the_root(bundled_sftp: BundledSftp, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("not for clients")
    with open_session(bundled_sftp.target()) as session:
        assert session.sftp.listdir("/") == ["stampli"]
        assert session.sftp.listdir("/../..") == ["stampli"]
        with pytest.raises(FileNotFoundError):
            session.sftp.stat("/../outside.txt")


def test_a_missing_import_folder_is_reported(bundled_sftp: BundledSftp) -> None:
    with pytest.raises(SftpRejected, match="does not exist"):
        open_session(bundled_sftp.target(import_dir="/stampli/nowhere"))


def test_a_stopped_server_is_unavailable_and_its_port_is_free(tmp_path: Path) -> None:
    server = BundledSftpServer(tmp_path, "stampli", "pw", None)
    server.ensure_dir("/in")
    with server:
        port, host_key = server.port, server.host_key
        with open_session(bundled_target(server, port, host_key)):
            pass
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.port
    with pytest.raises(SftpUnavailable, match="refused"):
        open_session(bundled_target(server, port, host_key))
    # The same port can be served again at once.
    again = BundledSftpServer(tmp_path, "stampli", "pw", None, port=port)
    with again, open_session(bundled_target(again, port, again.host_key)):
        pass


def test_stopping_closes_connected_clients(tmp_path: Path) -> None:
    server = BundledSftpServer(tmp_path, "stampli", "pw", None)
    server.ensure_dir("/in")
    server.start()
    session = open_session(bundled_target(server, server.port, server.host_key))
    try:
        server.stop()
        with pytest.raises(SftpUnavailable):
            deliver(session, NAME, CONTENT, DIGEST)
    finally:
        session.close()


def test_a_kept_host_key_file_survives_restarts(tmp_path: Path) -> None:
    key_file = tmp_path / "keys" / "host_ed25519"
    first = BundledSftpServer(tmp_path / "root", "stampli", "pw", None, host_key_file=key_file)
    second = BundledSftpServer(tmp_path / "root", "stampli", "pw", None, host_key_file=key_file)
    assert first.host_key == second.host_key
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert BundledSftpServer(tmp_path / "root", "stampli", "pw", None).host_key != first.host_key


def test_the_server_needs_a_credential_and_tolerates_repeated_start_and_stop(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="password or an authorized key"):
        BundledSftpServer(tmp_path, "stampli", None, None)
    with BundledSftpServer(tmp_path, "stampli", "planted-s3cret", None) as server:
        port = server.port
        server.start()  # already running: nothing happens
        assert server.port == port
        assert "planted-s3cret" not in repr(server)
    server.stop()  # stopping twice is harmless


def test_a_port_in_use_fails_the_start(bundled_sftp: BundledSftp, tmp_path: Path) -> None:
    busy = bundled_sftp.server.port
    with pytest.raises(OSError, match=str(busy)):
        BundledSftpServer(tmp_path, "stampli", "pw", None, port=busy).start()


def test_files_are_created_with_the_servers_umask(bundled_sftp: BundledSftp) -> None:
    with open_session(bundled_sftp.target()) as session:
        deliver(session, NAME, CONTENT, DIGEST)
    mode = bundled_sftp.server.local_path(f"/stampli/import/{NAME}").stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask  # nobody chmod-ed it after upload


# --- faults injected into the server: the client's commit logic under failures OpenSSH rarely shows ---

class _RenameThenFail(asyncssh.SFTPServer):
    """The rename happens, but the reply says it failed (as when the reply is lost)."""

    def rename(self, oldpath: bytes, newpath: bytes) -> None:
        super().rename(oldpath, newpath)
        raise asyncssh.SFTPFailure("injected: reply lost after rename")


class _SomeoneElseCommitsFirst(asyncssh.SFTPServer):
    """Another writer commits the same bytes under the final name just before our rename."""

    def rename(self, oldpath: bytes, newpath: bytes) -> None:
        Path(os.fsdecode(self.map_path(newpath))).write_bytes(Path(os.fsdecode(self.map_path(oldpath))).read_bytes())
        raise asyncssh.SFTPFailure("injected: target exists")


class _RenameFails(asyncssh.SFTPServer):
    def rename(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPFailure("injected: rename failed")


class _FlipsOneByte(asyncssh.SFTPServer):
    """Stores what it is sent with one bit flipped: only reading back can tell."""

    def write(self, file_obj: object, offset: int, data: bytes) -> Any:
        if offset == 0 and data:
            data = bytes([data[0] ^ 1]) + data[1:]
        return super().write(file_obj, offset, data)


class _LosesLaterWrites(asyncssh.SFTPServer):
    """Acknowledges every write after the first 32 KiB request without storing it."""

    def write(self, file_obj: object, offset: int, data: bytes) -> Any:
        if offset > 0:
            return None
        return super().write(file_obj, offset, data)


@pytest.fixture
def faulty(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[SftpTarget, Path]]:
    server = BundledSftpServer(tmp_path / "root", "stampli", "pw", None, sftp_server_class=request.param)
    folder = server.ensure_dir("/in")
    with server:
        yield bundled_target(server, server.port, server.host_key), folder


@pytest.mark.parametrize("faulty", [_RenameThenFail], indirect=True)
def test_a_rename_that_happened_despite_an_error_counts_as_uploaded(faulty: tuple[SftpTarget, Path]) -> None:
    target, folder = faulty
    with open_session(target) as session:
        assert deliver(session, NAME, CONTENT, DIGEST).outcome is Outcome.UPLOADED
    assert sorted(p.name for p in folder.iterdir()) == [NAME]
    assert (folder / NAME).read_bytes() == CONTENT


@pytest.mark.parametrize("faulty", [_SomeoneElseCommitsFirst], indirect=True)
def test_the_same_bytes_committed_by_another_writer_count_as_delivered(faulty: tuple[SftpTarget, Path]) -> None:
    target, folder = faulty
    with open_session(target) as session:
        assert deliver(session, NAME, CONTENT, DIGEST).outcome is Outcome.ALREADY_DELIVERED
    assert sorted(p.name for p in folder.iterdir()) == [NAME]


@pytest.mark.parametrize(
    ("faulty", "reason"),
    [(_RenameFails, "injected: rename failed"), (_FlipsOneByte, "upload corrupted"),
     (_LosesLaterWrites, "upload incomplete")],
    indirect=["faulty"],
    ids=["rename-fails", "byte-flipped", "writes-lost"],
)
def test_a_failed_commit_or_a_bad_upload_leaves_no_file_behind(
    faulty: tuple[SftpTarget, Path], reason: str
) -> None:
    target, folder = faulty
    content = bytes(range(256)) * 400  # several write requests
    failure = SftpRejected if reason == "upload incomplete" else SftpUnavailable
    with open_session(target) as session, pytest.raises(failure, match=reason) as raised:
        deliver(session, NAME, content, hashlib.sha256(content).hexdigest())
    # A refused rename keeps its .part as proof that the commit point was not passed; nothing else stays.
    expected = [f"{NAME}.part"] if raised.value.not_renamed else []
    assert sorted(p.name for p in folder.iterdir()) == expected
    assert raised.value.not_renamed == (reason == "injected: rename failed")


def bundled_target(server: BundledSftpServer, port: int, host_key: str) -> SftpTarget:
    return SftpTarget("127.0.0.1", port, "stampli", "/in", host_key, Secret("pw"), None, timeout=5.0)
