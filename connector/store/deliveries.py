"""Batches and delivery attempts in the ledger: leases, the commit marker, and settling an attempt.

The decisions are `connector.domain.delivery`'s; this module only reads the facts they need and writes
what they decided, each in the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, defer

from connector.domain.credit_notes import REOPENED_BY_DELIVERY
from connector.domain.delivery import (
    DELIVERY_BACKOFF_CAP_SECONDS,
    DOUBTFUL,
    MAX_ABANDONED_ATTEMPTS,
    AttemptFacts,
    AttemptOutcome,
    BatchState,
    Commit,
    Failure,
    Settlement,
    batch_can_move,
    delivery_backoff,
    settle,
)
from connector.domain.states import BillState
from connector.errors import PermanentError
from connector.store import batches
from connector.store.attachments import folder_of_batch
from connector.store.audit import BillPage
from connector.store.credit_notes import reopen_waiting
from connector.store.masterdata import record_file_outcome, wake_waiting
from connector.store.models import Batch, Bill, DeliveryAttempt, OperationalEvent, SftpTargetRow, Tenant


class IllegalBatchMove(RuntimeError):
    """A bug: code tried a batch move the delivery table forbids."""


@dataclass(frozen=True)
class Lease:
    """One attempt's hold on a batch: until `until`, no other attempt may touch the remote file."""

    attempt_id: int
    attempts: int
    until: datetime
    doubt: bool  # an earlier attempt reached the commit point and never learned whether the rename happened
    #: Set when the batch would be parked (its workers kept dying) but an earlier rename may have happened:
    #: this attempt only reads the folder, to settle a delivery it proves, and otherwise parks the batch.
    park_reason: str | None = None


@dataclass(frozen=True)
class Parked:
    """The batch was given up as the lease was taken: its workers died too often mid-delivery."""

    reason: str


@dataclass(frozen=True)
class DocumentFile:
    """A supplier document the batch delivers in its folder: its path under the import folder, and which of
    the ledger's documents it is (its bytes are read when it is uploaded, one document at a time)."""

    path: str
    attachment_id: str
    sha256: str


@dataclass(frozen=True)
class FileToDeliver:
    """What a delivery sends; its bytes are not read here (`batches.content_pieces` stages them in pieces)."""

    tenant_id: str
    name: str
    size: int
    sha256: str
    sidecar: bool
    target: SftpTargetRow | None
    documents: tuple[DocumentFile, ...] = ()  # uploaded before the data file, whose rename is the commit point


def take_lease(session: Session, batch_id: int, *, task_id: str | None, now: datetime,
               lease_seconds: float) -> Lease | Parked | None:
    """Start an attempt if the batch is STAGED, free (never leased, released, or lapsed) and not backing off
    after a failed attempt (`backoff_until`, not `next_attempt_at`: a file waiting for an earlier master-data
    file sets that to be looked at again, and goes as soon as that file is delivered); None if not. So a
    second message for the batch (the broker redelivering it, the sweeper) cannot try it again early.

    A lapsed lease whose attempt never ended means its worker died: that attempt is closed as ABANDONED
    (a COMMITTING one keeps its doubt for the folder to settle) and counted; past the limit the batch is
    parked as FAILED instead of being tried forever."""
    attempt = DeliveryAttempt(batch_id=batch_id, task_id=(task_id or "")[:64] or None, started_at=now)
    session.add(attempt)
    session.flush()
    batch = batches.batch(session, batch_id)
    previous_owner = batch.lease_owner
    until = now + timedelta(seconds=lease_seconds)
    leased = session.execute(
        update(Batch)
        .where(Batch.id == batch_id, Batch.state == BatchState.STAGED, Batch.lease_owner == previous_owner)
        .where(or_(Batch.lease_until.is_(None), Batch.lease_until <= now))
        .where(or_(Batch.backoff_until.is_(None), Batch.backoff_until <= now))
        .values(lease_until=until, lease_owner=attempt.id, attempts=Batch.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    if getattr(leased, "rowcount", 0) != 1:
        session.delete(attempt)
        return None
    session.refresh(batch)
    if previous_owner is not None:
        dead = session.get(DeliveryAttempt, previous_owner)
        if dead is not None and dead.ended_at is None:
            dead.ended_at = now
            if dead.outcome == AttemptOutcome.STARTED:
                dead.outcome = AttemptOutcome.ABANDONED
            batch.abandoned_attempts += 1
    doubt = session.scalar(select(DeliveryAttempt.id).where(
        DeliveryAttempt.batch_id == batch_id, DeliveryAttempt.id != attempt.id,
        DeliveryAttempt.outcome.in_(tuple(DOUBTFUL))).limit(1)) is not None
    if batch.abandoned_attempts >= MAX_ABANDONED_ATTEMPTS:
        reason = (f"delivery of {batch.name} stopped its worker {batch.abandoned_attempts} times before "
                  "finishing; see the sftp worker's logs, then replay the file")
        if doubt:  # the folder may still prove an earlier rename: look before asking a person
            return Lease(attempt.id, batch.attempts, until, doubt, park_reason=reason)
        attempt.ended_at = now
        attempt.outcome = AttemptOutcome.FAILED
        attempt.error_class = "Parked"
        attempt.error_message = reason
        _apply(session, batch, attempt, Settlement(AttemptOutcome.FAILED, BatchState.FAILED, release_lease=True,
                                                    announce=True), error=f"Parked: {reason}", now=now)
        return Parked(reason)
    return Lease(attempt.id, batch.attempts, until, doubt)


def file_to_deliver(session: Session, batch_id: int) -> FileToDeliver:
    batch = batches.batch(session, batch_id)
    tenant = session.get_one(Tenant, batch.tenant_id)
    target = None if tenant.sftp_target_id is None else session.get_one(SftpTargetRow, tenant.sftp_target_id)
    documents = []
    for placed, kept in folder_of_batch(session, batch.tenant_id, batch_id):
        if not kept:
            raise PermanentError(f"{batch.name}: document {placed.path} (attachment {placed.attachment_id} of "
                                 f"{placed.invoice_id}) is no longer in the ledger; not sending the file")
        documents.append(DocumentFile(placed.path, placed.attachment_id, placed.sha256))
    return FileToDeliver(batch.tenant_id, batch.name, batches.content_size(session, batch_id), batch.sha256,
                         batch.sidecar, target, tuple(documents))


def batch_state(session: Session, batch_id: int) -> BatchState:
    return BatchState(batches.batch(session, batch_id).state)


def mark_committing(session: Session, batch_id: int, attempt_id: int, *, now: datetime, margin: float) -> bool:
    """The fence before the rename: only the lease's owner, with `margin` seconds of lease left, may pass.
    It marks the attempt COMMITTING in the same transaction, so a crash after the rename leaves a trace."""
    batch = batches.batch(session, batch_id)
    if (batch.lease_owner != attempt_id or batch.state != BatchState.STAGED or batch.lease_until is None
            or batch.lease_until - timedelta(seconds=margin) <= now):
        return False
    session.get_one(DeliveryAttempt, attempt_id).outcome = AttemptOutcome.COMMITTING
    return True


def resolve_doubt_not_renamed(session: Session, batch_id: int, attempt_id: int) -> None:
    """The folder shows our `.part` still there: no earlier rename happened. Recorded before the part is
    removed, so a crash after removing it cannot later be read as "renamed and taken"."""
    session.execute(
        update(DeliveryAttempt)
        .where(DeliveryAttempt.batch_id == batch_id, DeliveryAttempt.id != attempt_id,
               DeliveryAttempt.outcome.in_(tuple(DOUBTFUL)))
        .values(outcome=AttemptOutcome.RETRY)
        .execution_options(synchronize_session=False)
    )


def settle_attempt(session: Session, batch_id: int, attempt_id: int, *, commit: Commit, failure: Failure | None,
                   error: BaseException | None, remote_size: int | None, now: datetime,
                   backoff_cap: float = DELIVERY_BACKOFF_CAP_SECONDS) -> Settlement:
    """Close the attempt with `domain.delivery.settle`'s decision and apply it to the batch and its bills."""
    batch = batches.batch(session, batch_id)
    attempt = session.get_one(DeliveryAttempt, attempt_id)
    decision = settle(AttemptFacts(
        batch_state=BatchState(batch.state), owns_lease=batch.lease_owner == attempt_id, commit=commit,
        failure=failure, attempts=batch.attempts), backoff=partial(delivery_backoff, cap=backoff_cap))
    attempt.ended_at = now
    attempt.remote_size = remote_size
    attempt.outcome = decision.outcome
    text = None
    if error is not None:
        attempt.error_class = type(error).__name__[:100]
        attempt.error_message = str(error)[:1000]
        text = f"{type(error).__name__}: {str(error)[:500]}"
    _apply(session, batch, attempt, decision, error=text, now=now)
    return decision


def _apply(session: Session, batch: Batch, attempt: DeliveryAttempt, decision: Settlement, *, error: str | None,
           now: datetime) -> None:
    source, target = BatchState(batch.state), decision.batch_state
    if not batch_can_move(source, target):
        raise IllegalBatchMove(f"batch {batch.name}: {source} → {target} is not allowed")
    if decision.release_lease and batch.lease_owner == attempt.id:
        batch.lease_until = None
        batch.lease_owner = None
    if decision.retry_in is not None:
        batch.next_attempt_at = batch.backoff_until = now + timedelta(seconds=decision.retry_in)
        batch.last_error = error
    if target == source:
        return
    batch.state = target
    if batch.kind != "bills":  # a master-data file: each record it carries is audited with the file's end
        record_file_outcome(session, batch, str(target), reason=error if target == BatchState.FAILED else None)
        if target == BatchState.DELIVERED:  # the files that waited for it are due (whatever becomes of the wake-up)
            wake_waiting(session, batch, now=now)
    if target == BatchState.DELIVERED:
        batch.delivered_at = now
        batch.next_attempt_at = batch.backoff_until = None
        batch.last_error = None
        batch.lease_until = None
        batch.lease_owner = None
        page = BillPage(session, batch.tenant_id)  # the file's bills move in two statements, not one UPDATE each
        carried = page.read_batch(batch.id)
        delivered = [b for b in carried.values() if b.state in (BillState.BATCHED, BillState.FAILED)]
        for bill in delivered:
            page.record(bill, BillState.DELIVERED, batch_id=batch.id, file_name=batch.name)
        page.write()
        changed = [b.invoice_id for b in delivered if b.mapped_version is not None and b.version != b.mapped_version]
        if changed:  # a second page: each bill's audit rows keep their order
            page = BillPage(session, batch.tenant_id)
            for bill in page.read(changed).values():
                page.record(bill, BillState.CHANGED_AFTER_DELIVERY, reason="changed in Xero while in a batch")
            page.write()
        if batch.kind == "bills":  # credit notes waiting for these bills follow them in the next file
            reopen_waiting(session, batch.tenant_id, delivered=list(carried),
                           reason=f"{REOPENED_BY_DELIVERY} {batch.name}")
    elif target == BatchState.FAILED:
        batch.next_attempt_at = batch.backoff_until = None
        batch.last_error = error
        page = BillPage(session, batch.tenant_id)
        for bill in page.read_batch(batch.id).values():
            if bill.state == BillState.BATCHED:
                page.record(bill, BillState.FAILED, reason=error, batch_id=batch.id, file_name=batch.name)
        page.write()
        if decision.announce:
            session.add(OperationalEvent(kind="batch_failed", tenant_id=batch.tenant_id,
                                         message=f"{batch.name}: {error}"))


def delivered_bills(session: Session, batch_id: int) -> tuple[str, list[str]] | None:
    """(tenant, the InvoiceIDs it carries) of a delivered file of bills; None for any other file."""
    batch = session.get(Batch, batch_id, options=[defer(Batch.content)])
    if batch is None or batch.kind != "bills" or batch.state != BatchState.DELIVERED:
        return None
    return batch.tenant_id, list(session.scalars(select(Bill.invoice_id).where(Bill.batch_id == batch_id)
                                                 .order_by(Bill.id)))
