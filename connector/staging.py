"""Local staging of batch files: written atomically (temp file, fsync, rename), never half-written."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from connector.errors import PermanentError


def stage(directory: Path, name: str, content: bytes) -> Path:
    """Write `content` as `directory/name`; an existing file with the same bytes is left as is."""
    return stage_pieces(directory, name, hashlib.sha256(content).hexdigest(), len(content), lambda: (content,))


def stage_pieces(directory: Path, name: str, sha256_hex: str, size: int,
                 pieces: Callable[[], Iterable[bytes]]) -> Path:
    """Make `directory/name` hold the file whose sha256 and size are recorded, writing `pieces()` (read
    only when the file is missing or differs) one at a time: a large file is never held whole. Bytes that
    do not hash to the record are not staged (PermanentError): nothing would be sent from them."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / name
    if final.exists() and final.stat().st_size == size:
        with final.open("rb") as staged:  # compared by sha256, read in pieces: no second copy of a large file
            if hashlib.file_digest(staged, "sha256").hexdigest() == sha256_hex.lower():
                return final
    fd, temp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as handle:
            for piece in pieces():
                digest.update(piece)
                handle.write(piece)
            if digest.hexdigest() != sha256_hex.lower() or handle.tell() != size:
                raise PermanentError(f"{name}: the stored bytes do not match their recorded sha256 and size; "
                                     "not staging them")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, final)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return final
