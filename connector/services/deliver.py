"""deliver_batch: upload one stored file over SFTP with a commit point, and record the outcome.

An attempt row is committed before the network call and completed after it. The remote rename is the
commit point; if we die after it, the next attempt finds the whole file and records DELIVERED without
uploading again. Retryable failures set `next_attempt_at` (exponential backoff with jitter) so that a
long outage is parked in the database and resumed by the sweeper, not held in a broker countdown.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import or_, select, update

from connector.domain.states import BatchState, BillState
from connector.errors import SftpRejected, SftpUnavailable
from connector.services.context import Services
from connector.sftp.connection import open_session
from connector.sftp.target import SftpTarget
from connector.sftp.upload import Outcome
from connector.sftp.upload import deliver as upload
from connector.staging import stage
from connector.store.audit import record
from connector.store.models import Batch, Bill, DeliveryAttempt, SftpTargetRow, Tenant

log = logging.getLogger(__name__)

BACKOFF_BASE_SECONDS = 5.0
BACKOFF_CAP_SECONDS = 6 * 3600.0


@dataclass(frozen=True)
class DeliveryReport:
    batch_id: int
    state: str
    uploaded: bool = False


def backoff_seconds(attempt: int) -> float:
    """Full-jitter exponential backoff: many tenants failing together do not retry in lockstep."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(0, attempt - 1))
    return random.uniform(ceiling / 2, ceiling)


def deliver_batch(services: Services, batch_id: int, *, task_id: str | None = None) -> DeliveryReport:
    """Idempotent: a delivered or failed batch, or one another worker is delivering, is left alone."""
    now = services.clock()
    with services.ledger.transaction() as session:
        leased = session.execute(
            update(Batch)
            .where(Batch.id == batch_id, Batch.state == BatchState.STAGED)
            .where(or_(Batch.lease_until.is_(None), Batch.lease_until <= now))
            .values(lease_until=now + timedelta(seconds=services.settings.delivery_lease_seconds))
        )
        batch = session.get_one(Batch, batch_id)
        if getattr(leased, "rowcount", 0) != 1:
            return DeliveryReport(batch_id, batch.state)
        target = _target(services, session.get_one(Tenant, batch.tenant_id))
        name, content, sha256, tenant_id = batch.name, batch.content, batch.sha256, batch.tenant_id
        batch.attempts += 1
        attempt = DeliveryAttempt(batch_id=batch_id, task_id=task_id, started_at=services.clock())
        session.add(attempt)
        session.flush()
        attempt_id, attempt_number = attempt.id, batch.attempts
    stage(services.settings.staging_dir / tenant_id, name, content)  # re-stage if the disk lost it
    try:
        with open_session(target) as sftp:
            outcome = upload(sftp, name, content, sha256)
    except SftpUnavailable as exc:
        delay = backoff_seconds(attempt_number)
        _attempt_failed(services, batch_id, attempt_id, exc, park_for=delay)
        log.warning("batch %s: SFTP unavailable (%s); next attempt in %.0fs", name, type(exc).__name__, delay)
        raise SftpUnavailable(str(exc), retry_after=delay) from None
    except SftpRejected as exc:
        _attempt_failed(services, batch_id, attempt_id, exc, park_for=None)
        log.error("batch %s FAILED: %s (stored for replay)", name, exc)
        return DeliveryReport(batch_id, BatchState.FAILED)
    uploaded = outcome.outcome is Outcome.UPLOADED
    _delivered(services, batch_id, attempt_id, outcome.remote_size, uploaded)
    return DeliveryReport(batch_id, BatchState.DELIVERED, uploaded=uploaded)


def _target(services: Services, tenant: Tenant) -> SftpTarget:
    if tenant.sftp_target_id is None:
        raise SftpRejected(f"tenant {tenant.id} has no SFTP target configured")
    with services.ledger.transaction() as session:
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


def _delivered(services: Services, batch_id: int, attempt_id: int, remote_size: int | None, uploaded: bool) -> None:
    now = services.clock()
    with services.ledger.transaction() as session:
        batch = session.get_one(Batch, batch_id)
        batch.state = BatchState.DELIVERED
        batch.delivered_at = now
        batch.lease_until = None
        batch.next_attempt_at = None
        batch.last_error = None
        attempt = session.get_one(DeliveryAttempt, attempt_id)
        attempt.ended_at = now
        attempt.outcome = "UPLOADED" if uploaded else "ALREADY_PRESENT"
        attempt.remote_size = remote_size
        for bill in session.scalars(select(Bill).where(Bill.batch_id == batch_id)):
            if bill.state != BillState.BATCHED:
                continue
            record(session, bill, BillState.DELIVERED, batch_id=batch_id, file_name=batch.name)
            if bill.mapped_version is not None and bill.version != bill.mapped_version:
                record(session, bill, BillState.CHANGED_AFTER_DELIVERY, reason="changed in Xero while in a batch")
    log.info("batch %s delivered (%s)", batch_id, "uploaded" if uploaded else "already on the server")


def _attempt_failed(
    services: Services, batch_id: int, attempt_id: int, error: Exception, *, park_for: float | None
) -> None:
    now = services.clock()
    with services.ledger.transaction() as session:
        batch = session.get_one(Batch, batch_id)
        attempt = session.get_one(DeliveryAttempt, attempt_id)
        attempt.ended_at = now
        attempt.error_class = type(error).__name__
        attempt.error_message = str(error)[:1000]
        batch.last_error = f"{type(error).__name__}: {str(error)[:500]}"
        batch.lease_until = None
        if park_for is not None:
            attempt.outcome = "RETRY"
            batch.next_attempt_at = now + timedelta(seconds=park_for)
            return
        attempt.outcome = "FAILED"
        batch.state = BatchState.FAILED
        batch.next_attempt_at = None
        for bill in session.scalars(select(Bill).where(Bill.batch_id == batch_id)):
            if bill.state == BillState.BATCHED:
                record(
                    session, bill, BillState.FAILED, reason=batch.last_error, batch_id=batch_id, file_name=batch.name
                )
