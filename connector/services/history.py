"""Per-bill answers for an operator, without SQL: why a bill is where it is, what happened to it and
which file carried it (with that file's delivery attempts); the audit as rows; a file replayed by name."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from connector.domain.attachments import unique_names
from connector.domain.reasons import render_with_next_try
from connector.domain.states import BillState
from connector.errors import NotFound
from connector.services.context import Services
from connector.services.deliver import DeliveryReport
from connector.services.replay import ReplayRefused, replay_invoice
from connector.store.attachments import documents_of, placed_in_batches
from connector.store.db import Ledger
from connector.store.history import (
    BillHistory,
    batch_named,
    batches_by_id,
    bill_histories,
    bills_where,
    invoice_ids_in_batch,
)
from connector.store.history import transitions_since as audit_rows
from connector.store.models import AttachmentRow, Batch, Bill, BillTransition

AUDIT_FIELDS = ("at", "tenant_id", "invoice_id", "from_state", "to_state", "reason", "actor", "version", "batch_id",
                "file_name", "mapped_with")


class NoSuchBill(NotFound):
    def __init__(self, invoice: str) -> None:
        super().__init__(f"no bill with Xero InvoiceID or number {invoice!r} in the ledger")


class NoSuchFile(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"no file named {name!r} in the ledger")


def bill_views(ledger: Ledger, invoice: str, tenant_id: str | None = None) -> list[dict[str, Any]]:
    """Each bill with this InvoiceID or number, as a document: state, reasons, transitions, file, attempts."""
    with ledger.transaction() as session:
        histories = bill_histories(session, invoice, tenant_id)
        if not histories:
            raise NoSuchBill(invoice)
        placed = placed_in_batches(session, [h.batch.id for h in histories if h.batch is not None])
        return [_view(history, documents_of(session, history.bill.tenant_id, [history.bill.invoice_id]), placed)
                for history in histories]


def _view(history: BillHistory, documents: dict[str, list[AttachmentRow]],
          placed: Mapping[tuple[int, str], str]) -> dict[str, Any]:
    bill, batch = history.bill, history.batch
    return {
        **bill_summary(bill, documents.get(bill.invoice_id, []), batch, placed),
        "xero_status": bill.xero_status,
        "xero_version": bill.version,
        "mapped_version": bill.mapped_version,
        "mapping_set": bill.mapping_version,
        "mapping_profile_version": bill.mapping_profile_version,
        "flags": list((bill.mapping or {}).get("flags", [])),
        "transitions": [transition_row(t) for t in history.transitions],
        "file": None if batch is None else {
            "name": batch.name, "state": batch.state, "bills": batch.bill_count, "created_at": batch.created_at,
            "delivered_at": batch.delivered_at, "attempts_made": batch.attempts,
            "next_attempt_at": batch.next_attempt_at, "last_error": batch.last_error,
            "attempts": [{"started_at": a.started_at, "ended_at": a.ended_at, "outcome": a.outcome,
                          "error": a.error_message} for a in history.attempts],
        },
    }


def bill_summary(bill: Bill, documents: list[AttachmentRow], batch: Batch | None,
                 placed: Mapping[tuple[int, str], str] | None = None) -> dict[str, Any]:
    """What the bill is (BILL or CREDIT_NOTE), where it stands and why, what a credit note is allocated to,
    and the supplier's documents that go with it: each with its sha256, its path relative to the data file
    (in the archive, or in the batch's folder: `placed`, from `placed_in_batches`) and the file that
    carries it (the batch's ZIP, or the data file its folder goes with), once a batch does."""
    return {"tenant_id": bill.tenant_id, "invoice_id": bill.invoice_id, "invoice_number": bill.invoice_number,
            "document_type": bill.document_type,
            "state": bill.state, "since": bill.state_changed_at,
            "reason_codes": [str(r.get("code")) for r in bill.reasons],
            "reasons": render_with_next_try(bill.reasons,
                                            bill.documents_retry_at if bill.state == BillState.HELD else None),
            "allocations": [{key: a.get(key) for key in ("invoice_id", "invoice_number", "amount", "date")}
                            for a in (bill.mapping or {}).get("allocations", [])],
            "documents": _documents(bill.invoice_id, documents, batch, placed or {})}


def _documents(invoice_id: str, documents: list[AttachmentRow], batch: Batch | None,
               placed: Mapping[tuple[int, str], str]) -> list[dict[str, Any]]:
    # Names in the archive are unique per bill (domain.attachments.unique_names), so the bill's own
    # documents alone give the same paths as the batch that packed them; a folder's are in the ledger.
    carried = batch.name if batch is not None and batch.name.endswith(".zip") else None
    paths = unique_names((invoice_id, row.file_name) for row in documents)
    if batch is not None and any((batch.id, row.attachment_id) in placed for row in documents):
        carried = batch.name
        paths = [placed.get((batch.id, row.attachment_id), "") for row in documents]
    return [{"name": row.file_name, "path": path, "mime_type": row.mime_type, "size": row.size,
             "sha256": row.sha256, "file": carried} for row, path in zip(documents, paths, strict=True)]


def bill_list(ledger: Ledger, *, tenant_id: str | None, state: str | None, reason_code: str | None,
              limit: int | None) -> list[dict[str, Any]]:
    with ledger.transaction() as session:
        found = bills_where(session, tenant_id=tenant_id, state=state, reason_code=reason_code, limit=limit)
        documents: dict[tuple[str, str], list[AttachmentRow]] = {}
        for tenant in {bill.tenant_id for bill in found}:
            ids = [bill.invoice_id for bill in found if bill.tenant_id == tenant]
            for start in range(0, len(ids), 1000):
                for invoice_id, rows in documents_of(session, tenant, ids[start:start + 1000]).items():
                    documents[(tenant, invoice_id)] = rows
        batches = batches_by_id(session, {bill.batch_id for bill in found if bill.batch_id is not None})
        placed = placed_in_batches(session, batches)
        return [bill_summary(bill, documents.get((bill.tenant_id, bill.invoice_id), []),
                             batches.get(bill.batch_id) if bill.batch_id is not None else None, placed)
                for bill in found]


def transition_row(transition: BillTransition) -> dict[str, Any]:
    return {name: getattr(transition, name) for name in AUDIT_FIELDS}


def audit_export(ledger: Ledger, since: datetime | None, tenant_id: str | None = None) -> Iterator[dict[str, Any]]:
    """Every audit row from `since` on, oldest first, streamed."""
    with ledger.transaction() as session:
        for transition in audit_rows(session, since, tenant_id):
            yield transition_row(transition)


def replay_file(services: Services, name: str, *, actor: str) -> DeliveryReport:
    """Replay a stored file by its name: the same bytes under the same name, as a replay of a bill in it."""
    with services.ledger.transaction() as session:
        batch = batch_named(session, name)
        if batch is None:
            raise NoSuchFile(name)
        tenant_id, carried, kind = batch.tenant_id, invoice_ids_in_batch(session, batch.id), batch.kind
    if kind != "bills":  # a master-data file
        from connector.services.masterdata import replay_master_file

        return replay_master_file(services, batch.id, actor=actor)
    if not carried:
        raise ReplayRefused(f"file {name} carries no bill")
    return replay_invoice(services, carried[0], actor=actor, tenant_id=tenant_id)
