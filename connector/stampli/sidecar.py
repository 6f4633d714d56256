"""Checksum files that travel with a Stampli file, for customers whose import verifies what arrived.

The text is exactly what `sha256sum` prints and `sha256sum -c` reads ("<hex>  <name>\\n"), and depends
only on the file's name and bytes, so every retry and replay produces the same sidecar. Deliver the data
file first and the sidecar after it: a receiver that waits for the sidecar then never sees half a file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from connector.stampli.template import Template

SUFFIX = ".sha256"


@dataclass(frozen=True)
class Sidecar:
    """A file to deliver after the data file it describes."""

    name: str
    content: bytes


def checksum_line(name: str, content: bytes) -> str:
    """One `sha256sum` line for a file; names with a newline or backslash are refused (sha256sum would
    escape them, and no import folder needs them)."""
    if not name or "\n" in name or "\r" in name or "\\" in name or "/" in name:
        raise ValueError(f"{name!r} is not a plain file name")
    return f"{hashlib.sha256(content).hexdigest()}  {name}\n"


def sidecar_for(template: Template, name: str, content: bytes) -> Sidecar | None:
    """The sidecar the template asks for (`sidecar: sha256`), or None (`sidecar: none`)."""
    if template.sidecar == "none":
        return None
    return Sidecar(name + SUFFIX, checksum_line(name, content).encode("utf-8"))


def manifest(files: Iterable[tuple[str, bytes]]) -> bytes:
    """A `sha256sum`-format manifest for several files, in the order given (delivery order)."""
    return "".join(checksum_line(name, content) for name, content in files).encode("utf-8")
