"""Checksum files that travel with a Stampli file, for customers whose import verifies what arrived.

The text is exactly what `sha256sum` prints and `sha256sum -c` reads ("<hex>  <name>\\n"), and depends
only on the file's name and bytes, so every retry and replay produces the same sidecar. Delivery uploads
the sidecar just before its data file: the data file's rename then stays the batch's one commit point,
and a receiver that finds the data file also finds its checksum.
"""

from __future__ import annotations

import hashlib

SUFFIX = ".sha256"


def checksum_line(name: str, content: bytes) -> str:
    """One `sha256sum` line for a file; names with a newline or backslash are refused (sha256sum would
    escape them, and no import folder needs them)."""
    return checksum_line_of(name, hashlib.sha256(content).hexdigest())


def checksum_line_of(name: str, sha256_hex: str) -> str:
    """As `checksum_line`, from the file's sha256 (a delivery sends a large file from its staged copy)."""
    if not name or "\n" in name or "\r" in name or "\\" in name or "/" in name:
        raise ValueError(f"{name!r} is not a plain file name")
    return f"{sha256_hex.lower()}  {name}\n"
