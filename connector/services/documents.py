"""A batch with the suppliers' documents of its bills: in one ZIP with the data file, or as files in a
folder named after the batch, beside it.

The template asks for the layout (`documents: {layout: zip | folder | none}`), and the data file names
each bill's documents in the column reading `documents`, relative to itself.

- `zip`: a batch whose bills have documents is one archive named after the batch (`<batch>.zip`) holding
  the data file under its own name and each document under `documents/<bill id>/<safe name>`. The
  archive is rendered once and stored with its sha256 like any batch file, so the one commit point of a
  delivery (the rename of the whole ZIP) covers the documents too.
- `folder`: the data file goes as usual, and each document as its own file under `<batch>/<bill
  id>/<safe name>` (the batch's folder is the data file's name without its extension). Which document
  goes where is fixed in the ledger when the batch is rendered (`batch_documents`); delivery uploads every
  document (`.part`, size check, rename) before the data file, whose rename stays the batch's one commit
  point: Stampli never sees a bill whose document is still uploading.

Either way every retry and replay sends the same bytes under the same names. A batch with no document
goes as the bare data file, as before.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Mapping
from typing import Final

from connector.domain.attachments import unique_names
from connector.stampli import Template
from connector.store import attachments as store
from connector.store.db import Session
from connector.store.models import AttachmentRow

FIXED_TIME: Final = (2000, 1, 1, 0, 0, 0)  # every entry's date: the same bytes for the same batch
ZIP: Final = "zip"
FOLDER: Final = "folder"
ZIP_ROOT: Final = "documents"

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


def pack(data_name: str, data: bytes, documents: Mapping[str, list[tuple[str, AttachmentRow]]]
         ) -> tuple[str, bytes] | None:
    """(the archive's name, its bytes) for a batch carrying documents, or None when it carries none."""
    if not any(documents.values()):
        return None
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        _add(archive, data_name, data, zipfile.ZIP_DEFLATED)
        for invoice_id in sorted(documents):
            for name, row in documents[invoice_id]:
                _add(archive, name, row.content, zipfile.ZIP_STORED)
    return f"{folder_of(data_name)}.zip", buffer.getvalue()


def place(session: Session, batch_id: int, documents: Mapping[str, list[tuple[str, AttachmentRow]]]) -> None:
    """Fix in the ledger which document goes where in the batch's folder (the `folder` layout)."""
    store.place_in_batch(session, batch_id, ((name, invoice_id, row) for invoice_id in sorted(documents)
                                             for name, row in documents[invoice_id]))


def _add(archive: zipfile.ZipFile, name: str, content: bytes, method: int) -> None:
    info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
    info.compress_type = method
    info.external_attr = 0o644 << 16
    archive.writestr(info, content)
