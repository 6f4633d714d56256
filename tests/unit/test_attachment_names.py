"""Which of a bill's attachments go to Stampli (off, PDFs, all; a size cap) and the names they go under:
safe for any file system and ZIP reader, close to the original, unique within the batch."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.domain.attachments import (
    AttachmentMode,
    AttachmentPolicy,
    Listed,
    choose,
    parse_listing,
    safe_name,
    unique_names,
)
from connector.sftp.upload import check_path

PDF = Listed("a-1", "invoice.pdf", "application/pdf", 30_000)
BIG = Listed("a-2", "scan.pdf", "application/pdf", 3_000_000)
PHOTO = Listed("a-3", "delivery note.jpg", "image/jpeg", 50_000)


@pytest.mark.parametrize(
    ("policy", "sent", "too_big"),
    [
        pytest.param(AttachmentPolicy(), [], [], id="off-sends-nothing"),
        pytest.param(AttachmentPolicy(AttachmentMode.PDF), [PDF, BIG], [], id="pdfs-only"),
        pytest.param(AttachmentPolicy(AttachmentMode.ALL), [PDF, BIG, PHOTO], [], id="all"),
        pytest.param(AttachmentPolicy(AttachmentMode.PDF, max_bytes=1_000_000), [PDF], [BIG], id="size-cap"),
    ],
)
def test_the_tenant_policy_chooses_what_is_sent(policy: AttachmentPolicy, sent: list[Listed],
                                                too_big: list[Listed]) -> None:
    assert choose(policy, [PDF, BIG, PHOTO]) == (sent, too_big)


def test_the_policy_is_read_from_the_tenant_settings() -> None:
    assert AttachmentPolicy.from_settings({}) == AttachmentPolicy()
    assert AttachmentPolicy.from_settings({"attachments": {"mode": "all", "max_bytes": 5}}) == AttachmentPolicy(
        AttachmentMode.ALL, 5)


@pytest.mark.parametrize(
    ("original", "safe"),
    [
        ("Invoice #123 [final].pdf", "Invoice _123 _final.pdf"),
        ("INV/2026/05 – Müller & Söhne GmbH.pdf", "INV_2026_05 – Müller & Söhne GmbH.pdf"),
        ("  scan 7  .pdf", "scan 7.pdf"),
        ("Rechnung №5 (Kopie).PDF", "Rechnung №5 (Kopie).pdf"),
        ("..\\..\\etc\\passwd.pdf", "etc_passwd.pdf"),
        ("請求書 2026年.pdf", "請求書 2026年.pdf"),
        ("invoice:7?*<>|.pdf", "invoice_7.pdf"),
        ("", "document"),
        ("...", "document"),
        ("x" * 300 + ".pdf", "x" * 96 + ".pdf"),
        ("Cafe\u0301.pdf", "Café.pdf"),
    ],
)
def test_names_are_made_safe(original: str, safe: str) -> None:
    assert safe_name(original) == safe
    assert "/" not in safe_name(original)
    assert "\\" not in safe_name(original)
    assert not safe_name(original).startswith(".")


def test_names_are_unique_within_a_batch() -> None:
    names = unique_names([("bill-1", "scan.pdf"), ("bill-1", "scan.pdf"), ("bill-1", "SCAN.pdf"),
                          ("bill-2", "scan.pdf"), ("bill-1", "a/b.pdf"), ("bill-1", "a_b.pdf")])
    assert names == ["documents/bill-1/scan.pdf", "documents/bill-1/scan (2).pdf", "documents/bill-1/SCAN (3).pdf",
                     "documents/bill-2/scan.pdf", "documents/bill-1/a_b.pdf", "documents/bill-1/a_b (2).pdf"]
    assert len({n.lower() for n in names}) == len(names)


def test_a_listing_without_an_id_names_the_field() -> None:
    assert parse_listing({"Attachments": [{"AttachmentID": "a", "FileName": "f.pdf", "MimeType": "application/pdf",
                                           "ContentLength": 9}]}, "bill b") == [Listed("a", "f.pdf",
                                                                                       "application/pdf", 9)]
    with pytest.raises(ValueError, match=r"bill b: Attachments\[1\]\.AttachmentID is missing"):
        parse_listing({"Attachments": [{"FileName": "f.pdf"}]}, "bill b")


def test_in_a_folder_layout_names_sit_under_the_batchs_folder_and_each_part_is_a_plain_name() -> None:
    names = unique_names([("bill-1", "..\\..\\etc\\passwd 7.pdf"), ("bill-1", "INV/2026/7.pdf")],
                         root="stampli_t0_20260101T000000Z_000001")
    assert names == ["stampli_t0_20260101T000000Z_000001/bill-1/etc_passwd 7.pdf",
                     "stampli_t0_20260101T000000Z_000001/bill-1/INV_2026_7.pdf"]
    for name in names:
        check_path(name)  # what delivery accepts: no `..`, no dot-file, no separator inside a part


@pytest.mark.parametrize("original", ["Scan.PART", "invoice.pdf.part", "x.part ", "part", ".part"])
def test_a_document_named_like_a_file_still_uploading_gets_a_name_delivery_takes(original: str) -> None:
    """`.part` is the suffix of a file still uploading (the one name delivery refuses): a document Xero
    holds under such a name keeps it visibly, without ending in it, or its batch could never go."""
    [name] = unique_names([("bill-1", original)], root="stampli_t0_20260101T000000Z_000001")
    assert not name.lower().endswith(".part")
    check_path(name)


@pytest.mark.parametrize("path", ["a/../b.pdf", "a//b.pdf", "/a/b.pdf", "a/.hidden/b.pdf", "a/b.pdf.part",
                                  "a\\b/c.pdf"])
def test_delivery_refuses_a_path_that_is_not_plain_names(path: str) -> None:
    with pytest.raises(ValueError, match="not a deliverable"):
        check_path(path)


#: What a file name may take on the file systems an SFTP import folder sits on (ext4, XFS, APFS, NTFS: 255).
NAME_MAX_BYTES = 255


@pytest.mark.parametrize("original", ["請求書" * 100 + ".pdf", "\U0001F9FE" * 120 + ".pdf", "é" * 300,
                                      "Ünïcödé Rechnung " * 20 + ".jpeg"])
def test_a_long_unicode_name_fits_a_file_systems_name_limit_even_repeated_and_while_uploading(
    original: str, tmp_path: Path,
) -> None:
    """File systems limit a name in bytes, not characters: a hundred CJK characters are 300 bytes. A
    document's name, with a repeat's number and the `.part` it has while uploading, must still fit, or
    its batch could never be delivered in the folder layout (nor unpacked from a ZIP)."""
    names = unique_names([("bill-1", original)] * 12, root="batch")
    for name in names:
        part = name.split("/")[-1] + ".part"
        assert len(part.encode("utf-8")) <= NAME_MAX_BYTES, name
        (tmp_path / part).write_bytes(b"")  # the real file system takes it
    assert len({n.lower() for n in names}) == len(names)
    assert safe_name(original)[:3] == original[:3]  # as close to the original as can be


@pytest.mark.parametrize(("original", "safe"), [("CON.pdf", "_CON.pdf"), ("nul", "_nul"), ("Aux.txt", "_Aux.txt"),
                                                ("com1.PDF", "_com1.pdf"), ("LPT9", "_LPT9"),
                                                ("console.pdf", "console.pdf"), ("CON 1.pdf", "CON 1.pdf")])
def test_a_windows_device_name_is_not_taken_for_a_file(original: str, safe: str) -> None:
    """`CON`, `NUL`, `COM1`... name devices on Windows, whatever their extension: a ZIP unpacked there
    could not hold such a document."""
    assert safe_name(original) == safe
