"""A batch with the suppliers' documents of its bills: the data file and the documents in one ZIP.

The template asks for the layout (`documents: {layout: zip | none}`). With `zip`, a batch whose bills
have documents is one archive named after the batch (`<batch>.zip`) holding the data file under its own
name and each document under `documents/<bill id>/<safe name>`, and the data file names each bill's
documents in the column reading `documents`. The archive is rendered once and stored with its sha256
like any batch file, so the one commit point of a delivery (the rename of the whole ZIP) covers the
documents too: Stampli never sees a bill whose document is still uploading, and every retry and replay
sends the same bytes. A batch with no document goes as the bare data file, as before.
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

FIXED_TIME: Final = (2000, 1, 1, 0, 0, 0)  # every entry's date: the same bytes for the same batch


def documents_for(session: Session, tenant_id: str, invoice_ids: Iterable[str],
                  template: Template) -> dict[str, list[tuple[str, bytes]]]:
    """Each bill's documents as (name in the archive, bytes), when the template carries documents."""
    if template.documents_layout != "zip":
        return {}
    found = store.documents_of(session, tenant_id, invoice_ids)
    entries = [(invoice_id, row) for invoice_id in sorted(found) for row in found[invoice_id]]
    names = unique_names((invoice_id, row.file_name) for invoice_id, row in entries)
    documents: dict[str, list[tuple[str, bytes]]] = {}
    for (invoice_id, row), name in zip(entries, names, strict=True):
        documents.setdefault(invoice_id, []).append((name, row.content))
    return documents


def pack(data_name: str, data: bytes, documents: Mapping[str, list[tuple[str, bytes]]]) -> tuple[str, bytes] | None:
    """(the archive's name, its bytes) for a batch carrying documents, or None when it carries none."""
    if not any(documents.values()):
        return None
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        _add(archive, data_name, data, zipfile.ZIP_DEFLATED)
        for invoice_id in sorted(documents):
            for name, content in documents[invoice_id]:
                _add(archive, name, content, zipfile.ZIP_STORED)
    stem = data_name.rsplit(".", 1)[0]
    return f"{stem}.zip", buffer.getvalue()


def _add(archive: zipfile.ZipFile, name: str, content: bytes, method: int) -> None:
    info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
    info.compress_type = method
    info.external_attr = 0o644 << 16
    archive.writestr(info, content)
