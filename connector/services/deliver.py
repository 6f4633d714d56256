"""deliver_batch: take the lease, upload, settle. The decisions live in `connector.domain.delivery`.

- The lease: one attempt at a time per batch, for less time than any delivery can run (the sftp queue's
  hard time limit, and `time_limit` for the CLI), so a worker whose lease lapsed has been stopped.
- The fence: just before the remote rename (the commit point) the attempt marks itself COMMITTING, and
  only while it still owns the lease with a margin left; a crash after the rename leaves that trace.
- The suppliers' documents of a batch in the `folder` layout go first, each as its own file (`.part`, size
  check, rename) under the batch's folder, looked for first like the data file, so a redelivery after a
  crash finds those already there and sends each once; the data file goes last, and its rename stays the
  batch's one commit point: Stampli never sees a bill whose document is still uploading.
- The folder decides a doubt: after a crash at the commit point the next attempt reads the import
  folder (our final file whole: delivered; our `.part` still there: the rename never happened; neither:
  the rename happened and Stampli's importer took the file).
- Settling is the only write of an outcome, retried through database blips: once the rename is known,
  the batch is DELIVERED whoever owns the lease by then.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import FrameType

from connector.domain.delivery import BatchState, Commit, Evidence, Failure, Settlement, commit_from_evidence
from connector.errors import DEFECTS, ConnectorError, Defect, PermanentError, RetryableError, SftpError, SftpUnavailable
from connector.failpoints import failpoint
from connector.limits import COMMIT_FENCE_SLACK_SECONDS
from connector.services import credit_notes, masterdata
from connector.services.context import Services
from connector.services.messages import Message
from connector.sftp.connection import SftpSession, open_session
from connector.sftp.target import SftpTarget
from connector.sftp.upload import Outcome, make_folders, remote_state
from connector.sftp.upload import deliver as upload
from connector.staging import stage_pieces
from connector.stampli import SIDECAR_SUFFIX, checksum_line_of
from connector.store import batches, deliveries
from connector.store.attachments import document_content
from connector.store.deliveries import DocumentFile, FileToDeliver, Lease, Parked

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliveryReport:
    batch_id: int
    state: str
    uploaded: bool = False
    waits_for: tuple[str, ...] = ()  # earlier files it waits for (domain.masterdata.waits_for): not tried yet
    # files that waited for this one, now free to go; credit notes its delivery re-opened, to be mapped
    follow_ups: tuple[Message, ...] = field(default=())


class LeaseLost(RetryableError):
    """The attempt no longer owns the batch (or too little of its lease is left) to pass the commit point."""


class DeliveryParked(PermanentError):
    """The batch's workers kept dying mid-delivery: it waits for a person (and a replay) instead of looping."""


class DeliveryTimeLimit(BaseException):
    """A delivery outside a worker ran past the sftp queue's hard time limit (a BaseException, like Celery's)."""


def delivery_time_limit(services: Services) -> float:
    """The longest any delivery may run (the sftp queue's hard limit); leases are validated to be longer."""
    return services.settings.sftp_time_limit_seconds


def commit_margin(services: Services) -> float:
    """Lease left at the fence: enough for the rename and the look after it to finish or time out."""
    return 2 * services.settings.sftp_timeout_seconds + COMMIT_FENCE_SLACK_SECONDS


def deliver_batch(services: Services, batch_id: int, *, task_id: str | None = None) -> DeliveryReport:
    """Idempotent: a delivered or failed batch, or one another attempt holds, is left alone; so is one that
    waits for an earlier master-data file of its tenant (see `masterdata.files_to_wait_for`)."""
    now = services.clock()
    waiting = services.ledger.retrying(partial(masterdata.files_to_wait_for, batch_id=batch_id, now=now))
    if waiting:
        log.info("batch %s waits for %s", batch_id, ", ".join(waiting))
        return DeliveryReport(batch_id, BatchState.STAGED, waits_for=tuple(waiting))
    taken = services.ledger.durably(partial(
        deliveries.take_lease, batch_id=batch_id, task_id=task_id, now=now,
        lease_seconds=services.settings.delivery_lease_seconds))
    if not isinstance(taken, Lease):
        if isinstance(taken, Parked):
            log.error("batch %s FAILED: %s", batch_id, taken.reason)
        with services.ledger.transaction() as session:
            return DeliveryReport(batch_id, deliveries.batch_state(session, batch_id))
    return _attempt(services, batch_id, taken)


def _attempt(services: Services, batch_id: int, lease: Lease) -> DeliveryReport:
    reached_commit = False

    def fence() -> None:
        nonlocal reached_commit
        passed = services.ledger.durably(partial(
            deliveries.mark_committing, batch_id=batch_id, attempt_id=lease.attempt_id, now=services.clock(),
            margin=commit_margin(services)))
        if not passed:
            raise LeaseLost(f"batch {batch_id}: the delivery lease ran out before the commit point; not renaming")
        reached_commit = True

    name = f"batch {batch_id}"
    try:
        with services.ledger.transaction() as session:
            job = deliveries.file_to_deliver(session, batch_id)
            name = job.name
            # Sent from its staged copy (staged again, in pieces, if the disk lost it): never held whole.
            staged = stage_pieces(services.settings.staging_dir / job.tenant_id, job.name, job.sha256, job.size,
                                  partial(batches.content_pieces, session, batch_id))
        target = _target(services, job)
        with open_session(target) as sftp:
            commit = _read_the_folder(services, sftp, batch_id, lease, job, staged) if lease.doubt else None
            remote_size: int | None = job.size
            if commit is None and lease.park_reason is not None:
                raise DeliveryParked(lease.park_reason)  # no rename proven: a person looks before another try
            if commit is None:
                _upload_documents(services, sftp, job)
                if job.sidecar:  # first: the data file's rename must stay the batch's only commit point
                    line = checksum_line_of(job.name, job.sha256).encode()
                    upload(sftp, job.name + SIDECAR_SUFFIX, line, hashlib.sha256(line).hexdigest())
                result = upload(sftp, job.name, staged, job.sha256, before_commit=fence)
                commit = Commit.RENAMED if result.outcome is Outcome.UPLOADED else Commit.FOUND_WHOLE
                remote_size = result.remote_size
    except ConnectorError as exc:
        not_renamed = isinstance(exc, SftpError) and exc.not_renamed
        commit = Commit.NOT_RENAMED if not_renamed else Commit.UNKNOWN if reached_commit else Commit.NOT_REACHED
        kind = (Failure.TRANSIENT if isinstance(exc, RetryableError)
                else Failure.PERMANENT if isinstance(exc, PermanentError) else Failure.INTERRUPTED)
        return _settle_failure(services, batch_id, lease, commit, kind, exc)
    except DEFECTS as exc:  # a bug or bad data: the next try meets it again, so the file waits for a person
        log.exception("batch %s (%s): delivery stopped by a bug or bad data", batch_id, name)
        commit = Commit.UNKNOWN if reached_commit else Commit.NOT_REACHED
        return _settle_failure(services, batch_id, lease, commit, Failure.PERMANENT, Defect(name, exc))
    except BaseException as exc:  # a time limit, a database lost: settle what we know, then let it propagate
        commit = Commit.UNKNOWN if reached_commit else Commit.NOT_REACHED
        with contextlib.suppress(Exception):
            _settle(services, batch_id, lease, commit, Failure.INTERRUPTED, exc, None)
        raise
    failpoint("deliver.after_rename")  # fault tests kill the process here: between the rename and our record
    decision = _settle(services, batch_id, lease, commit, None, None, remote_size)
    log.info("batch %s %s (%s)", job.name, decision.batch_state, decision.outcome)
    return DeliveryReport(batch_id, decision.batch_state, uploaded=commit is Commit.RENAMED,
                          follow_ups=(*masterdata.released_by(services, batch_id),
                                      *credit_notes.maps_after_delivery(services, batch_id)))


def _upload_documents(services: Services, sftp: SftpSession, job: FileToDeliver) -> None:
    """The batch's documents, before its data file; each one already in place (an earlier attempt's) is
    checked and left as it is, so however often a delivery is cut short, each lands once. Each document's
    bytes are read from the ledger just before it goes, so a worker holds one document at a time."""
    folders: set[str] = set()
    for document in job.documents:
        folder = document.path.rsplit("/", 1)[0]
        if folder not in folders:
            make_folders(sftp, document.path)
            folders.add(folder)
        upload(sftp, document.path, _content_of(services, job.tenant_id, document), document.sha256,
               before_commit=partial(failpoint, "deliver.document_before_rename"))


def _content_of(services: Services, tenant_id: str, document: DocumentFile) -> bytes:
    with services.ledger.transaction() as session:
        content = document_content(session, tenant_id, document.attachment_id)
    if content is None:
        raise PermanentError(f"document {document.path} (attachment {document.attachment_id}) is no longer in "
                             "the ledger; not sending the file")
    return content


def _read_the_folder(services: Services, sftp: SftpSession, batch_id: int, lease: Lease,
                     job: FileToDeliver, staged: Path) -> Commit | None:
    """An earlier attempt stopped at the commit point: the import folder says whether its rename happened."""
    name = job.name
    seen = remote_state(sftp, name)
    if seen.final_size is not None:  # believed once its bytes are checked; never uploaded again from here
        upload(sftp, name, staged, job.sha256, final_seen=True)
        return commit_from_evidence(Evidence.FINAL_WHOLE)
    if seen.part_size is not None:
        services.ledger.durably(partial(deliveries.resolve_doubt_not_renamed, batch_id=batch_id,
                                        attempt_id=lease.attempt_id))
        log.info("batch %s: %s.part is still in the folder, so the earlier rename never happened", batch_id, name)
        return None
    log.warning("batch %s: an earlier attempt reached the commit point and neither %s nor its .part is in the "
                "folder: the rename happened and Stampli took the file", batch_id, name)
    return commit_from_evidence(Evidence.NOTHING)


def _settle_failure(services: Services, batch_id: int, lease: Lease, commit: Commit, kind: Failure,
                    exc: ConnectorError) -> DeliveryReport:
    decision = _settle(services, batch_id, lease, commit, kind, exc, None)
    if decision.batch_state == BatchState.FAILED:
        log.error("batch %s FAILED: %s (its file is kept for replay)", batch_id, exc)
    elif decision.retry_in is not None:
        log.warning("batch %s: %s; next attempt in %.0fs", batch_id, exc, decision.retry_in)
        raise SftpUnavailable(str(exc), retry_after=decision.retry_in) from None
    else:
        log.warning("batch %s: %s (%s)", batch_id, exc, decision.outcome)
    return DeliveryReport(batch_id, decision.batch_state)


def _settle(services: Services, batch_id: int, lease: Lease, commit: Commit, failure: Failure | None,
            error: BaseException | None, remote_size: int | None) -> Settlement:
    return services.ledger.durably(partial(
        deliveries.settle_attempt, batch_id=batch_id, attempt_id=lease.attempt_id, commit=commit, failure=failure,
        error=error, remote_size=remote_size, now=services.clock(),
        backoff_cap=services.settings.delivery_backoff_cap_seconds))


def _target(services: Services, job: FileToDeliver) -> SftpTarget:
    row = job.target
    if row is None:
        raise PermanentError(f"tenant {job.tenant_id} has no SFTP target configured")
    return SftpTarget(
        host=row.host,
        port=row.port,
        username=row.username,
        import_dir=row.import_dir,
        host_key=row.host_key,
        password=services.vault.decrypt(row.password_enc, secret=f"SFTP target {row.id} (password)")
        if row.password_enc else None,
        private_key=services.vault.decrypt(row.private_key_enc, secret=f"SFTP target {row.id} (private key)")
        if row.private_key_enc else None,
        timeout=services.settings.sftp_timeout_seconds,
    )


@contextlib.contextmanager
def time_limited(seconds: float) -> Iterator[None]:
    """Outside a worker (the CLI's replay), stop a delivery that runs past the limit, as Celery would."""

    def expired(_signum: int, _frame: FrameType | None) -> None:
        raise DeliveryTimeLimit(f"delivery ran past its time limit of {seconds:.0f}s")

    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("a time-limited delivery must run on the main thread (signals reach only it)")
    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
