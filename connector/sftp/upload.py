"""Delivery of one file with a commit point: a file in the import folder is whole, or it is not there.

The steps, each safe to repeat after a crash at any point:

1. Look first. The final name present with our size (and our sha256, read back when the file is small)
   means an earlier attempt committed: report ALREADY_DELIVERED and send nothing. The final name with
   other content is never overwritten: a person must look (SftpRejected).
2. Remove a stale `<name>.part` left by an interrupted attempt.
3. Write `<name>.part` (created exclusively; no chmod afterwards: locked-down servers refuse SETSTAT).
4. Check the remote size, and the sha256 by reading back when the file is at most `readback_limit`
   bytes (OpenSSH has no remote-hash extension, so reading back is the only content check). The size
   check is not optional: paramiko's pipelined writes discard the server's status for most write
   requests and its close() swallows errors, so a full disk shows up only as a short file.
5. Rename `.part` to the final name: the commit point. A plain SFTP rename never overwrites (OpenSSH
   answers a bare "Failure"), so we look before renaming instead of parsing that error.

A failure before the rename removes the `.part` when the connection still allows it; a failed rename, or
a foreign file found under our name at the commit point, leaves it, as proof for the next attempt that
the rename did not happen. Failures surface as
SftpUnavailable (retry) or SftpRejected (stop), sorted in `connector.sftp.failures`.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import socket
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

from paramiko import SFTPClient

from connector.domain.attachments import IN_FLIGHT_EXTENSION
from connector.errors import PermanentError, SftpRejected, SftpUnavailable
from connector.sftp.connection import SftpSession
from connector.sftp.failures import TRANSLATED, classify, translated

PART_SUFFIX: Final = f".{IN_FLIGHT_EXTENSION}"

#: Files up to this size are read back after upload and before "already delivered" is believed.
#: 16 MiB reads back in well under a second on a LAN; bigger files are checked by size alone.
READBACK_LIMIT: Final = 16 * 1024 * 1024

_READ_CHUNK: Final = 1024 * 1024


class Outcome(enum.Enum):
    """What `deliver` did; both mean the final file is on the server, whole."""

    ALREADY_DELIVERED = "already_delivered"
    UPLOADED = "uploaded"


@dataclass(frozen=True)
class UploadOutcome:
    """What the ledger records for a delivery attempt that ended with the file in place."""

    outcome: Outcome
    remote_path: str
    remote_size: int
    sha256_verified: bool


@dataclass(frozen=True)
class RemoteState:
    """What the import folder holds for one file name: sizes of the final file and of its `.part`."""

    final_size: int | None
    part_size: int | None


@dataclass(frozen=True)
class _Source:
    """The bytes to send: their size, and the bytes themselves one piece at a time."""

    size: int
    pieces: Callable[[], Iterator[bytes]]


def _source(content: bytes | Path) -> _Source:
    if isinstance(content, bytes):
        return _Source(len(content), lambda: iter((content,)))

    def read() -> Iterator[bytes]:
        with content.open("rb") as staged:
            while piece := staged.read(_READ_CHUNK):
                yield piece

    return _Source(content.stat().st_size, read)


def _sha256_of(source: _Source) -> str:
    digest = hashlib.sha256()
    for piece in source.pieces():
        digest.update(piece)
    return digest.hexdigest()


def deliver(
    session: SftpSession, name: str, content: bytes | Path, sha256_hex: str, *,
    readback_limit: int = READBACK_LIMIT, before_commit: Callable[[], None] | None = None, final_seen: bool = False,
) -> UploadOutcome:
    """Make `name` hold exactly `content` in the import folder, uploading only if it is not there yet.
    `content` is the bytes, or a local file (a staged batch) read and sent in pieces of 1 MiB, so a large
    file is never held whole.

    `before_commit` runs just before the rename (the commit point), so a caller can record that the file
    may be visible from now on: a crash after the rename then leaves a trace instead of a silent gap.
    `final_seen`: the caller has just seen the final file, so only check it; if it has gone since, the
    importer took it, and sending it again would deliver it twice (SftpUnavailable: look again later).
    `name` may be a path under the import folder (`<batch folder>/<bill>/<file>`); its folders must exist
    (`make_folders`)."""
    check_path(name)
    sha256_hex = sha256_hex.lower()
    source = _source(content)
    if _sha256_of(source) != sha256_hex:
        raise PermanentError(f"{name}: the bytes to deliver do not match their recorded sha256; not sending")
    sftp = session.sftp
    final, part = session.path(name), session.path(name + PART_SUFFIX)
    verify = source.size <= readback_limit
    with translated(f"delivering {name} to {session.target.address}"):
        present = _size(sftp, final)
        if present is not None:
            return _already_there(sftp, final, present, source.size, sha256_hex, verify)
        if final_seen:
            raise SftpUnavailable(f"{final} went away while we looked (taken by the importer); not sending it "
                                  "again: the next attempt reads the folder")
        if _size(sftp, part) is not None:
            sftp.remove(part)
        _write_part(sftp, part, source, sha256_hex, verify)
        if before_commit is not None:
            before_commit()
        return _commit(sftp, part, final, source.size, sha256_hex, verify)


def remote_state(session: SftpSession, name: str) -> RemoteState:
    """Sizes of `name` and `name.part` in the import folder (None when absent), for audits and replays."""
    check_path(name)
    sftp = session.sftp
    with translated(f"inspecting {name} on {session.target.address}"):
        return RemoteState(_size(sftp, session.path(name)), _size(sftp, session.path(name + PART_SUFFIX)))


def remove_part_files(session: SftpSession, names: Iterable[str]) -> list[str]:
    """Remove the `.part` files of these names (ours only, never a whole folder); returns what went."""
    removed: list[str] = []
    sftp = session.sftp
    with translated(f"removing partial uploads on {session.target.address}"):
        for name in names:
            check_name(name)
            part = session.path(name + PART_SUFFIX)
            if _size(sftp, part) is not None:
                sftp.remove(part)
                removed.append(part)
    return removed


def make_folders(session: SftpSession, path: str) -> None:
    """Create the folders of a relative file path under the import folder, each only if it is missing (a
    redelivery finds them there; a folder is never removed or replaced)."""
    check_path(path)
    sftp = session.sftp
    parts = path.split("/")[:-1]
    with translated(f"creating the folders of {path} on {session.target.address}"):
        for depth in range(1, len(parts) + 1):
            folder = session.path("/".join(parts[:depth]))
            if _exists(sftp, folder):
                continue
            try:
                sftp.mkdir(folder)
            except OSError:
                if not _exists(sftp, folder):  # else made by a racing attempt in between: fine
                    raise


def check_path(path: str) -> None:
    """A file name of ours, or a relative path whose every part is a plain name (no `..`, no dot-files)."""
    parts = path.split("/")
    for folder in parts[:-1]:
        if not folder or folder.startswith(".") or any(ch in folder for ch in "\\\0\n\r"):
            raise ValueError(f"not a deliverable file name: {path!r} (each folder in it must be a plain name)")
    check_name(parts[-1])


def check_name(name: str) -> None:
    """Reject names that are not a plain file name of ours: a path, a dot-file, a `.part` name."""
    if (
        not name
        or name.startswith(".")
        or name.endswith(PART_SUFFIX)
        or any(ch in name for ch in "/\\\0\n\r")
    ):
        raise ValueError(f"not a deliverable file name: {name!r}")


def _already_there(
    sftp: SFTPClient, final: str, size: int, ours: int, sha256_hex: str, verify: bool
) -> UploadOutcome:
    if size != ours:
        raise SftpRejected(
            f"{final} exists with different content (remote {size} bytes, ours {ours}); "
            "it is never overwritten: check it with the receiver"
        )
    if verify and _read_back(sftp, final) != sha256_hex:
        raise SftpRejected(
            f"{final} exists with different content (same size, different sha256); "
            "it is never overwritten: check it with the receiver"
        )
    return UploadOutcome(Outcome.ALREADY_DELIVERED, final, size, verify)


def _read_back(sftp: SFTPClient, final: str) -> str:
    """The sha256 of a file we just saw. The importer may take it between our look and our read: that is
    a passing state of the folder (the next attempt looks again), not a problem for a person."""
    try:
        return _sha256(sftp, final)
    except FileNotFoundError as exc:
        raise SftpUnavailable(f"{final} was taken away while we read it back; the next attempt looks again") from exc


def _write_part(sftp: SFTPClient, part: str, source: _Source, sha256_hex: str, verify: bool) -> None:
    # Exclusive create: if another writer raced us to the same .part, fail (and leave theirs alone)
    # rather than interleave two uploads in one file.
    remote = sftp.open(part, "wbx")
    try:
        sent = hashlib.sha256()
        with remote:
            remote.set_pipelined(True)
            for piece in source.pieces():
                sent.update(piece)
                remote.write(piece)
        if sent.hexdigest() != sha256_hex:  # the staged copy changed after it was checked: never committed
            raise SftpUnavailable(f"{part}: the bytes sent do not match their recorded sha256; not committing "
                                  "(the next attempt stages the file again from the ledger)")
        size = _size(sftp, part)
        if size != source.size:
            # The connection still answers, so the server itself refused the rest: a full disk or a quota.
            raise SftpRejected(f"{part}: upload incomplete: the server kept {size} of {source.size} bytes (a full "
                               "disk or a quota on the SFTP server); free space there, then replay the file")
        if verify and _sha256(sftp, part) != sha256_hex:
            raise SftpUnavailable(f"{part}: upload corrupted (sha256 read back differs from what was sent)")
    except OSError as exc:
        _remove_quietly(sftp, part)  # a full disk, for one, leaves a partial file behind
        if _refused_by_a_live_server(sftp, part, exc):
            raise SftpRejected(f"{part}: the server refused the write ({type(exc).__name__}: {exc}); a full disk or "
                               "a quota on the SFTP server is the usual cause: free space there, then replay") from exc
        raise
    except BaseException:
        _remove_quietly(sftp, part)
        raise


def _refused_by_a_live_server(sftp: SFTPClient, part: str, exc: OSError) -> bool:
    """A bare SFTP "Failure" while the connection still answers: the server refused, the network is fine."""
    if isinstance(exc, ConnectionError | TimeoutError | socket.timeout) or exc.errno is not None:
        return False
    try:
        sftp.stat(".")
    except TRANSLATED:
        return False
    return True


def _commit(
    sftp: SFTPClient, part: str, final: str, ours: int, sha256_hex: str, verify: bool
) -> UploadOutcome:
    present = _size(sftp, final)
    if present is not None:  # someone committed between our first look and now
        try:
            outcome = _already_there(sftp, final, present, ours, sha256_hex, verify)
        except SftpRejected as exc:
            # A foreign file holds our name: ours was never renamed, and our .part stays as the proof of
            # it until that is recorded (a vanished .part after the commit marker reads as "renamed").
            exc.not_renamed = True
            raise
        _remove_quietly(sftp, part)
        return outcome
    try:
        sftp.rename(part, final)  # the commit point
    except TRANSLATED as exc:
        # The rename may have happened before the error reached us: the folder is the truth.
        present = _size(sftp, final)
        if present is None:
            error = classify(exc, f"committing {final}")
            # Our .part still there proves the rename did not happen. It stays: after the commit marker
            # only an attempt that has recorded "not renamed" may remove it (see domain.delivery).
            error.not_renamed = _size(sftp, part) is not None
            raise error from exc
        try:
            outcome = _already_there(sftp, final, present, ours, sha256_hex, verify)
        except SftpRejected as exc:
            exc.not_renamed = True  # our rename would have left our bytes there: it did not happen (.part stays)
            raise
        if _size(sftp, part) is None:  # ours went through
            return replace(outcome, outcome=Outcome.UPLOADED)
        _remove_quietly(sftp, part)  # someone else committed the same bytes first
        return outcome
    return UploadOutcome(Outcome.UPLOADED, final, ours, verify)


def _size(sftp: SFTPClient, path: str) -> int | None:
    try:
        attrs = sftp.stat(path)
    except FileNotFoundError:
        return None
    if attrs.st_size is None:
        raise SftpRejected(f"{path}: the server does not report file sizes, so delivery cannot be verified")
    return int(attrs.st_size)


def _exists(sftp: SFTPClient, path: str) -> bool:
    try:
        sftp.stat(path)
    except FileNotFoundError:
        return False
    return True


def _sha256(sftp: SFTPClient, path: str) -> str:
    """Read back a piece of 1 MiB at a time (each piece's requests pipelined): paramiko's prefetch of the
    whole file keeps every answer that arrived before it is read, up to the whole file in memory."""
    digest = hashlib.sha256()
    with sftp.open(path, "rb") as remote:
        size = remote.stat().st_size or 0
        for start in range(0, size, _READ_CHUNK):
            for piece in remote.readv([(start, min(_READ_CHUNK, size - start))]):
                digest.update(piece)
    return digest.hexdigest()


def _remove_quietly(sftp: SFTPClient, path: str) -> None:
    """Best-effort cleanup: the connection may already be gone, and the next attempt removes it anyway."""
    with contextlib.suppress(*TRANSLATED):
        sftp.remove(path)

