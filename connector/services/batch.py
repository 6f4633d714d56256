"""assemble_batch: claim READY bills into one file, render it once, store bytes + sha256, stage it.

The claim is a conditional UPDATE (`state = READY AND batch_id IS NULL`) inside the transaction that
creates the batch, so two workers can never put one bill into two files.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any, Final

from connector.domain.naming import batch_file_name
from connector.domain.reasons import Reason
from connector.domain.reasons import render as render_reason
from connector.domain.states import BatchState, BillState
from connector.errors import LedgerContention
from connector.failpoints import failpoint
from connector.services.context import Services
from connector.services.documents import FOLDER, ZIP, carries_documents, documents_for, pack, place, within_budget
from connector.services.messages import AssembleBatch, DeliverBatch, Message
from connector.services.profiles import effective_template
from connector.staging import stage_pieces
from connector.stampli import Template, render
from connector.store import batches as store
from connector.store.audit import BillPage, record
from connector.store.db import CONCURRENT_WRITE, Session
from connector.store.models import Batch, Bill, Tenant

log = logging.getLogger(__name__)

MAX_SEQUENCE_RACES = 5
EVERY_BILL_HELD = 0  # a claim whose every bill the file could not carry: no file, look for more


class _LostRace(Exception):
    """Raised inside the claim transaction to roll it back when another worker won."""


_RACES: tuple[type[Exception], ...] = (*CONCURRENT_WRITE, _LostRace)


#: While a tenant's bills are mapping, every this many bills mapped ask for the files already full.
FULL_FILE_ASK_EVERY: Final = 250


def asks_after_mapping(tenant_id: str, still_to_map: int) -> list[Message]:
    """What a mapping asks of batching, from how many of the tenant's bills are left to map after it: the
    last one asks for the cycle's files (the part-filled one too), and every FULL_FILE_ASK_EVERY-th before
    it for the files already full, so a large first sync makes and delivers its files while it maps
    instead of all of them after its last bill. Each count is seen by one mapping only (store.backlog)."""
    if still_to_map == 0:
        return [AssembleBatch(tenant_id)]
    return [AssembleBatch(tenant_id, full_files=True)] if still_to_map % FULL_FILE_ASK_EVERY == 0 else []


def assemble_batches(services: Services, tenant_id: str, *, bills: bool = True, full_files: bool = False,
                     emit: Callable[[Message], None] | None = None) -> list[Message]:
    """The tenant's master-data files first (their new and changed records: see services.masterdata), then
    as many bill files as the READY bills fill (each at most the tenant's cap); never an empty one. Made
    in this order, a bill file comes after the master data it depends on, and waits for it at delivery.
    With `bills=False`, the master-data files only (the poll's request, while its bills are mapping).
    With `full_files`, only bill files filled to the cap and no master-data file; for a tenant sending
    master data, only of the bills READY before its last finished master-data assemble began
    (services.masterdata.full_files_cutoff), the others waiting for a later one.

    With `emit`, each file's delivery is asked for as soon as the file is staged (and nothing is
    returned): an assemble cut short later (a lost race, a full disk, a killed worker) has already sent
    the files it made, instead of leaving them to the sweeper's next look."""
    from connector.services.masterdata import assemble_master_data, full_files_cutoff, ready_cutoff

    made: list[Message] = []
    send = emit or made.append
    # A bill that became READY after the master-data files were read from the ledger may name a vendor or
    # PO none of them carries: it waits for the next assemble (its mapping asks for one).
    if full_files:  # no master-data file: only bills the last finished master-data assemble covers
        sends_master_data, ready_before = full_files_cutoff(services, tenant_id)
        if sends_master_data and ready_before is None:
            return made
    else:
        ready_before = ready_cutoff(services, tenant_id)
        assemble_master_data(services, tenant_id, read_from=ready_before, emit=send)
    if not bills:
        return made
    races = 0
    while True:
        try:
            batch_id = _claim_one(services, tenant_id, ready_before, full_only=full_files)
        except _RACES as exc:
            races += 1  # another worker took the same sequence number or the same bills: look again
            if races > MAX_SEQUENCE_RACES:
                raise LedgerContention(f"tenant {tenant_id}: another assemble won the file {races} times "
                                       "in a row") from exc
            continue
        if batch_id is None:
            return made
        if batch_id == EVERY_BILL_HELD:
            continue
        stage_batch(services, batch_id)
        send(DeliverBatch(batch_id))
        failpoint("batch.after_staged")  # fault tests stop the assemble here, between two files


def _claim_one(services: Services, tenant_id: str, ready_before: datetime | None = None, *,
               full_only: bool = False) -> int | None:
    with services.ledger.transaction() as session:
        tenant = store.tenant(session, tenant_id)
        candidates = store.ready_bill_ids(session, tenant_id, tenant.max_bills_per_file, ready_before)
        if not candidates or (full_only and len(candidates) < tenant.max_bills_per_file):
            return None
        template = tenant_template(session, tenant)
        candidates = within_budget(session, tenant_id, candidates, template,
                                   services.settings.max_file_document_bytes)
        batch = new_batch(session, tenant, services.clock, template.extension)
        if store.claim_bills(session, candidates, batch.id) == 0:
            raise _LostRace  # another worker claimed these bills first; roll back this batch row
        carried = fill_batch(session, batch, store.bills_in(session, batch.id), template)
        return batch.id if carried else EVERY_BILL_HELD


def tenant_template(session: Session, tenant: Tenant) -> Template:
    """The tenant's Stampli template: its own, else its profile's, else our default CSV."""
    return effective_template(session, tenant)


def new_batch(session: Session, tenant: Tenant, clock: Callable[[], datetime], extension: str, *,
              kind: str = "bills") -> Batch:
    """An empty batch row with the tenant's next sequence number (unique: a racing twin fails). The
    time is read after the sequence is taken, so a higher sequence never carries an earlier second."""
    sequence = store.next_sequence(session, tenant.id)
    now = clock()
    name = batch_file_name(tenant.short_name, now, sequence, extension, tenant.id)
    return store.add_batch(session, Batch(tenant_id=tenant.id, sequence=sequence, name=name, content=b"", sha256="",
                                          bill_count=0, state=BatchState.STAGED, created_at=now, kind=kind))


def fill_batch(session: Session, batch: Batch, bills: list[Bill], template: Template, *, actor: str = "connector",
               reason: str | None = None) -> int:
    """Render the bills once into the batch (bytes + sha256) and move each to BATCHED, audited. A bill
    the file cannot carry (text XML 1.0 cannot hold, a required column empty) is HELD with the reason
    and left out; if none is left, the batch row is removed. Returns how many bills the file carries."""
    by_id = {b.invoice_id: b for b in sorted(bills, key=lambda b: b.id)}
    records = {i: as_the_template_carries(b.mapping or {"invoice_id": i}, template) for i, b in by_id.items()}
    documents = documents_for(session, batch.tenant_id, list(by_id), template, batch.name)
    records.update({i: {**records[i], "documents": [name for name, _ in found]} for i, found in documents.items()})
    if carries_documents(template):  # a document left out for its size is named so, never silently
        records.update({i: {**r, "documents": [*r.get("documents", []), *r["documents_left_out"]]}
                        for i, r in records.items() if r.get("documents_left_out")})
    problems: dict[str, str] = {}
    if not any(column.source == "flagged" for column in template.columns):
        # A flagged bill must reach Stampli with its flag, or not at all.
        problems = {i: "the bill is flagged but the template has no column for the flag (source 'flagged')"
                    for i, r in records.items() if r.get("flagged")}
    rendered = render(template, [r for i, r in records.items() if i not in problems])
    problems.update(rendered.problems)
    for invoice_id, problem in problems.items():
        bill = by_id[invoice_id]
        bill.batch_id = None
        bill.reasons = [Reason("unrenderable", {"problem": problem}).as_json()]
        record(session, bill, BillState.HELD, reason=render_reason(bill.reasons[0]), actor=actor)
    if not rendered.invoice_ids:
        store.remove_batch(session, batch)
        return 0
    batch.content = rendered.content
    carried = {i: documents[i] for i in rendered.invoice_ids if i in documents}
    packed = (pack(session, batch.tenant_id, batch.name, rendered.content, carried)
              if template.documents_layout == ZIP else None)
    if packed is not None:  # one archive: its rename is the commit point of the file and its documents alike
        batch.name, batch.content = packed
    if template.documents_layout == FOLDER:  # files in the batch's folder, uploaded before the data file
        place(session, batch.id, carried)
    batch.sha256 = hashlib.sha256(batch.content).hexdigest()
    batch.bill_count = len(rendered.invoice_ids)
    batch.sidecar = template.sidecar == "sha256"
    page = BillPage(session, batch.tenant_id)  # the file's bills move in two statements, not one UPDATE each
    for moving in page.add(by_id[invoice_id] for invoice_id in rendered.invoice_ids):
        moving.set(batch_id=batch.id)
        page.record(moving, BillState.BATCHED, batch_id=batch.id, file_name=batch.name, actor=actor, reason=reason)
    page.write()
    log.info("tenant %s: batch %s holds %s bills", batch.tenant_id, batch.name, batch.bill_count)
    return batch.bill_count


def as_the_template_carries(record: dict[str, Any], template: Template) -> dict[str, Any]:
    """A bill a person released is marked released; in a template with no column for that (source
    `released` or `release_note`) it goes flagged with the note among its flags, so it never reaches
    Stampli looking like any other bill."""
    if not record.get("released") or any(c.source in ("released", "release_note") for c in template.columns):
        return record
    return {**record, "flagged": True, "flags": [*record.get("flags", []), str(record.get("release_note", ""))]}


def stage_batch(services: Services, batch_id: int) -> None:
    with services.ledger.transaction() as session:
        batch = store.batch(session, batch_id)
        path = stage_pieces(services.settings.staging_dir / batch.tenant_id, batch.name, batch.sha256,
                            store.content_size(session, batch_id), partial(store.content_pieces, session, batch_id))
        batch.staged_path = str(path)
