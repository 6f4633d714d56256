"""Local staging of batch files: written atomically (temp file, fsync, rename), never half-written."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


def stage(directory: Path, name: str, content: bytes) -> Path:
    """Write `content` as `directory/name`; an existing file with the same bytes is left as is."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / name
    if final.exists() and final.stat().st_size == len(content):
        with final.open("rb") as staged:  # compared by sha256, read in pieces: no second copy of a large file
            if hashlib.file_digest(staged, "sha256").digest() == hashlib.sha256(content).digest():
                return final
    fd, temp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, final)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return final
