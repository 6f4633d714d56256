"""The supplier's documents attached to a bill in Xero: which ones go to Stampli, and under what name. Pure.

Per tenant (mapping settings, `attachments: {mode, max_bytes}`): `off` (the default) sends none, `pdf`
sends the bill's PDFs, `all` every attachment; one larger than `max_bytes` is left out (named in the log
and in the bill's record, never fetched). Names come from people and scanners (`#`, `[]`, slashes,
`..`, unicode, spaces at the ends, two scans under one name): each is made safe for any file system and
for a ZIP (no separators, no control or reserved characters, no leading dot, no Windows device name,
NFC, at most 100 characters and 200 UTF-8 bytes with the extension kept: file systems count a name's
bytes, 255 at most, and a repeat's number and the `.part` of an upload must still fit) and unique
within its batch (the bill's Xero id before it, a number after a repeat).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

DEFAULT_MAX_BYTES: Final = 10 * 1024 * 1024
NAME_LIMIT: Final = 100
NAME_BYTES: Final = 200  # of a file system's 255, leaving room for " (12)" and ".part"
#: Names Windows keeps for devices whatever their extension (`CON.pdf` is the console): prefixed with `_`.
_DEVICES: Final = frozenset({"CON", "PRN", "AUX", "NUL", *(f"COM{n}" for n in range(1, 10)),
                             *(f"LPT{n}" for n in range(1, 10))})
_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|#\[\]%]+')


class AttachmentMode(StrEnum):
    OFF = "off"
    PDF = "pdf"  # the bill's PDFs only
    ALL = "all"


@dataclass(frozen=True)
class AttachmentPolicy:
    mode: AttachmentMode = AttachmentMode.OFF
    max_bytes: int = DEFAULT_MAX_BYTES

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> AttachmentPolicy:
        raw = settings.get("attachments") or {}
        return cls(AttachmentMode(raw.get("mode", AttachmentMode.OFF.value)),
                   int(raw.get("max_bytes", DEFAULT_MAX_BYTES)))

    def wants(self, mime_type: str, file_name: str) -> bool:
        """Whether an attachment of this type is sent at all (its size is judged apart)."""
        if self.mode is AttachmentMode.OFF:
            return False
        if self.mode is AttachmentMode.ALL:
            return True
        return mime_type.lower() == "application/pdf" or file_name.lower().rstrip().endswith(".pdf")


@dataclass(frozen=True)
class Listed:
    """One attachment as Xero lists it for a bill."""

    attachment_id: str
    file_name: str
    mime_type: str
    content_length: int


def choose(policy: AttachmentPolicy, listed: Iterable[Listed]) -> tuple[list[Listed], list[Listed]]:
    """(to send, left out for their size) among the attachments the tenant's mode wants."""
    wanted = [a for a in listed if policy.wants(a.mime_type, a.file_name)]
    return ([a for a in wanted if a.content_length <= policy.max_bytes],
            [a for a in wanted if a.content_length > policy.max_bytes])


def parse_listing(body: Mapping[str, Any], record: str) -> list[Listed]:
    """Xero's `{"Attachments": [...]}`; an entry without an id or a name is a problem naming the field."""
    items = body.get("Attachments")
    if not isinstance(items, list):
        raise ValueError(f"{record}: Xero's answer has no Attachments list")
    found = []
    for number, item in enumerate(items, start=1):
        if not isinstance(item, dict) or not isinstance(item.get("AttachmentID"), str) or not item["AttachmentID"]:
            raise ValueError(f"{record}: Attachments[{number}].AttachmentID is missing")
        length = item.get("ContentLength")
        found.append(Listed(item["AttachmentID"], str(item.get("FileName") or item["AttachmentID"]),
                            str(item.get("MimeType") or "application/octet-stream"),
                            length if isinstance(length, int) and not isinstance(length, bool) else 0))
    return found


#: The extension of a file still uploading (`<name>.part`, renamed once whole): never a document's own.
IN_FLIGHT_EXTENSION = "part"


def safe_name(name: str) -> str:
    """A file name any file system and ZIP reader takes, as close to the original as can be."""
    text = unicodedata.normalize("NFC", name).strip()
    text = _UNSAFE.sub("_", text)
    text = re.sub(r"\s+", " ", text).strip(" .")
    text = re.sub(r"_+", "_", text).strip("_ ") or "document"
    stem, dot, extension = text.rpartition(".")
    if not dot or not stem.strip(" ._") or len(extension) > 10 or not extension.isalnum():
        stem, extension = text, ""
    extension = extension.lower()
    if extension == IN_FLIGHT_EXTENSION:  # a name delivery keeps for files still uploading
        stem, extension = f"{stem}_{extension}", ""
    room = NAME_LIMIT - (len(extension) + 1 if extension else 0)
    room_bytes = NAME_BYTES - (len(extension.encode("utf-8")) + 1 if extension else 0)
    stem = stem.strip(" ._")[:room]
    stem = stem.encode("utf-8")[:room_bytes].decode("utf-8", "ignore").strip(" ._") or "document"
    if stem.split(".")[0].strip().upper() in _DEVICES:
        stem = f"_{stem}"
    return f"{stem}.{extension}" if extension else stem


def unique_names(entries: Iterable[tuple[str, str]], root: str = "documents") -> list[str]:
    """For each (bill id, original name), `<root>/<bill id>/<safe name>`, unique in the batch (a repeat
    of a name within one bill gets ` (2)`, ` (3)`... before its extension). The root is `documents` inside
    a ZIP, the batch's folder (named after the batch) beside the data file."""
    taken: set[str] = set()
    names = []
    for owner, original in entries:
        safe = safe_name(original)
        stem, dot, extension = safe.rpartition(".")
        if not dot:
            stem, extension = safe, ""
        candidate, repeat = safe, 1
        while f"{owner}/{candidate}".lower() in taken:
            repeat += 1
            candidate = f"{stem} ({repeat}).{extension}" if extension else f"{stem} ({repeat})"
        taken.add(f"{owner}/{candidate}".lower())
        names.append(f"{root}/{safe_name(owner)}/{candidate}")
    return names


def bills_within_budget(document_bytes: Sequence[int], budget: int) -> int:
    """How many of these bills (in claim order, each with its documents' bytes) one file carries: it closes
    before the bill whose documents would take it past the budget, so an archive is bounded in bytes and
    so is every worker that builds or sends it. The first bill always goes, even alone over the budget."""
    total = 0
    for count, size in enumerate(document_bytes):
        total += size
        if count and total > budget:
            return count
        if not count and size > budget:
            return 1
    return len(document_bytes)
