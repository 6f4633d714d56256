"""poll_tenant: read ACCPAY bills and purchase orders changed since the watermark, and supplier credit
notes when they are due (domain.credit_note_cadence); upsert them.

Each page is committed before its follow-up messages are sent, and the watermark moves only after
every page of an endpoint is committed, so a crash anywhere re-reads rather than skips. A poll holds the
tenant's poll lease and renews it with each page and before any Xero request it might not outlast
(store.polls), so a poll whose worker died is found by the dispatcher within a lease, not a cadence later.
A poll that has read for CONNECTOR_POLL_HANDOVER_SECONDS stops before its next page and hands the rest to
a fresh poll of its tenant, so no poll nears the poll queue's time limit however large the tenant.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from connector.domain.credit_note_cadence import credit_notes_due
from connector.domain.intake import Checked, RecordKind
from connector.domain.tenants import PollRefusal, poll_parked_reason, why_not_started
from connector.errors import (
    ConnectorError,
    XeroGrantRevoked,
    XeroRateLimited,
    XeroTenantDisconnected,
    XeroTokenExpired,
)
from connector.services import attachments, credit_notes
from connector.services.context import Services
from connector.services.holds import PO_REASONS, reopen_held
from connector.services.messages import AssembleBatch, MapInvoice, Message, PollTenant
from connector.services.reference import ReferenceDue, read_reference_if_due, reference_due, resolve_contacts
from connector.settings import longest_xero_request_seconds
from connector.store import backlog, xero_records
from connector.store.credit_notes import CreditNoteReads, ask_since_read, credit_note_reads, credit_notes_read
from connector.store.db import Session
from connector.store.intake import (
    column_lengths,
    commit_record_by_record,
    hold_bad_bills,
    mark_unusable_purchase_orders,
    refused_by_ledger,
)
from connector.store.masterdata import enabled_kinds
from connector.store.polls import (
    PollLease,
    PollLeaseLost,
    end_poll,
    give_back_run,
    hold_polls_until,
    mark_disconnected,
    park_polls,
    poll_standing,
    pollable,
    renew_poll_lease,
    take_poll_lease,
)
from connector.store.tenants import get_tenant
from connector.store.work import mark_map_sent
from connector.store.xero_records import delta_watermarks, held_versions, save_delta_watermark
from connector.xero.auth import IssuedToken, KeepAlive
from connector.xero.dates import ms_or_zero
from connector.xero.delta import read_delta

log = logging.getLogger(__name__)

# unitdp=4: unit prices as entered (Xero rounds them to cents otherwise, and quantity x unit stops adding up)
READ_PARAMS = {"unitdp": "4"}
BILLS_WHERE = 'Type=="ACCPAY"'


@dataclass
class PollReport:
    tenant_id: str
    bills_seen: int = 0
    bills_changed: int = 0
    purchase_orders_seen: int = 0
    credit_notes_seen: int = 0
    skipped: bool = False
    handed_over: bool = False  # stopped at a page boundary; a fresh poll of the tenant goes on

    def count_page(self, endpoint: str, seen: int, changed: int) -> None:
        """Counted page by page, so a poll that hands over still reports what it read."""
        if endpoint == "Invoices":
            self.bills_seen, self.bills_changed = self.bills_seen + seen, self.bills_changed + changed
        elif endpoint == "PurchaseOrders":
            self.purchase_orders_seen += seen
        else:
            self.credit_notes_seen += seen


class PollHandedOver(Exception):
    """The poll's reading budget ran out between two pages: what it read is committed, the rest is left to
    a fresh poll (not a failure, so not a ConnectorError)."""


@dataclass
class HandOver:
    """A poll's reading budget. Past `at` (monotonic seconds), and once this poll has moved a watermark, no
    further page is asked for: PollHandedOver, and a fresh poll goes on from the committed watermarks.
    Moving a watermark is the progress rule: a fresh poll first re-reads the overlap before its
    watermark, which moves nothing, so it hands over only once it has read new ground, and however many
    records share one window the hand-overs end."""

    at: float
    progressed: bool = False

    def before_page(self, tenant_id: str, endpoint: str) -> None:
        if self.progressed and time.monotonic() >= self.at:
            raise PollHandedOver(f"tenant {tenant_id}: read for its budget; handing over before {endpoint}")


def poll_tenant(services: Services, tenant_id: str, emit: Callable[[Message], None]) -> PollReport:
    """One delta poll under the tenant's poll lease: one poll at a time per tenant. A poll that ends (done,
    or failed in a way it records) frees the lease; one whose worker dies leaves it to lapse, and the next
    tick dispatches the tenant again. A disconnected tenant or a day-limit 429 is recorded and re-raised."""
    started = _start(services, tenant_id)
    if started is None:
        return PollReport(tenant_id, skipped=True)
    lease = started.lease
    report = PollReport(tenant_id)
    try:
        _poll(services, started, emit, report, HandOver(time.monotonic() + services.settings.poll_handover_seconds))
        _finish(services, started, emit)
    except PollHandedOver:
        report.handed_over = _hand_over(services, lease, emit, master_data=started.sends_master_data)
        return report
    except PollLeaseLost:
        _gave_up(services, lease)  # another poll holds the tenant now: the lease is its own
        raise
    except ConnectorError as failure:
        _end(services, lease, failure)
        raise
    # Anything else (an error we did not expect, or the worker dying) leaves the lease to lapse: the
    # dispatcher sends the tenant again and counts the run, so a poll that always crashes gets parked.
    log.info("tenant %s polled: %s bills seen, %s new or changed", tenant_id, report.bills_seen,
             report.bills_changed)
    return report


@dataclass
class _Started:
    """A poll that took its lease, and what it read with it (one transaction for all of it: an idle poll's
    ledger work is mostly round trips)."""

    lease: PollLease
    grant_id: int
    token: IssuedToken | None  # the stored access token while fresh (None: the reader issues one)
    watermarks: dict[str, datetime]  # endpoint -> watermark; only this poll moves them while it holds the lease
    reference: ReferenceDue | None
    credit_reads: CreditNoteReads
    sends_master_data: bool


def _start(services: Services, tenant_id: str) -> _Started | None:
    """Take the tenant's poll lease and count the run, and read what the poll starts from; None when this
    message must do nothing."""
    now = services.clock()
    with services.ledger.transaction() as session:
        tenant = get_tenant(session, tenant_id)  # held while the session reads it: each read below takes it as is
        may_poll, grant_id = pollable(session, tenant.id, now)
        if not may_poll:
            return None
        lease = take_poll_lease(session, tenant_id, now, _lease_end(services))
        if lease is not None:
            backlog.recount(session, tenant_id)  # once a cycle: a count that drifted is right again
            watermarks = delta_watermarks(session, tenant_id)
            return _Started(lease, grant_id, services.tokens.stored(session, grant_id), watermarks,
                            reference_due(session, services, tenant_id, watermarks),
                            credit_note_reads(session, tenant_id), bool(enabled_kinds(session, tenant_id)))
        standing = poll_standing(session, tenant_id)
        refusal = why_not_started(standing.lease_until, standing.runs, standing.parked_reason, now)
        if refusal == PollRefusal.EXHAUSTED:
            reason = poll_parked_reason(tenant_id, standing.runs, standing.lease_until)
            if park_polls(session, tenant_id, reason, now):
                log.error("%s; its polls are parked until a person clears them", reason)
        else:
            log.info("tenant %s: not polled (%s); this message does nothing", tenant_id, refusal.lower())
    return None


def _finish(services: Services, started: _Started, emit: Callable[[Message], None]) -> None:
    """The poll's upkeep and its end, in one transaction: credit notes whose bills Stampli now has and
    bills whose documents are asked for again go back to be mapped, and the lease is freed with the run
    count; their messages are sent once it has committed."""
    lease = started.lease
    tenant_id = lease.tenant_id
    now = services.clock()

    def work(session: Session) -> list[Message]:
        found = [*credit_notes.reopen_credit_notes_whose_bills_arrived(session, tenant_id),
                 *attachments.reopen_unavailable(session, tenant_id, now)]
        if not end_poll(session, lease, polled_at=now):
            give_back_run(session, tenant_id)
            log.warning("tenant %s: another poll took over before this one ended", tenant_id)
        return found

    messages = services.ledger.retrying(work)
    for message in messages:
        emit(message)
    _mark_sent(services, tenant_id, messages)
    if started.sends_master_data:  # its changes go out even in a cycle with no bill to map (services.masterdata)
        emit(AssembleBatch(tenant_id, bills=False))


def _end(services: Services, lease: PollLease, failure: ConnectorError) -> None:
    """A poll that failed: free the lease and reset the run count; record what the failure says about the
    tenant (a poll that ends well ends in `_finish`)."""
    tenant_id = lease.tenant_id
    now = services.clock()
    with services.ledger.transaction() as session:
        if not end_poll(session, lease):
            give_back_run(session, tenant_id)
            log.warning("tenant %s: another poll took over before this one ended", tenant_id)
        if isinstance(failure, XeroTenantDisconnected):
            mark_disconnected(session, tenant_id, "Xero answered 403 AuthenticationUnsuccessful for this tenant")
            log.error("tenant %s: Xero says 403 AuthenticationUnsuccessful; marked DISCONNECTED", tenant_id)
        elif isinstance(failure, XeroRateLimited) and failure.problem == "day" and failure.retry_after:
            until = now + timedelta(seconds=failure.retry_after)
            hold_polls_until(session, tenant_id, until, f"Xero day limit reached; polls resume at {until.isoformat()}")
            log.warning("tenant %s: Xero day limit reached; parked until %s", tenant_id, until.isoformat())


def _hand_over(services: Services, lease: PollLease, emit: Callable[[Message], None], *, master_data: bool) -> bool:
    """Free the lease, leave the tenant due within a lease (the dispatcher sends it again if the fresh
    poll's message is lost), then send the fresh poll. False if another poll had taken the tenant over.
    A tenant sending master data has its master-data files made at each hand-over too, as at a poll's end:
    the bills mapped meanwhile may then go in full files while the rest of a large first sync maps
    (services.masterdata.full_files_cutoff)."""
    resume_by = services.clock() + timedelta(seconds=services.settings.poll_lease_seconds)
    with services.ledger.transaction() as session:
        handed = end_poll(session, lease, resume_by=resume_by)
    if not handed:
        _gave_up(services, lease)
        return False
    log.info("tenant %s: read for %gs; handing the rest of the poll to a fresh one", lease.tenant_id,
             services.settings.poll_handover_seconds)
    if master_data:
        emit(AssembleBatch(lease.tenant_id, bills=False))
    emit(PollTenant(lease.tenant_id))
    return True


def _gave_up(services: Services, lease: PollLease) -> None:
    """This poll outlived its lease and another took over: it was slow, not dead, so its run is given
    back (only runs that die count towards parking the tenant's polls)."""
    with services.ledger.transaction() as session:
        give_back_run(session, lease.tenant_id)
    log.warning("tenant %s: this poll outlived its lease and another took over; it stops", lease.tenant_id)


def _lease_end(services: Services) -> datetime:
    return services.clock() + timedelta(seconds=services.settings.poll_lease_seconds)


def _heartbeat_before_request(services: Services, lease: PollLease) -> None:
    """Renew the lease before a Xero request unless what is left of it outlasts the longest request (see
    settings), so a request never outlives the lease; a lease just taken or renewed by a page's commit
    covers the next request as it is, so an idle poll spends no transaction on heartbeats."""
    margin = timedelta(seconds=longest_xero_request_seconds(services.settings) + 5)
    if lease.until - services.clock() <= margin:
        _heartbeat(services, lease)


def _heartbeat(services: Services, lease: PollLease) -> None:
    """Renew the lease (it must still be ours: PollLeaseLost otherwise)."""
    until = _lease_end(services)
    with services.ledger.transaction() as session:
        renew_poll_lease(session, lease, until)
    lease.until = until


def _heartbeat_if_due(services: Services, lease: PollLease) -> None:
    """Renew the lease once half of it has gone by: a poll that waits (for another worker's token refresh)
    is alive, and must not be taken for a dead one, dispatched again and counted towards parking."""
    if lease.until - services.clock() <= timedelta(seconds=services.settings.poll_lease_seconds / 2):
        _heartbeat(services, lease)


def _poll(services: Services, started: _Started, emit: Callable[[Message], None], report: PollReport,
          handover: HandOver) -> None:
    lease = started.lease
    tenant_id = lease.tenant_id
    reader = TenantReader(services, tenant_id, started.grant_id, keep_alive=partial(_heartbeat_if_due, services, lease),
                          token=started.token)

    def get(endpoint: str, params: dict[str, str | int], since: datetime | None) -> dict[str, Any]:
        _heartbeat_before_request(services, lease)
        return reader.get(endpoint, params, since)

    marks = started.watermarks
    read_reference_if_due(services, get, tenant_id, started.reference)
    read = partial(_read, services, get, lease, handover=handover, tally=report.count_page)
    read("PurchaseOrders", None, upsert_purchase_orders, emit, marks.get("PurchaseOrders"))

    def resolve_vendors(records: list[dict[str, Any]]) -> None:
        ids = {str(r["Contact"]["ContactID"]) for r in records if isinstance(r.get("Contact"), dict)
               and r["Contact"].get("ContactID")}
        resolve_contacts(services, get, tenant_id, ids)

    reads = started.credit_reads
    checked_at = services.clock()  # the credit-note read, if any, counts from here (the cadence's anchor)
    credits_due = credit_notes_due(reads.read_at, reads.asked_at, checked_at,
                                   services.settings.credit_note_interval_seconds, reads.poll_interval_seconds)
    allocation_moved: list[str] = []  # a bill of this poll whose AmountCredited moved: read credit notes now

    def upsert_bills_seeing_credits(session: Session, tenant_id: str, records: list[dict[str, Any]]) -> list[Message]:
        if credits_due:  # (not skipped once a move is seen: this transaction may be tried again, or the
            return upsert_bills(session, tenant_id, records)  # poll hand over, and the ask must be in the ledger)
        # Bills of the page whose AmountCredited is not what we hold: a credit note was applied to them
        # (Xero stamps the bill anew). A credit taken off a bill entirely is left to its CREDITNOTE webhook
        # or the credit notes' cadence.
        moved: list[str] = []
        messages = upsert_bills(session, tenant_id, records, credit_moves=moved)
        if moved and reads.read_at is not None:  # kept with the page: a retry reads them too
            ask_since_read(session, tenant_id, reads.read_at)
        allocation_moved.extend(moved)
        return messages

    read("Invoices", BILLS_WHERE, upsert_bills_seeing_credits, emit, marks.get("Invoices"), before_emit=resolve_vendors)
    if credits_due or allocation_moved:
        if allocation_moved:
            log.info("tenant %s: bill %s shows a credit allocation that moved; reading credit notes now",
                     tenant_id, allocation_moved[0])
        read(credit_notes.ENDPOINT, credit_notes.CREDIT_NOTES_WHERE, credit_notes.upsert_credit_notes, emit,
             marks.get(credit_notes.ENDPOINT), before_emit=resolve_vendors)
        with services.ledger.transaction() as session:
            credit_notes_read(session, tenant_id, checked_at)


class TenantReader:
    """GETs for one tenant in one poll; on 401 the token is replaced once through the shared path (by the
    token another worker already refreshed, if any), and a replacement refused too marks the grant only if
    nobody has replaced it since; otherwise the poll is simply tried again."""

    def __init__(self, services: Services, tenant_id: str, grant_id: int,
                 keep_alive: KeepAlive | None = None, token: IssuedToken | None = None) -> None:
        self._services = services
        self._tenant_id = tenant_id
        self._grant_id = grant_id
        self._keep_alive = keep_alive  # while waiting for another worker's token refresh (a poll's heartbeat)
        self._token = token or services.tokens.issue(grant_id, keep_alive=keep_alive)  # `token`: read already

    def get(self, endpoint: str, params: dict[str, str | int], since: datetime | None) -> dict[str, Any]:
        xero, tokens = self._services.xero, self._services.tokens
        try:
            return xero.get(self._token.value, self._tenant_id, endpoint, params, modified_since=since)
        except XeroTokenExpired:
            self._token = tokens.reissue(self._grant_id, self._token, keep_alive=self._keep_alive)
        try:
            return xero.get(self._token.value, self._tenant_id, endpoint, params, modified_since=since)
        except XeroTokenExpired as again:
            if tokens.mark_unauthorised(self._grant_id, self._token, str(again)):
                raise XeroGrantRevoked(f"Xero grant {self._grant_id}: a fresh token was refused too") from None
            raise XeroTokenExpired(f"Xero grant {self._grant_id}: a token was refused after another worker "
                                   "replaced it; the next try uses the new one") from None


Upsert = Callable[[Session, str, list[dict[str, Any]]], list[Message]]
Get = Callable[[str, dict[str, str | int], datetime | None], dict[str, Any]]


def _read(
    services: Services, get: Get, lease: PollLease, endpoint: str, where: str | None,
    upsert: Upsert, emit: Callable[[Message], None], previous: datetime | None,
    before_emit: Callable[[list[dict[str, Any]]], None] | None = None, *, handover: HandOver,
    tally: Callable[[str, int, int], None],
) -> None:
    """Read an endpoint since its watermark (`previous`, read when the poll took its lease), page by page
    (connector.xero.delta). Each page's records, the watermark and the lease's heartbeat move in one
    transaction, so a retry after any failure resumes where it stopped, and a poll that lost its lease
    commits nothing more. A page that leaves the watermark where it is and whose records the ledger holds
    at their versions already (an idle poll's pages: empty, or the newest records seen again through the
    watermark's overlap) has nothing to commit; the lease the poll started with covers its requests
    (_heartbeat_before_request). Before each page the poll's budget is looked at (`HandOver`); `tally`
    counts each page's records and map messages."""
    tenant_id = lease.tenant_id

    def get_next_page(endpoint: str, params: dict[str, str | int], since: datetime | None) -> dict[str, Any]:
        handover.before_page(tenant_id, endpoint)
        return get(endpoint, params, since)

    for page in read_delta(get_next_page, services.settings, endpoint, where=where, watermark=previous,
                           params=READ_PARAMS, lengths=column_lengths()):
        if page.checked.envelope_problem:
            log.error("tenant %s: %s (page %s)", tenant_id, page.checked.envelope_problem, page.cursor.page)
        records = page.usable
        mark = page.watermark(previous)
        if mark == previous and not page.rejected and _held_already(services, tenant_id, endpoint, records):
            tally(endpoint, len(page.checked.records), 0)
            continue
        renewed_until = _lease_end(services)
        commit = partial(_commit_page, upsert=upsert, lease=lease, renew_to=renewed_until, endpoint=endpoint,
                         now=services.clock(), previous=previous)
        try:
            messages = services.ledger.retrying(partial(commit, records=records, mark=mark, rejected=page.rejected))
        except Exception as error:  # the last line: a row the ledger refuses fails alone, the page goes on
            if refused_by_ledger(error) is None:
                raise
            messages = commit_record_by_record(services.ledger, commit, page.checked, mark,
                                               committed=partial(setattr, lease, "until", renewed_until))
        lease.until = renewed_until
        handover.progressed = handover.progressed or (mark is not None and (previous is None or mark > previous))
        previous = mark
        if before_emit is not None and messages:
            before_emit(records)
        for message in messages:
            emit(message)
        _mark_sent(services, tenant_id, messages)
        tally(endpoint, len(page.checked.records), len(messages))


#: The id of each delta endpoint's records (Invoices and CreditNotes are stored as rows of bills).
RECORD_IDS = {"Invoices": "InvoiceID", "CreditNotes": "CreditNoteID", "PurchaseOrders": "PurchaseOrderID"}


def _held_already(services: Services, tenant_id: str, endpoint: str, records: list[dict[str, Any]]) -> bool:
    """Whether the ledger holds every record of the page at the very version Xero sent (so what the page's
    rules compare with, such as a bill's credit allocation, is this record), and storing the page would
    change nothing: the upserts skip such records (store.xero_records). One statement, committed by itself,
    and none for an empty page; a record without an id is stored the usual way."""
    versions: dict[str, int] = {}
    for data in records:
        record_id = data.get(RECORD_IDS[endpoint])
        if not isinstance(record_id, str) or not record_id:
            return False
        versions[record_id] = max(versions.get(record_id, 0), ms_or_zero(data.get("UpdatedDateUTC")))
    if not versions:
        return True
    held = services.ledger.autocommitted(lambda session: held_versions(session, tenant_id, endpoint, versions))
    return all(held.get(record_id) == version for record_id, version in versions.items())


def _commit_page(session: Session, *, upsert: Upsert, lease: PollLease, renew_to: datetime, endpoint: str,
                 records: list[dict[str, Any]], mark: datetime | None, previous: datetime | None, now: datetime,
                 rejected: list[Checked]) -> list[Message]:
    """One page's records (those the intake check refused stored as far as they can be: bills HELD, POs
    marked unusable), the watermark after them (unless it stays at `previous`, the watermark this poll
    holds: a page of records it had already seen) and the lease's heartbeat, in one transaction."""
    renew_poll_lease(session, lease, renew_to)
    if endpoint in (RecordKind.BILL, RecordKind.CREDIT_NOTE):
        hold_bad_bills(session, lease.tenant_id, rejected, credit_notes=endpoint == RecordKind.CREDIT_NOTE)
    else:
        mark_unusable_purchase_orders(session, lease.tenant_id, rejected)
    found = upsert(session, lease.tenant_id, records)
    if mark != previous:
        save_delta_watermark(session, lease.tenant_id, endpoint, mark, now)
    return found


def _mark_sent(services: Services, tenant_id: str, messages: list[Message]) -> None:
    """The page's map messages are with the broker: the sweeper re-sends only bills never marked."""
    invoice_ids = [m.invoice_id for m in messages if isinstance(m, MapInvoice)]
    if invoice_ids:
        with services.ledger.transaction() as session:
            mark_map_sent(session, tenant_id, invoice_ids, services.clock())


def upsert_purchase_orders(session: Session, tenant_id: str, records: list[dict[str, Any]]) -> list[Message]:
    """Store the page's purchase orders; new or changed ones re-open bills held for an unknown PO."""
    changed = xero_records.upsert_purchase_orders(session, tenant_id, records)
    if not changed:
        return []
    return reopen_held(session, tenant_id, PO_REASONS, why=f"{changed} purchase orders new or changed in Xero")


def upsert_bills(session: Session, tenant_id: str, records: list[dict[str, Any]], *,
                 credit_moves: list[str] | None = None) -> list[Message]:
    """New or changed bills go (back) to DISCOVERED, each with its map message (store.xero_records);
    given `credit_moves`, the bills whose credit allocation moved are added to it."""
    return [MapInvoice(tenant_id, bill.invoice_id, bill.version)
            for bill in xero_records.upsert_bills(session, tenant_id, records, credit_moves=credit_moves)]
