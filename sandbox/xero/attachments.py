"""The suppliers' own documents attached to bills: which bills have them, their names, and their bytes.

Made after the rest of a tenant from their own random streams (one for bills, one for supplier credit
notes), so adding them changed no other record but the `HasAttachments` of those that carry them. About
a third of the bills and half the supplier credit notes carry documents: mostly one PDF (the supplier's
invoice), sometimes a photo of the delivery note beside it, sometimes two scans under one name; about one
in forty PDFs is large (2 to 4 MB). Names are as people and scanners make them: `#`, brackets, slashes,
spaces at the ends, unicode, a path that climbs out of its folder. The bytes are never stored: a PDF of
exactly `content_length` bytes (valid: header, objects, xref, trailer) or a JPEG-framed blob is made from
the attachment's id whenever it is asked for, so 10,000 bills cost no memory and every read is the same.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Final

PDF: Final = "application/pdf"
JPEG: Final = "image/jpeg"
AWKWARD_NAMES: Final = (
    "Invoice #{n} [final].pdf",
    "INV/2026/{n} – Müller & Söhne GmbH.pdf",
    "  scan {n}  .pdf",
    "Rechnung №{n} (Kopie).PDF",
    "..\\..\\etc\\passwd {n}.pdf",
    "請求書 2026年{n}.pdf",
    "invoice:{n}?*<>|.pdf",
    "{n}.pdf",
)
PLAIN_NAMES: Final = ("invoice-{n}.pdf", "Supplier invoice {n}.pdf", "INV{n}.pdf")
BILL_SHARE: Final = 0.33         # of the bills carry documents
CREDIT_NOTE_SHARE: Final = 0.5   # of the supplier credit notes carry the supplier's credit note document


@dataclass(frozen=True, slots=True)
class Attachment:
    attachment_id: str
    file_name: str
    mime_type: str
    content_length: int


def attachments_for(rng: random.Random, new_id: object, number: str, *,
                    share: float = BILL_SHARE) -> tuple[Attachment, ...]:
    """A bill's (or credit note's) documents, on about `share` of them; `new_id` makes ids from the
    tenant's attachment stream."""
    make_id = new_id if callable(new_id) else None
    assert make_id is not None
    roll = rng.random()
    if roll > share:
        return ()
    n = "".join(ch for ch in number if ch.isalnum())[-6:] or str(rng.randrange(1000, 9999))
    names = AWKWARD_NAMES if rng.random() < 0.4 else PLAIN_NAMES
    main = Attachment(str(make_id()), rng.choice(names).format(n=n), PDF, _pdf_size(rng))
    if roll < 0.05:  # a photo of the delivery note beside the invoice
        return main, Attachment(str(make_id()), f"delivery note {n}.jpg", JPEG, rng.randrange(20_000, 120_000))
    if roll < 0.08:  # two scans under one name
        return main, Attachment(str(make_id()), main.file_name, PDF, _pdf_size(rng))
    return (main,)


def _pdf_size(rng: random.Random) -> int:
    return rng.randrange(2_000_000, 4_000_000) if rng.random() < 0.025 else rng.randrange(3_000, 40_000)


def content(attachment: Attachment) -> bytes:
    """The attachment's bytes: always the same for one attachment, exactly `content_length` long."""
    if attachment.mime_type == PDF:
        return _pdf(attachment)
    return _jpeg(attachment)


def sha256(attachment: Attachment) -> str:
    return hashlib.sha256(content(attachment)).hexdigest()


def _filler(attachment: Attachment, size: int) -> bytes:
    return random.Random(attachment.attachment_id).randbytes(max(size, 0))


def _jpeg(attachment: Attachment) -> bytes:
    head = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    tail = b"\xff\xd9"
    return head + _filler(attachment, attachment.content_length - len(head) - len(tail)) + tail


def _pdf(attachment: Attachment) -> bytes:
    text = f"Supplier invoice - {attachment.file_name}".encode("latin-1", "replace")
    text = text.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
    stream = b"BT /F1 14 Tf 50 780 Td (" + text + b") Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]

    def build(padding: bytes) -> bytes:
        out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n" + padding)
        offsets = []
        for number, body in enumerate(objects, start=1):
            offsets.append(len(out))
            out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
        xref = len(out)
        out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
        out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
        out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
        return bytes(out)

    bare = build(b"")
    missing = attachment.content_length - len(bare)
    if missing <= 0:
        return bare
    padding = _padding(attachment, missing)
    made = build(padding)
    # offsets of 10 digits keep the xref the same length, but startxref may grow by a digit: trim to fit
    while len(made) > attachment.content_length and padding:
        padding = padding[:-(len(made) - attachment.content_length)] or b""
        if padding and not padding.endswith(b"\n"):
            padding = padding[:-1] + b"\n"
        made = build(padding)
    return made


def _padding(attachment: Attachment, size: int) -> bytes:
    """`size` bytes of PDF comment lines (each `%` + hex + newline): ignored by every reader."""
    raw = _filler(attachment, size // 2 + 1).hex().encode()
    lines = bytearray()
    while len(lines) < size:
        room = size - len(lines)
        if room < 3:
            lines += b"\n" * room
            break
        chunk = raw[:min(76, room - 2)]
        raw = raw[len(chunk):] or _filler(attachment, 64).hex().encode()
        lines += b"%" + chunk + b"\n"
    return bytes(lines[:size])
