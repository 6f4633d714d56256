"""A batch with the suppliers' documents of its bills: in one ZIP with the data file, or as files in a
folder named after the batch, beside it.

The template asks for the layout (`documents: {layout: zip | folder | none}`), and the data file names
each bill's documents in the column reading `documents`, relative to itself.

- `zip`: a batch whose bills have documents is one archive named after the batch (`<batch>.zip`) holding
  the data file under its own name and each document under `documents/<bill id>/<safe name>`. The
  archive is rendered once and stored with its sha256 like any batch file, so the one commit point of a
  delivery (the rename of the whole ZIP) covers the documents too. The archive is built on disk, each
  document read from the ledger as it goes in, and a file closes at a byte budget of documents
  (`within_budget`), so an archive, and the memory of a worker building or sending it, stays bounded.
- `folder`: the data file goes as usual, and each document as its own file under `<batch>/<bill
  id>/<safe name>` (the batch's folder is the data file's name without its extension). Which document
  goes where is fixed in the ledger when the batch is rendered (`batch_documents`); delivery uploads every
  document (`.part`, size check, rename) before the data file, whose rename stays the batch's one commit
  point: Stampli never sees a bill whose document is still uploading.

Either way every retry and replay sends the same bytes under the same names. A batch with no document
goes as the bare data file, as before.
"""

from __future__ import annotations

import tempfile
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from connector.domain.attachments import bills_within_budget, unique_names
from connector.errors import RetryableError
from connector.stampli import Template
from connector.store import attachments as store
from connector.store.db import Session
from connector.store.models import AttachmentRow

FIXED_TIME: Final = (2000, 1, 1, 0, 0, 0)  # every entry's date: the same bytes for the same batch
ZIP: Final = "zip"
FOLDER: Final = "folder"
ZIP_ROOT: Final = "documents"
SPOOL_BYTES: Final = 1024 * 1024  # an archive larger than this is built on disk, not in memory

#: Each bill's documents as (name relative to the data file, the attachment kept in the ledger).
Documents = dict[str, list[tuple[str, AttachmentRow]]]


def carries_documents(template: Template) -> bool:
    return template.documents_layout in (ZIP, FOLDER)


def folder_of(data_name: str) -> str:
    """The batch's folder beside its data file: the data file's name without its extension."""
    return data_name.rsplit(".", 1)[0]


def documents_for(session: Session, tenant_id: str, invoice_ids: Iterable[str], template: Template,
                  data_name: str) -> Documents:
    """Each bill's documents, named as the template's layout places them, when the template carries any."""
    if not carries_documents(template):
        return {}
    root = ZIP_ROOT if template.documents_layout == ZIP else folder_of(data_name)
    found = store.documents_of(session, tenant_id, invoice_ids)
    entries = [(invoice_id, row) for invoice_id in sorted(found) for row in found[invoice_id]]
    names = unique_names(((invoice_id, row.file_name) for invoice_id, row in entries), root=root)
    documents: Documents = {}
    for (invoice_id, row), name in zip(entries, names, strict=True):
        documents.setdefault(invoice_id, []).append((name, row))
    return documents


def within_budget(session: Session, tenant_id: str, bill_ids: Sequence[int], template: Template,
                  budget: int) -> list[int]:
    """The first of these bills (in claim order) whose documents together fit one file's byte budget
    (CONNECTOR_MAX_FILE_DOCUMENT_BYTES), decided from the sizes in the ledger: the rest wait for the next
    file. A bill over the budget alone still goes, alone."""
    if not carries_documents(template):
        return list(bill_ids)
    sizes = store.document_bytes(session, tenant_id, bill_ids)
    return list(bill_ids[:bills_within_budget([sizes.get(i, 0) for i in bill_ids], budget)])


def pack(session: Session, tenant_id: str, data_name: str, data: bytes,
         documents: Mapping[str, list[tuple[str, AttachmentRow]]]) -> tuple[str, bytes] | None:
    """(the archive's name, its bytes) for a batch carrying documents, or None when it carries none. The
    archive is written to a temporary file, each document read from the ledger just before it goes in, so
    the documents are never all in memory at once: only the finished archive is (the ledger keeps it)."""
    if not any(documents.values()):
        return None
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
        with zipfile.ZipFile(spool, "w") as archive:
            _add(archive, data_name, data, zipfile.ZIP_DEFLATED)
            for invoice_id in sorted(documents):
                for name, row in documents[invoice_id]:
                    content = store.document_content(session, tenant_id, row.attachment_id)
                    if content is None:  # gone since it was listed: the claim rolls back and is made again
                        raise RetryableError(f"document {row.attachment_id} of bill {invoice_id} left the ledger "
                                             "while its file was built")
                    _add(archive, name, content, zipfile.ZIP_STORED)
                    del content
        spool.seek(0)
        return f"{folder_of(data_name)}.zip", spool.read()


def place(session: Session, batch_id: int, documents: Mapping[str, list[tuple[str, AttachmentRow]]]) -> None:
    """Fix in the ledger which document goes where in the batch's folder (the `folder` layout)."""
    store.place_in_batch(session, batch_id, ((name, invoice_id, row) for invoice_id in sorted(documents)
                                             for name, row in documents[invoice_id]))


def _add(archive: zipfile.ZipFile, name: str, content: bytes, method: int) -> None:
    info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
    info.compress_type = method
    info.external_attr = 0o644 << 16
    archive.writestr(info, content)
