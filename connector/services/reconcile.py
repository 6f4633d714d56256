"""Reconcile what was delivered with what Xero holds now, and catch what the deltas missed.

Not every change in Xero moves `UpdatedDateUTC` (edits that post no journal do not), so a periodic
comparison without If-Modified-Since backs up the deltas. It reads the delivered bills back by `IDs=`
(50 a call) and the eligible bills whole, then the supplier credit notes whole (CreditNotes takes no
`IDs=`; one paged read serves both checks), all through connector.xero.delta with no watermark, then:
- a delivered bill or credit note edited, voided or deleted in Xero since it was sent, or whose total,
  supplier or allocations differ from what it was sent as → CHANGED_AFTER_DELIVERY (domain.changes);
- an eligible bill or credit note the ledger does not hold, or holds at an older version → stored and
  mapped as usual.
Nothing is sent to Stampli by the reconciliation itself.

A large tenant's reconcile takes more calls than a minute of its rate budget (one per 50 delivered bills),
so it is resumable: each call's comparison commits with the run's progress (store.reconciliations:
phase, last delivered InvoiceID compared, next page of a paged read, the counts so far). A reconcile that
finds the minute's budget spent, or has read for CONNECTOR_POLL_HANDOVER_SECONDS, stops before its next
call and says when to go on (`resume_in`); one whose worker died is resumed by the next reconcile of the
tenant. Nothing compared is asked of Xero again: the supplier credit notes' read goes on at its next page
too (each page's delivered credit notes noted as seen, like a paged read of the bills; those it never
returned are compared at its end). The report recorded at the end covers the whole run.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from connector.config.loader import MappingSetData
from connector.domain.changes import document_label, drift
from connector.domain.credit_notes import BILL, CREDIT_NOTE
from connector.domain.intake import Checked
from connector.domain.paging import Cursor
from connector.errors import ConnectorError, XeroRateLimited
from connector.services.context import Services
from connector.services.credit_notes import CREDIT_NOTES_WHERE, upsert_credit_notes
from connector.services.credit_notes import ENDPOINT as CREDIT_NOTES_ENDPOINT
from connector.services.mappings import effective
from connector.services.messages import Message
from connector.services.poll import BILLS_WHERE, READ_PARAMS, TenantReader, upsert_bills
from connector.store.bills import (
    delivered_as_read,
    delivered_ids,
    invoice_ids_in_ledger,
    mark_changed_after_delivery,
)
from connector.store.db import Session
from connector.store.intake import column_lengths, hold_bad_bills
from connector.store.models import utcnow
from connector.store.reconciliations import (
    RUN_LEASE_SECONDS,
    RunState,
    bill_counts,
    delivered_unseen,
    finish_run,
    mark_seen,
    record_reconcile,
    release_run,
    run_held,
    run_under_way,
    save_progress,
    start_or_resume,
    take_run,
)
from connector.store.tenants import active_tenant_ids, get_tenant
from connector.xero.delta import DeltaPage, read_delta

log = logging.getLogger(__name__)

IDS_PER_CALL = 50
DELIVERED_CHUNK = 1000  # delivered InvoiceIDs read from the ledger at a time (a multiple of IDS_PER_CALL)
# A run's phases, in order: the delivered bills by IDs= then the eligible bills paged, or (when that costs
# fewer calls) every bill paged then the delivered bills no page returned by IDs=; then the credit notes.
BILLS, ELIGIBLE, PAGES, LEFTOVER, CREDIT_NOTES = "bills", "eligible", "pages", "leftover", "credit_notes"
CREDIT_NOTES_LEFTOVER = "cn_leftover"  # the delivered credit notes the read never returned (no call)
PAGE_WHEN_CHEAPER = True  # off: always read the delivered bills back by IDs= (what tests of that read pin)
WAITS = ("minute", "concurrent", "appminute")  # a spent budget a reconcile waits out (not the day's)


@dataclass
class Reconciliation:
    tenant_id: str
    delivered_checked: int = 0  # delivered bills
    credit_notes_checked: int = 0  # delivered credit notes
    changed_after_delivery: list[str] = field(default_factory=list)  # "<InvoiceID> bill|credit note N <why>"
    missing_from_ledger: list[str] = field(default_factory=list)  # InvoiceIDs and CreditNoteIDs
    calls: int = 0
    # A run that stopped before its end (budget spent, hand-over): it goes on in `resume_in` seconds.
    stopped: bool = False
    resume_in: float = 0.0
    # What earlier legs of this run found (their lists are in their own reports and the audit).
    changed_before: int = 0
    missing_before: int = 0
    started_at: str = ""  # the run's identity: a leg sent to go on with it names it
    skipped: bool = False  # a leg of a run that has ended meanwhile (another leg finished it)
    busy: bool = False  # another reconcile is working on the tenant's run: this one did nothing

    def found(self, marked: int = 0, missing: int = 0, checked: int = 0) -> dict[str, Any]:
        """The run's counts so far (and those being saved in the transaction that saves them)."""
        return {"delivered_checked": self.delivered_checked + checked,
                "credit_notes_checked": self.credit_notes_checked, "calls": self.calls,
                "changed_after_delivery": self.changed_before + len(self.changed_after_delivery) + marked,
                "missing_from_ledger": self.missing_before + len(self.missing_from_ledger) + missing}


class HandOver(Exception):
    """The reconcile's time budget ran out between two calls: its progress is committed (not a failure)."""


class Calls:
    """Every Xero call of a reconcile, counted, and refused past the time budget (`until`, monotonic) once
    this leg has made a call (so each leg moves the run on, and the hand-overs end)."""

    def __init__(self, reader: TenantReader, report: Reconciliation, until: float | None,
                 held: tuple[Callable[[], datetime], datetime] | None = None) -> None:
        self._reader, self._report, self.until = reader, report, until
        self._held = held  # the services' clock, and when this leg stops calling so as never to outlive its hold
        self._made = 0

    def get(self, endpoint: str, params: dict[str, str | int], since: Any) -> dict[str, Any]:
        if self._made and self.until is not None and time.monotonic() >= self.until:
            raise HandOver(f"tenant {self._report.tenant_id}: reconciled for its time budget; handing over")
        if self._made and self._held is not None and self._held[0]() >= self._held[1]:
            raise HandOver(f"tenant {self._report.tenant_id}: half its hold on the run spent; handing over")
        body = self._reader.get(endpoint, params, since)
        self._made += 1
        self._report.calls += 1
        return body


def reconcile(services: Services, tenant_id: str, emit: Callable[[Message], None], *,
              until: float | None = None, run_of: str | None = None, leg: str | None = None) -> Reconciliation:
    """Reconcile the tenant, going on from where its last reconcile stopped (if one did). Past `until`
    (monotonic seconds) it stops before its next call: `stopped`, and its progress is in the ledger.
    `run_of` (a run's `started_at`): a leg sent to go on with that run, which does nothing if it ended.
    `leg`: the message's id when a worker runs it, which holds the run (see store.reconciliations.take_run:
    the same message delivered again after its worker died takes its own hold back at once)."""
    # (hashed to the hold's 32 characters: a Celery id is a 36-character UUID)
    owner = hashlib.sha256(leg.encode()).hexdigest()[:32] if leg else uuid.uuid4().hex

    def begin(session: Session) -> tuple[int, MappingSetData, RunState, datetime] | Reconciliation:
        under_way = run_under_way(session, tenant_id)
        if run_of is not None and (under_way is None or under_way.started_at.isoformat() != run_of):
            return Reconciliation(tenant_id, skipped=True)
        now = services.clock()
        run = take_run(session, tenant_id, owner=owner, now=now, at=utcnow(),
                       first_phase=lambda: _first_phase(services, session, tenant_id))
        if run is None:
            return _busy(tenant_id, run_held(session, tenant_id), now)
        return get_tenant(session, tenant_id).grant_id, effective(session, tenant_id).data, run, now

    begun = services.ledger.retrying(begin)
    if isinstance(begun, Reconciliation):
        return begun
    grant_id, mapping_set, run, taken_at = begun
    # A leg stops calling Xero once half its hold is spent, so its last call and saves end while it holds
    # the run (a worker's leg hands over sooner; `connector reconcile` has no time budget of its own).
    held = (services.clock, taken_at + timedelta(seconds=RUN_LEASE_SECONDS / 2))
    try:
        report = _go_on(services, tenant_id, run, grant_id, mapping_set, emit, until, held)
    except Exception:  # (a worker killed is not here to let go: its hold lapses with its hard time limit)
        services.ledger.retrying(partial(release_run, tenant_id=tenant_id, owner=owner))
        raise
    services.ledger.retrying(partial(release_run, tenant_id=tenant_id, owner=owner))
    return report


def _busy(tenant_id: str, held: tuple[datetime, datetime | None] | None, now: datetime) -> Reconciliation:
    """Another reconcile holds the tenant's run: this one does nothing now, and names the run and when its
    hold lapses (`stopped`, `resume_in`), so a worker's message goes on with the run then. The holder may
    be a worker killed mid-leg, whose message the broker gave back at once: without this, its run would
    wait for beat's next daily reconcile."""
    log.info("tenant %s: another reconcile is working on its run; this one does nothing", tenant_id)
    if held is None:
        return Reconciliation(tenant_id, busy=True)
    started_at, lease_until = held
    lapses_in = (lease_until - now).total_seconds() if lease_until is not None else 0.0
    return Reconciliation(tenant_id, busy=True, stopped=True, started_at=started_at.isoformat(),
                          resume_in=max(lapses_in, 0.0) + 1.0)


def _go_on(services: Services, tenant_id: str, run: RunState, grant_id: int, mapping_set: MappingSetData,
           emit: Callable[[Message], None], until: float | None,
           held: tuple[Callable[[], datetime], datetime] | None = None) -> Reconciliation:
    report = _resumed(tenant_id, run)
    calls = Calls(TenantReader(services, tenant_id, grant_id), report, until, held)
    resume_at = Cursor(run.since, run.page)
    try:
        if run.phase == BILLS:
            _delivered_bills(services, calls, tenant_id, run.after, report)
        if run.phase in (BILLS, ELIGIBLE):
            start = resume_at if run.phase == ELIGIBLE else None
            _eligible_not_held(services, calls, tenant_id, mapping_set, report, emit, start)
        if run.phase == PAGES:
            _paged_bills(services, calls, tenant_id, mapping_set, report, emit, resume_at)
        if run.phase in (PAGES, LEFTOVER):
            _delivered_bills(services, calls, tenant_id, run.after if run.phase == LEFTOVER else "", report,
                             phase=LEFTOVER)
        if run.phase != CREDIT_NOTES_LEFTOVER:
            start = resume_at if run.phase == CREDIT_NOTES else None
            _credit_notes(services, calls, tenant_id, mapping_set, report, emit, start)
        _credit_notes_unseen(services, tenant_id, report)
    except HandOver:
        report.stopped = True
    return report


def _first_phase(services: Services, session: Session, tenant_id: str) -> str:
    """Page every bill (known bills / page size calls) when that is cheaper than reading the delivered ones
    back by IDs= (delivered / IDS_PER_CALL calls): a tenant most of whose bills were delivered."""
    if not PAGE_WHEN_CHEAPER:
        return BILLS
    delivered, known = bill_counts(session, tenant_id)
    by_ids = -(-delivered // IDS_PER_CALL)
    paged = -(-known // services.settings.xero_page_size)
    return PAGES if paged < by_ids else BILLS


def _resumed(tenant_id: str, run: RunState) -> Reconciliation:
    found = run.found
    return Reconciliation(tenant_id, delivered_checked=int(found.get("delivered_checked", 0)),
                          credit_notes_checked=int(found.get("credit_notes_checked", 0)),
                          calls=int(found.get("calls", 0)),
                          changed_before=int(found.get("changed_after_delivery", 0)),
                          missing_before=int(found.get("missing_from_ledger", 0)),
                          started_at=run.started_at.isoformat())


def _delivered_bills(services: Services, calls: Calls, tenant_id: str, after: str, report: Reconciliation,
                     phase: str = BILLS) -> None:
    """The delivered bills after `after` (LEFTOVER: those no page of the run returned) read back by `IDs=`,
    each call's comparison committed with the run's progress (the last InvoiceID compared)."""
    for ids in _delivered_in_chunks(services, tenant_id, BILL, after=after, unseen=phase == LEFTOVER):
        for start in range(0, len(ids), IDS_PER_CALL):
            chunk = ids[start:start + IDS_PER_CALL]
            body = calls.get("Invoices", {"IDs": ",".join(chunk), "page": 1, "unitdp": "4"}, None)
            seen = {r["InvoiceID"]: r for r in body.get("Invoices", []) if isinstance(r.get("InvoiceID"), str)}
            report.delivered_checked += len(chunk)
            _compare_delivered(services, tenant_id, {i: seen.get(i) for i in chunk}, report,
                               progress={"phase": phase, "after": chunk[-1]})
    with services.ledger.transaction() as session:  # paged, the eligible bills were on the pages
        save_progress(session, tenant_id, phase=ELIGIBLE if phase == BILLS else CREDIT_NOTES, found=report.found(),
                      at=utcnow())


def _paged_bills(services: Services, calls: Calls, tenant_id: str, mapping_set: MappingSetData,
                 report: Reconciliation, emit: Callable[[Message], None], start: Cursor) -> None:
    """Every ACCPAY bill paged (from `start`), no If-Modified-Since: the delivered bills on each page
    compared with the ledger rows of exactly those ids (and noted as seen), the eligible ones stored as
    the eligible read stores them, all with the run's progress in one transaction."""
    eligible = set(mapping_set.rules().eligible_statuses)
    for page in read_delta(calls.get, services.settings, "Invoices", where=BILLS_WHERE, params=READ_PARAMS,
                           lengths=column_lengths(), start=start):
        records = {c.storage_id(): _as_dict(c.data) for c in page.checked.records}
        wanted = [i for i, r in records.items() if r.get("Status") in eligible]
        usable = [r for r in page.usable if r.get("Status") in eligible]
        rejected = [c for c in page.rejected if _as_dict(c.data).get("Status") in eligible]
        drifted: dict[str, str] = {}
        work = partial(_compare_and_store_page, tenant_id=tenant_id, records=records, wanted=wanted, usable=usable,
                       rejected=rejected, following=page.following, report=report, drifted=drifted)
        marked, missing, messages, checked = services.ledger.retrying(work)
        report.delivered_checked += checked
        report.changed_after_delivery += [f"{i} {drifted[i]}" for i in marked]
        report.missing_from_ledger += missing
        for message in messages:
            emit(message)


def _compare_page(session: Session, tenant_id: str, records: dict[str, dict[str, Any]], wanted: list[str],
                  drifted: dict[str, str]) -> tuple[list[str], int, list[str]]:
    """A page's delivered documents (bills or credit notes) compared with what Xero holds now: (those marked
    changed after delivery, how many no earlier page of the run compared, the eligible ones the ledger lacks)."""
    delivered = delivered_as_read(session, tenant_id, records)
    for document_id, sent in delivered.items():
        why = drift(sent.sent, sent.version, records[document_id])
        if why:
            drifted[document_id] = f"{document_label(sent.document_type, sent.number)} {why}"
    marked = [i for i, why in drifted.items()
              if mark_changed_after_delivery(session, tenant_id, i, reason=f"reconciliation: {why}", actor="reconcile")]
    checked = mark_seen(session, tenant_id, sorted(delivered))
    held = invoice_ids_in_ledger(session, tenant_id, wanted)
    return marked, checked, [i for i in wanted if i not in held]


def _compare_and_store_page(session: Session, tenant_id: str, records: dict[str, dict[str, Any]], wanted: list[str],
                            usable: list[dict[str, Any]], rejected: list[Checked], following: Cursor | None,
                            report: Reconciliation, drifted: dict[str, str],
                            ) -> tuple[list[str], list[str], list[Message], int]:
    """One page of the paged bills: (bills marked changed, eligible ones the ledger lacked, messages, delivered
    bills compared), the run's progress saved with them."""
    marked, checked, missing = _compare_page(session, tenant_id, records, wanted, drifted)
    hold_bad_bills(session, tenant_id, rejected)
    messages = upsert_bills(session, tenant_id, usable)
    found = report.found(len(marked), len(missing), checked)
    if following is None:
        save_progress(session, tenant_id, phase=LEFTOVER, found=found, at=utcnow())
    else:
        save_progress(session, tenant_id, phase=PAGES, found=found, at=utcnow(), since=following.since,
                      page=following.page)
    return marked, missing, messages, checked


def _delivered_in_chunks(services: Services, tenant_id: str, document_type: str,
                         after: str = "", unseen: bool = False) -> Iterator[list[str]]:
    """The tenant's delivered bills (or credit notes) after `after`, `DELIVERED_CHUNK` InvoiceIDs at a time
    in InvoiceID order, each chunk read in a transaction of its own once the one before it is compared: what
    reconcile holds of the ledger is a chunk, never the tenant (a bill marked changed meanwhile is behind
    the key). `unseen`: only the delivered bills no page of this run returned."""
    while True:
        with services.ledger.transaction() as session:
            ids = (delivered_unseen(session, tenant_id, after=after, limit=DELIVERED_CHUNK) if unseen
                   else delivered_ids(session, tenant_id, document_type, after=after, limit=DELIVERED_CHUNK))
        if ids:
            yield ids
        if len(ids) < DELIVERED_CHUNK:
            return
        after = ids[-1]


def tenants_to_reconcile(services: Services) -> list[str]:
    """Beat's daily reconcile covers every ACTIVE tenant (a PAUSED one is neither polled nor reconciled)."""
    with services.ledger.transaction() as session:
        return active_tenant_ids(session)


def reconcile_and_record(services: Services, tenant_id: str, emit: Callable[[Message], None], *,
                         handover: bool = True, run_of: str | None = None, leg: str | None = None) -> Reconciliation:
    """Reconcile one tenant (going on from where it stopped) and, once the run is whole, keep what it found
    (or why it failed) for `connector status`. A run that finds the minute's rate budget spent, or (with
    `handover`) has read for CONNECTOR_POLL_HANDOVER_SECONDS, returns `stopped`: its caller goes on in
    `resume_in` seconds, naming the run (`run_of`: its `started_at`) so that a leg sent twice, or late,
    never starts a run of its own. A failure leaves the run's progress for the next reconcile of the tenant."""
    until = time.monotonic() + services.settings.poll_handover_seconds if handover else None
    report: Reconciliation | None = None
    try:
        report = reconcile(services, tenant_id, emit, until=until, run_of=run_of, leg=leg)
    except XeroRateLimited as spent:
        if spent.problem not in WAITS:
            _failed(services, tenant_id, spent)
            raise
        log.info("tenant %s: reconcile waits %.1fs for the rate budget; its progress is kept", tenant_id,
                 spent.retry_after or 1.0)
        with services.ledger.transaction() as session:
            found = start_or_resume(session, tenant_id, first_phase=BILLS, at=utcnow())
        stopped = _resumed(tenant_id, found)
        stopped.stopped, stopped.resume_in = True, max(spent.retry_after or 1.0, 0.5)
        return stopped
    except ConnectorError as failure:
        _failed(services, tenant_id, failure)
        raise
    if report.skipped:
        log.info("tenant %s: the reconcile this leg was to go on with has ended", tenant_id)
        return report
    if report.busy:
        return report
    if report.stopped:
        log.info("tenant %s: reconcile handed over after %s calls in all", tenant_id, report.calls)
        return report
    with services.ledger.transaction() as session:
        record_reconcile(session, tenant_id, ok=True, at=utcnow(),
                         found={**report.found(), "started_at": report.started_at})
        finish_run(session, tenant_id)
    return report


def _failed(services: Services, tenant_id: str, failure: ConnectorError) -> None:
    with services.ledger.transaction() as session:
        record_reconcile(session, tenant_id, ok=False, found={"error": str(failure)}, at=utcnow())


def _compare_delivered(services: Services, tenant_id: str, current: dict[str, dict[str, Any] | None],
                       report: Reconciliation, progress: dict[str, Any] | None = None) -> None:
    """Compare these delivered documents with what Xero answered for each (None: nothing) and mark those
    that drifted (domain.changes), naming each; one still DELIVERED is marked, and reported, once. With
    `progress` (save_progress's phase and place), the run's progress commits with the marks."""
    with services.ledger.transaction() as session:
        delivered = delivered_as_read(session, tenant_id, current)
    drifted = {}
    for invoice_id, sent in delivered.items():
        why = drift(sent.sent, sent.version, current[invoice_id])
        if why:
            drifted[invoice_id] = f"{document_label(sent.document_type, sent.number)} {why}"
    if not drifted and progress is None:
        return

    def work(session: Session) -> list[str]:
        marked = [invoice_id for invoice_id, why in drifted.items()
                  if mark_changed_after_delivery(session, tenant_id, invoice_id, reason=f"reconciliation: {why}",
                                                 actor="reconcile")]
        if progress is not None:
            save_progress(session, tenant_id, found=report.found(len(marked)), at=utcnow(), **progress)
        return marked

    report.changed_after_delivery += [f"{i} {drifted[i]}" for i in services.ledger.retrying(work)]


def _eligible_not_held(services: Services, calls: Calls, tenant_id: str, mapping_set: MappingSetData,
                       report: Reconciliation, emit: Callable[[Message], None], start: Cursor | None) -> None:
    """The eligible bills, paged (from `start` when resumed), each page stored with the run's progress."""
    statuses = " OR ".join(f'Status=="{s}"' for s in mapping_set.rules().eligible_statuses)
    for page in read_delta(calls.get, services.settings, "Invoices", where=f'Type=="ACCPAY" AND ({statuses})',
                           params=READ_PARAMS, lengths=column_lengths(), start=start):
        ids = [c.storage_id() for c in page.checked.records]
        with services.ledger.transaction() as session:
            held = invoice_ids_in_ledger(session, tenant_id, ids)
        report.missing_from_ledger += [i for i in ids if i not in held]
        for message in services.ledger.retrying(partial(_store_page, tenant_id=tenant_id, page=page,
                                                        found=report.found())):
            emit(message)


def _store_page(session: Session, tenant_id: str, page: DeltaPage, found: dict[str, Any]) -> list[Message]:
    """Bills the intake check refused are held as in a poll; the others are stored as a poll stores them;
    the run goes on after this page (or with the credit notes after the last)."""
    hold_bad_bills(session, tenant_id, page.rejected)
    messages = upsert_bills(session, tenant_id, page.usable)
    following = page.following
    if following is None:
        save_progress(session, tenant_id, phase=CREDIT_NOTES, found=found, at=utcnow())
    else:
        save_progress(session, tenant_id, phase=ELIGIBLE, found=found, at=utcnow(), since=following.since,
                      page=following.page)
    return messages


def _credit_notes(services: Services, calls: Calls, tenant_id: str, mapping_set: MappingSetData,
                  report: Reconciliation, emit: Callable[[Message], None], start: Cursor | None) -> None:
    """Every supplier credit note, paged (from `start` when resumed): the delivered ones on each page compared
    with what Xero holds now and noted as seen, those of an eligible status stored as a poll stores them (the
    ledger lacking them, or holding an older version), with the run's progress in one transaction per page,
    so a read that was cut goes on at its next page."""
    eligible = set(mapping_set.rules().credit_note_statuses)
    for page in read_delta(calls.get, services.settings, CREDIT_NOTES_ENDPOINT, where=CREDIT_NOTES_WHERE,
                           params=READ_PARAMS, lengths=column_lengths(), start=start):
        records = {c.storage_id(): _as_dict(c.data) for c in page.checked.records}
        wanted = [i for i, r in records.items() if r.get("Status") in eligible]
        usable = [r for r in page.usable if r.get("Status") in eligible]
        rejected = [c for c in page.rejected if _as_dict(c.data).get("Status") in eligible]
        drifted: dict[str, str] = {}
        work = partial(_compare_and_store_credit_notes, tenant_id=tenant_id, records=records, wanted=wanted,
                       usable=usable, rejected=rejected, following=page.following, report=report, drifted=drifted)
        marked, missing, messages, checked = services.ledger.retrying(work)
        report.credit_notes_checked += checked
        report.changed_after_delivery += [f"{i} {drifted[i]}" for i in marked]
        report.missing_from_ledger += missing
        for message in messages:
            emit(message)


def _compare_and_store_credit_notes(session: Session, tenant_id: str, records: dict[str, dict[str, Any]],
                                    wanted: list[str], usable: list[dict[str, Any]], rejected: list[Checked],
                                    following: Cursor | None, report: Reconciliation, drifted: dict[str, str],
                                    ) -> tuple[list[str], list[str], list[Message], int]:
    """One page of the credit notes: (those marked changed, eligible ones the ledger lacked, messages,
    delivered ones compared), the run's progress saved with them."""
    marked, checked, missing = _compare_page(session, tenant_id, records, wanted, drifted)
    hold_bad_bills(session, tenant_id, rejected, credit_notes=True)
    messages = upsert_credit_notes(session, tenant_id, usable)
    found = {**report.found(len(marked), len(missing)),
             "credit_notes_checked": report.credit_notes_checked + checked}
    if following is None:
        save_progress(session, tenant_id, phase=CREDIT_NOTES_LEFTOVER, found=found, at=utcnow())
    else:
        save_progress(session, tenant_id, phase=CREDIT_NOTES, found=found, at=utcnow(), since=following.since,
                      page=following.page)
    return marked, missing, messages, checked


def _credit_notes_unseen(services: Services, tenant_id: str, report: Reconciliation) -> None:
    """The delivered credit notes no page of the read returned are no longer in Xero: compared with nothing
    and noted as seen, a chunk at a time, with the run's progress."""
    while True:
        with services.ledger.transaction() as session:
            unseen = delivered_unseen(session, tenant_id, after="", limit=DELIVERED_CHUNK, document_type=CREDIT_NOTE)
            delivered = delivered_as_read(session, tenant_id, unseen)
        if not unseen:
            return
        drifted = {i: f"{document_label(sent.document_type, sent.number)} {why}" for i, sent in delivered.items()
                   if (why := drift(sent.sent, sent.version, None))}

        def work(session: Session, unseen: list[str] = unseen, drifted: dict[str, str] = drifted) -> list[str]:
            marked = [i for i, why in drifted.items() if mark_changed_after_delivery(
                session, tenant_id, i, reason=f"reconciliation: {why}", actor="reconcile")]
            mark_seen(session, tenant_id, unseen)
            save_progress(session, tenant_id, phase=CREDIT_NOTES_LEFTOVER, at=utcnow(), found={
                **report.found(len(marked)), "credit_notes_checked": report.credit_notes_checked + len(unseen)})
            return marked

        marked = services.ledger.retrying(work)
        report.credit_notes_checked += len(unseen)
        report.changed_after_delivery += [f"{i} {drifted[i]}" for i in marked]


def _as_dict(data: object) -> dict[str, Any]:
    return data if isinstance(data, dict) else {}
