"""SFTP delivery against a real OpenSSH sshd: the file in the import folder is whole or absent.

Each test starts its own sshd on a free loopback port with a throwaway host key. The server refuses
SETSTAT and posix-rename, like a locked-down production server, so passing also proves the client never
chmods after upload and never overwrites on rename.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from connector.errors import PermanentError, SftpError, SftpRejected, SftpUnavailable
from connector.secret import Secret
from connector.sftp import (
    Outcome,
    SftpSession,
    deliver,
    fingerprint,
    make_folders,
    open_session,
    remote_state,
    remove_part_files,
)
from tests.support.sshd import Sshd, SystemUser, new_ed25519_key, small_filesystem

pytestmark = pytest.mark.integration

NAME = "acme_20260101T120000Z_0001.csv"


def payload(size: int = 64 * 1024, seed: bytes = b"bills") -> tuple[bytes, str]:
    block = hashlib.sha256(seed).digest() * 64
    content = (block * (size // len(block) + 1))[:size]
    return content, hashlib.sha256(content).hexdigest()


def assert_whole_or_absent(folder: Path, name: str, content: bytes | None) -> None:
    """The invariant every test ends on: no partial upload, and the final file is all or nothing."""
    leftovers = sorted(p.name for p in folder.iterdir() if p.name != name)
    assert leftovers == [], f"unexpected files in the import folder: {leftovers}"
    if content is None:
        assert not (folder / name).exists()
    else:
        assert (folder / name).read_bytes() == content


# --- happy paths -------------------------------------------------------------------------------------

@pytest.mark.parametrize("auth", ["password", "key", "both"])
def test_delivers_a_file_and_commits_it_under_its_final_name(sshd: Sshd, import_dir: Path, auth: str) -> None:
    content, digest = payload()
    with open_session(sshd.target(import_dir, auth=auth)) as session:
        outcome = deliver(session, NAME, content, digest)
    assert outcome.outcome is Outcome.UPLOADED
    assert outcome.remote_size == len(content)
    assert outcome.sha256_verified
    assert outcome.remote_path == f"{import_dir}/{NAME}"
    assert_whole_or_absent(import_dir, NAME, content)


def test_one_session_delivers_a_whole_batch(sshd: Sshd, import_dir: Path) -> None:
    files = {f"acme_20260101T120000Z_{n:04d}.csv": payload(1000 + n, bytes([n])) for n in range(5)}
    with open_session(sshd.target(import_dir)) as session:
        outcomes = [deliver(session, name, content, digest) for name, (content, digest) in files.items()]
    assert {o.outcome for o in outcomes} == {Outcome.UPLOADED}
    assert sorted(p.name for p in import_dir.iterdir()) == sorted(files)
    assert sshd.log().count("Starting session: subsystem 'sftp'") == 1


def test_an_empty_file_is_delivered_whole(sshd: Sshd, import_dir: Path) -> None:
    with open_session(sshd.target(import_dir)) as session:
        assert deliver(session, NAME, b"", hashlib.sha256(b"").hexdigest()).outcome is Outcome.UPLOADED
    assert_whole_or_absent(import_dir, NAME, b"")


# --- host keys ---------------------------------------------------------------------------------------

def test_a_mismatched_host_key_is_refused_naming_both_fingerprints(sshd: Sshd, import_dir: Path) -> None:
    _, impostor = new_ed25519_key()
    with pytest.raises(SftpRejected) as caught:
        open_session(sshd.target(import_dir, host_key=impostor))
    message = str(caught.value)
    assert "host key mismatch" in message
    assert fingerprint(sshd.host_key) in message  # offered
    assert fingerprint(impostor) in message  # expected
    assert "Accepted" not in sshd.log()  # no credential was sent...
    assert "Failed" not in sshd.log()  # ...nor tried


def test_an_unpinned_host_is_refused_naming_the_offered_fingerprint(sshd: Sshd, import_dir: Path) -> None:
    with pytest.raises(SftpRejected, match="no host key is pinned") as caught:
        open_session(sshd.target(import_dir, host_key=""))
    assert fingerprint(sshd.host_key) in str(caught.value)
    assert "Accepted" not in sshd.log()


def test_a_pinned_key_of_another_type_is_refused(sshd: Sshd, import_dir: Path) -> None:
    ecdsa = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    with pytest.raises(SftpRejected, match="host key mismatch") as caught:
        open_session(sshd.target(import_dir, host_key=ecdsa))
    assert fingerprint(sshd.host_key) in str(caught.value)
    assert fingerprint(ecdsa) in str(caught.value)


# --- authentication and the import folder ------------------------------------------------------------

def test_a_wrong_password_is_rejected(sshd: Sshd, import_dir: Path) -> None:
    with pytest.raises(SftpRejected, match="authentication failed"):
        open_session(sshd.target(import_dir, password=Secret("not-the-password")))


def test_an_unauthorised_key_is_rejected(sshd: Sshd, import_dir: Path) -> None:
    stranger, _ = new_ed25519_key()
    with pytest.raises(SftpRejected, match="authentication failed"):
        open_session(sshd.target(import_dir, auth="key", private_key=Secret(stranger)))


def test_a_password_is_rejected_when_the_server_only_takes_keys(
    sftp_workspace: Path, sftp_user: SystemUser, import_dir: Path
) -> None:
    server = Sshd(sftp_workspace / "keys-only", sftp_user, password_auth=False).start()
    try:
        with pytest.raises(SftpRejected, match="authentication failed"):
            open_session(server.target(import_dir))
        with open_session(server.target(import_dir, auth="both")):
            pass  # the key still gets in
    finally:
        server.stop()


def test_a_missing_import_directory_is_rejected(sshd: Sshd, import_dir: Path) -> None:
    with pytest.raises(SftpRejected, match="does not exist"):
        open_session(sshd.target(import_dir / "nope"))


def test_an_import_path_that_is_a_file_is_rejected(sshd: Sshd, import_dir: Path) -> None:
    (import_dir / "plain").write_text("x")
    with pytest.raises(SftpRejected, match="is not a directory"):
        open_session(sshd.target(import_dir / "plain"))


def test_a_read_only_import_directory_is_rejected_at_connect(sshd: Sshd, import_dir: Path) -> None:
    import_dir.chmod(0o555)
    with pytest.raises(SftpRejected, match="is not writable"):
        open_session(sshd.target(import_dir))
    assert_whole_or_absent(import_dir, NAME, None)


def test_a_read_only_import_directory_rejects_the_upload(sshd: Sshd, import_dir: Path) -> None:
    import_dir.chmod(0o555)
    content, digest = payload()
    with (
        SftpSession(sshd.target(import_dir), check_writable=False) as session,
        pytest.raises(SftpRejected, match="permission denied"),
    ):
        deliver(session, NAME, content, digest)
    assert_whole_or_absent(import_dir, NAME, None)


def test_a_server_that_refuses_the_rename_rejects_the_commit_and_keeps_the_part_as_proof(
    sftp_workspace: Path, sftp_user: SystemUser, import_dir: Path
) -> None:
    locked = ("setstat", "fsetstat", "lsetstat", "posix-rename", "rename")
    server = Sshd(sftp_workspace / "no-rename", sftp_user, denied_requests=locked).start()
    content, digest = payload()
    try:
        with (
            open_session(server.target(import_dir)) as session,
            pytest.raises(SftpRejected, match=r"committing .* permission denied") as refused,
        ):
            deliver(session, NAME, content, digest)
    finally:
        server.stop()
    assert refused.value.not_renamed  # the .part left behind proves the commit point was not passed
    assert sorted(p.name for p in import_dir.iterdir()) == [f"{NAME}.part"]
    assert not (import_dir / NAME).exists()


# --- the server going away ---------------------------------------------------------------------------

def test_a_server_killed_mid_upload_then_restarted_gets_the_whole_file(sshd: Sshd, import_dir: Path) -> None:
    content, digest = payload(50 * 1024 * 1024)
    part = import_dir / f"{NAME}.part"

    def kill_once_the_upload_is_under_way() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if part.exists() and part.stat().st_size > 1024 * 1024:
                sshd.kill()
                return
            time.sleep(0.002)

    killer = threading.Thread(target=kill_once_the_upload_is_under_way)
    session = open_session(sshd.target(import_dir))
    try:
        killer.start()
        with pytest.raises(SftpUnavailable):
            deliver(session, NAME, content, digest)
    finally:
        killer.join()
        session.close()
    assert not (import_dir / NAME).exists()
    assert 0 < part.stat().st_size < len(content)  # the kill left a partial upload behind

    sshd.start()
    with open_session(sshd.target(import_dir)) as session:
        outcome = deliver(session, NAME, content, digest)
    assert outcome.outcome is Outcome.UPLOADED
    assert_whole_or_absent(import_dir, NAME, content)


def test_a_stopped_server_is_unavailable(sshd: Sshd, import_dir: Path) -> None:
    sshd.stop()
    with pytest.raises(SftpUnavailable, match="refused"):
        open_session(sshd.target(import_dir))


def test_a_host_name_that_does_not_exist_is_rejected_not_retried_for_hours(sshd: Sshd, import_dir: Path) -> None:
    with pytest.raises(SftpRejected, match="host name does not exist"):
        open_session(sshd.target(import_dir, host="sftp.nonexistent.invalid"))


def test_a_server_that_never_answers_times_out(sshd: Sshd, import_dir: Path) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        target = sshd.target(import_dir, port=silent.getsockname()[1], timeout=0.3)
        started = time.monotonic()
        with pytest.raises(SftpUnavailable):
            open_session(target)
    assert time.monotonic() - started < 5


def test_a_full_disk_leaves_no_partial_file(
    sshd: Sshd, sftp_workspace: Path, sftp_user: SystemUser, import_dir: Path
) -> None:
    content, digest = payload(3 * 1024 * 1024)
    with small_filesystem(import_dir / "small", 1024 * 1024, sftp_user) as small:
        # paramiko's pipelined writes drop most write errors, so the full disk shows up as a short
        # .part caught by the size check (or, depending on timing, as the server's bare "Failure"); either
        # way a person must free space: the failure is permanent, not retried for hours.
        with (
            open_session(sshd.target(small)) as session,
            pytest.raises(SftpRejected, match=r"full disk or a quota"),
        ):
            deliver(session, NAME, content, digest)
        assert_whole_or_absent(small, NAME, None)


# --- look first: retries and leftovers ---------------------------------------------------------------

def test_a_file_already_delivered_is_not_sent_again(sshd: Sshd, import_dir: Path) -> None:
    content, digest = payload()
    final = import_dir / NAME
    final.write_bytes(content)
    os.utime(final, (1_700_000_000, 1_700_000_000))
    before = final.stat()
    with open_session(sshd.target(import_dir)) as session:
        outcome = deliver(session, NAME, content, digest)
    assert outcome.outcome is Outcome.ALREADY_DELIVERED
    assert outcome.sha256_verified
    after = final.stat()
    assert (after.st_mtime_ns, after.st_ino) == (before.st_mtime_ns, before.st_ino)
    assert_whole_or_absent(import_dir, NAME, content)


def test_a_large_file_already_delivered_is_recognised_by_size(sshd: Sshd, import_dir: Path) -> None:
    content, digest = payload(200_000)
    (import_dir / NAME).write_bytes(content)
    with open_session(sshd.target(import_dir)) as session:
        outcome = deliver(session, NAME, content, digest, readback_limit=100_000)
    assert outcome.outcome is Outcome.ALREADY_DELIVERED
    assert not outcome.sha256_verified


@pytest.mark.parametrize(
    ("existing", "reason"),
    [(b"other bytes", "remote 11 bytes"), (payload(seed=b"other")[0], "different sha256")],
    ids=["other-size", "same-size-other-bytes"],
)
def test_a_file_with_other_content_is_never_overwritten(
    sshd: Sshd, import_dir: Path, existing: bytes, reason: str
) -> None:
    content, digest = payload()
    (import_dir / NAME).write_bytes(existing)
    with (
        open_session(sshd.target(import_dir)) as session,
        pytest.raises(SftpRejected, match=f"exists with different content.*{reason}"),
    ):
        deliver(session, NAME, content, digest)
    assert_whole_or_absent(import_dir, NAME, existing)


def test_a_stale_part_file_is_removed_and_the_upload_starts_again(sshd: Sshd, import_dir: Path) -> None:
    content, digest = payload()
    stale = import_dir / f"{NAME}.part"
    stale.write_bytes(content[:1000] + b"garbage")
    with open_session(sshd.target(import_dir)) as session:
        assert remote_state(session, NAME).part_size == 1007
        outcome = deliver(session, NAME, content, digest)
    assert outcome.outcome is Outcome.UPLOADED
    assert_whole_or_absent(import_dir, NAME, content)


def test_part_files_of_named_batches_can_be_removed(sshd: Sshd, import_dir: Path) -> None:
    (import_dir / f"{NAME}.part").write_bytes(b"half")
    (import_dir / "someone-else.csv.part").write_bytes(b"theirs")
    with open_session(sshd.target(import_dir)) as session:
        removed = remove_part_files(session, [NAME, "never-sent.csv"])
        state = remote_state(session, NAME)
    assert removed == [f"{import_dir}/{NAME}.part"]
    assert (state.final_size, state.part_size) == (None, None)
    assert (import_dir / "someone-else.csv.part").exists()


# --- refusals that need no server reply --------------------------------------------------------------

def test_bytes_that_do_not_match_their_sha256_are_not_sent(sshd: Sshd, import_dir: Path) -> None:
    content, _ = payload()
    with (
        open_session(sshd.target(import_dir)) as session,
        pytest.raises(PermanentError, match="do not match their recorded sha256"),
    ):
        deliver(session, NAME, content, hashlib.sha256(b"something else").hexdigest())
    assert_whole_or_absent(import_dir, NAME, None)


@pytest.mark.parametrize("name", ["", ".hidden.csv", "../up.csv", "a/../../up.csv", "/abs.csv", "a//b.csv",
                                  "a/.hidden/b.csv", "a\\b.csv", "x.csv.part", "a/x.csv.part", "a\nb.csv"])
def test_names_that_are_not_plain_file_names_are_refused(sshd: Sshd, import_dir: Path, name: str) -> None:
    with open_session(sshd.target(import_dir)) as session, pytest.raises(ValueError, match="file name"):
        deliver(session, name, b"x", hashlib.sha256(b"x").hexdigest())


def test_a_path_of_plain_names_lands_in_its_folders_made_once_under_the_import_folder(
        sshd: Sshd, import_dir: Path) -> None:
    """A batch's documents go in a folder named after it (`<batch>/<bill>/<file>`): the folders are made
    when missing and found when an earlier attempt made them."""
    content = b"%PDF-1.4 a supplier's invoice"
    with open_session(sshd.target(import_dir)) as session:
        for _ in range(2):
            make_folders(session, "batch_1/bill-1/invoice.pdf")
            deliver(session, "batch_1/bill-1/invoice.pdf", content, hashlib.sha256(content).hexdigest())
    assert (import_dir / "batch_1" / "bill-1" / "invoice.pdf").read_bytes() == content
    assert sorted(p.name for p in import_dir.rglob("*")) == ["batch_1", "bill-1", "invoice.pdf"]


# --- secrets -----------------------------------------------------------------------------------------

def _texts(exc: BaseException) -> str:
    """Everything a log line or an audit row could show of an exception and its causes."""
    parts: list[str] = []
    seen: BaseException | None = exc
    while seen is not None:
        parts += [str(seen), repr(seen), *map(str, seen.args)]
        seen = seen.__cause__ or seen.__context__
    return "\n".join(parts)


def test_secrets_never_appear_in_errors_or_reprs(
    sshd: Sshd, import_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    password = "planted-Pa55word-7c1e"
    private_key, _ = new_ed25519_key()  # not authorised on the server: authentication fails
    key_body = "".join(private_key.splitlines()[1:-1])
    _, impostor = new_ed25519_key()
    attempts = {
        "wrong password": sshd.target(import_dir, password=Secret(password)),
        "wrong key": sshd.target(import_dir, auth="both", password=Secret(password),
                                 private_key=Secret(private_key)),
        "unreadable key": sshd.target(import_dir, auth="key", private_key=Secret(password + "\n" + private_key[:90])),
        "host key mismatch": sshd.target(import_dir, password=Secret(password), host_key=impostor),
        "refused": sshd.target(import_dir, password=Secret(password), port=1),
    }
    shown: list[str] = []
    for what, target in attempts.items():
        session = SftpSession(target)
        shown += [repr(target), str(target), repr(session)]
        with pytest.raises(SftpError) as caught:
            session.open()
        shown.append(f"{what}: {_texts(caught.value)}")
    shown.append(caplog.text)
    everything = "\n".join(shown)
    assert password not in everything
    assert private_key not in everything
    for line in private_key.splitlines()[1:-1]:
        assert line not in everything
    assert key_body[:40] not in everything
