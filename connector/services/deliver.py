"""deliver_batch: upload one stored file over SFTP with a commit point, and record the outcome.

An attempt row is committed before the network call and completed after it; the attempt owns the
batch's lease, and only the owner may write the outcome, so a late or superseded worker cannot undo
another's result. The remote rename is the commit point; if we die after it, the next attempt finds the
whole file and records DELIVERED without uploading again. Retryable failures set `next_attempt_at`
(exponential backoff with jitter) so a long outage is parked in the database and resumed by the sweeper,
not held in a broker countdown. Anything else ends the batch FAILED with its reason, kept for replay.
"""

from __future__ import annotations

import hashlib
import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from connector.domain.states import BatchState, BillState
from connector.errors import ConnectorError, PermanentError, SftpUnavailable
from connector.services.context import Services
from connector.sftp.connection import open_session
from connector.sftp.target import SftpTarget
from connector.sftp.upload import Outcome, remote_state
from connector.sftp.upload import deliver as upload
from connector.staging import stage
from connector.stampli import SIDECAR_SUFFIX, checksum_line
from connector.store.audit import record
from connector.store.models import Batch, Bill, DeliveryAttempt, OperationalEvent, SftpTargetRow, Tenant

log = logging.getLogger(__name__)

COMMITTING = "COMMITTING"          # recorded just before the remote rename
COMMIT_UNKNOWN = "COMMIT_UNKNOWN"  # failed after it: the rename may or may not have happened
BACKOFF_BASE_SECONDS = 5.0
BACKOFF_CAP_SECONDS = 6 * 3600.0


@dataclass(frozen=True)
class DeliveryReport:
    batch_id: int
    state: str
    uploaded: bool = False


class _Busy(Exception):
    """Raised inside the lease transaction to roll back our attempt row: someone else holds the batch."""


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff with jitter: many tenants failing together do not retry in lockstep."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(0, attempt - 1))
    return random.uniform(ceiling / 2, ceiling)


def deliver_batch(services: Services, batch_id: int, *, task_id: str | None = None) -> DeliveryReport:
    """Idempotent: a delivered or failed batch, or one another worker is delivering, is left alone."""
    try:
        attempt_id, attempt_number = _take_lease(services, batch_id, task_id)
    except _Busy:
        with services.ledger.transaction() as session:
            return DeliveryReport(batch_id, session.get_one(Batch, batch_id).state)
    try:
        with services.ledger.transaction() as session:
            batch = session.get_one(Batch, batch_id)
            name, content, sha256, tenant_id = batch.name, batch.content, batch.sha256, batch.tenant_id
            sidecar = checksum_line(name, content).encode() if batch.sidecar else None
            target = _target(services, session, session.get_one(Tenant, tenant_id))
        stage(services.settings.staging_dir / tenant_id, name, content)  # re-stage if the disk lost it
        with open_session(target) as sftp:
            if _an_earlier_attempt_may_have_committed(services, batch_id, attempt_id) and \
                    remote_state(sftp, name).final_size is None:
                raise OutcomeUnknown(
                    f"{name}: an earlier attempt stopped at the commit point and the file is not in the import "
                    "folder; Stampli may already have taken it. Check Stampli, then replay if it is missing")
            if sidecar is not None:  # first: the data file's rename must stay the batch's only commit point
                upload(sftp, name + SIDECAR_SUFFIX, sidecar, hashlib.sha256(sidecar).hexdigest())
            outcome = upload(sftp, name, content, sha256, before_commit=lambda: _committing(services, attempt_id))
    except SftpUnavailable as exc:
        delay = backoff_seconds(attempt_number)
        _finish(services, batch_id, attempt_id, error=exc, park_for=delay)
        log.warning("batch %s: SFTP unavailable (%s); next attempt in %.0fs", batch_id, type(exc).__name__, delay)
        raise SftpUnavailable(str(exc), retry_after=delay) from None
    except ConnectorError as exc:  # rejected by the server, bad configuration, bytes that do not match
        _finish(services, batch_id, attempt_id, error=exc)
        log.error("batch %s FAILED: %s (its file is kept for replay)", batch_id, exc)
        return DeliveryReport(batch_id, BatchState.FAILED)
    except BaseException as exc:  # a bug or a time limit: release the lease, let the sweeper try again
        _finish(services, batch_id, attempt_id, error=exc, park_for=backoff_seconds(attempt_number))
        raise
    uploaded = outcome.outcome is Outcome.UPLOADED
    _finish(services, batch_id, attempt_id, remote_size=outcome.remote_size, uploaded=uploaded)
    return DeliveryReport(batch_id, BatchState.DELIVERED, uploaded=uploaded)


class OutcomeUnknown(PermanentError):
    """A crash between the remote rename and our record of it, and the file is gone: a person decides."""


def _committing(services: Services, attempt_id: int) -> None:
    """Recorded just before the rename: from here the file may be visible to Stampli."""
    with services.ledger.transaction() as session:
        session.get_one(DeliveryAttempt, attempt_id).outcome = COMMITTING


def _an_earlier_attempt_may_have_committed(services: Services, batch_id: int, attempt_id: int) -> bool:
    with services.ledger.transaction() as session:
        return session.scalar(select(DeliveryAttempt.id).where(
            DeliveryAttempt.batch_id == batch_id, DeliveryAttempt.id != attempt_id,
            DeliveryAttempt.outcome.in_((COMMITTING, COMMIT_UNKNOWN))).limit(1)) is not None


def _take_lease(services: Services, batch_id: int, task_id: str | None) -> tuple[int, int]:
    now = services.clock()
    with services.ledger.transaction() as session:
        attempt = DeliveryAttempt(batch_id=batch_id, task_id=task_id, started_at=now)
        session.add(attempt)
        session.flush()
        leased = session.execute(
            update(Batch)
            .where(Batch.id == batch_id, Batch.state == BatchState.STAGED)
            .where(or_(Batch.lease_until.is_(None), Batch.lease_until <= now))
            .values(lease_until=now + timedelta(seconds=services.settings.delivery_lease_seconds),
                    lease_owner=attempt.id, attempts=Batch.attempts + 1)
        )
        if getattr(leased, "rowcount", 0) != 1:
            raise _Busy
        return attempt.id, session.get_one(Batch, batch_id).attempts


def _target(services: Services, session: Session, tenant: Tenant) -> SftpTarget:
    if tenant.sftp_target_id is None:
        raise PermanentError(f"tenant {tenant.id} has no SFTP target configured")
    row = session.get_one(SftpTargetRow, tenant.sftp_target_id)
    return SftpTarget(
        host=row.host,
        port=row.port,
        username=row.username,
        import_dir=row.import_dir,
        host_key=row.host_key,
        password=services.vault.decrypt(row.password_enc) if row.password_enc else None,
        private_key=services.vault.decrypt(row.private_key_enc) if row.private_key_enc else None,
        timeout=services.settings.sftp_timeout_seconds,
    )


def _finish(
    services: Services, batch_id: int, attempt_id: int, *, error: BaseException | None = None,
    park_for: float | None = None, remote_size: int | None = None, uploaded: bool = False,
) -> None:
    """Write the attempt's outcome; the batch and its bills change only while this attempt owns the lease."""

    def work(session: Session) -> None:
        now = services.clock()
        attempt = session.get_one(DeliveryAttempt, attempt_id)
        attempt.ended_at = now
        attempt.remote_size = remote_size
        reached_commit = attempt.outcome == COMMITTING
        if error is not None:
            attempt.error_class = type(error).__name__
            attempt.error_message = str(error)[:1000]
        batch = session.get_one(Batch, batch_id)
        if batch.lease_owner != attempt_id or batch.state != BatchState.STAGED:
            # Another attempt (or a replay) owns the batch now; a doubt about our rename is kept, though.
            attempt.outcome = COMMIT_UNKNOWN if reached_commit and error is not None else "SUPERSEDED"
            return
        batch.lease_until = None
        batch.lease_owner = None
        if error is None:
            attempt.outcome = "UPLOADED" if uploaded else "ALREADY_PRESENT"
            _mark_delivered(session, batch, now)
        elif park_for is not None:
            # Failing after the commit marker, we cannot know whether the rename happened: keep the doubt
            # on record, so the next attempt uploads again only if it finds no sign Stampli got the file.
            attempt.outcome = COMMIT_UNKNOWN if reached_commit else "RETRY"
            batch.last_error = f"{type(error).__name__}: {str(error)[:500]}"
            batch.next_attempt_at = now + timedelta(seconds=park_for)
        else:
            attempt.outcome = "FAILED"
            batch.last_error = f"{type(error).__name__}: {str(error)[:500]}"
            _mark_failed(session, batch)
            session.add(OperationalEvent(kind="batch_failed", tenant_id=batch.tenant_id,
                                         message=f"{batch.name}: {batch.last_error}"))

    services.ledger.retrying(work)


def _mark_delivered(session: Session, batch: Batch, now: datetime) -> None:
    batch.state = BatchState.DELIVERED
    batch.delivered_at = now
    batch.next_attempt_at = None
    batch.last_error = None
    for bill in session.scalars(select(Bill).where(Bill.batch_id == batch.id)):
        if bill.state != BillState.BATCHED:
            continue
        record(session, bill, BillState.DELIVERED, batch_id=batch.id, file_name=batch.name)
        if bill.mapped_version is not None and bill.version != bill.mapped_version:
            record(session, bill, BillState.CHANGED_AFTER_DELIVERY, reason="changed in Xero while in a batch")
    log.info("batch %s delivered", batch.name)


def _mark_failed(session: Session, batch: Batch) -> None:
    batch.state = BatchState.FAILED
    batch.next_attempt_at = None
    for bill in session.scalars(select(Bill).where(Bill.batch_id == batch.id)):
        if bill.state == BillState.BATCHED:
            record(session, bill, BillState.FAILED, reason=batch.last_error, batch_id=batch.id, file_name=batch.name)
