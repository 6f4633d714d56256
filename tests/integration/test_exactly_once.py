"""Exactly once at the commit point, against a real OpenSSH sshd whose import folder Stampli empties.

Each test forces one interleaving that used to send a file twice, strand a bill or ask a person for
nothing: leases that run out at the commit point, crashes on either side of the rename, a database blip
right after it, a full disk, a re-sent bill.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError

from connector.crypto import Vault
from connector.domain.delivery import AttemptOutcome, Commit, Failure
from connector.domain.states import BatchState, BillState
from connector.errors import ConfigurationError, SftpUnavailable
from connector.reporting import summarise
from connector.services import batch, deliver, map, poll
from connector.services.context import Services
from connector.services.replay import replay_invoice
from connector.settings import load_settings
from connector.store import deliveries
from connector.store.models import Batch, Bill, DeliveryAttempt
from sandbox.xero import XeroSandbox
from tests.support.delivery import (
    Clock,
    Importer,
    another_worker_fails_to_connect,
    batch_row,
    bill_states,
    crashed_at_the_commit_point,
    due_now,
    during_upload,
    outcomes,
)
from tests.support.pipeline import staged_batch
from tests.support.sshd import Sshd, SystemUser, small_filesystem


@pytest.fixture
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=7, tenants=1, bills=12) as running:
        yield running


@pytest.fixture
def clock(services: Services) -> Clock:
    ticking = Clock()
    services.clock = ticking
    return ticking


# --- finding 1: a lease that runs out at the commit point ---------------------------------------------

def test_a_rename_recorded_after_the_lease_passed_on_still_counts_and_the_file_goes_once(
    services: Services, sandbox: XeroSandbox, sshd: Sshd, import_dir: Path, clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    batch_id, _ = staged_batch(services, sandbox, sshd.target(import_dir))
    importer = Importer(import_dir)

    def lease_runs_out_then_b_fails() -> None:
        clock.advance(services.settings.delivery_lease_seconds + 1)  # A renamed, then stalled
        another_worker_fails_to_connect(services, batch_id, monkeypatch)
        importer.take()  # Stampli takes A's file meanwhile

    during_upload(monkeypatch, after_rename=lease_runs_out_then_b_fails)
    report = deliver.deliver_batch(services, batch_id, task_id="worker-A")
    assert report.state == batch_row(services, batch_id).state == BatchState.DELIVERED
    assert bill_states(services, batch_id) == {BillState.DELIVERED}
    due_now(services, batch_id)
    clock.advance(services.settings.delivery_lease_seconds + 1)
    assert deliver.deliver_batch(services, batch_id).state == BatchState.DELIVERED  # a late retry: nothing
    importer.take()
    assert len(importer.taken) == 1


def test_an_attempt_whose_lease_passed_on_before_the_commit_point_never_renames(
    services: Services, sandbox: XeroSandbox, sshd: Sshd, import_dir: Path, clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    batch_id, _ = staged_batch(services, sandbox, sshd.target(import_dir))
    importer = Importer(import_dir)

    def stalled_past_the_lease() -> None:
        clock.advance(services.settings.delivery_lease_seconds + 1)
        another_worker_fails_to_connect(services, batch_id, monkeypatch)

    during_upload(monkeypatch, before_rename=stalled_past_the_lease)
    report = deliver.deliver_batch(services, batch_id, task_id="worker-A")
    assert report.state == BatchState.STAGED
    assert [p.name for p in import_dir.iterdir() if not p.name.endswith(".part")] == []
    assert outcomes(services, batch_id) == [AttemptOutcome.SUPERSEDED, AttemptOutcome.RETRY]
    due_now(services, batch_id)
    assert deliver.deliver_batch(services, batch_id).state == BatchState.DELIVERED
    importer.take()
    assert len(importer.taken) == 1


def test_the_lease_must_outlive_the_delivery_time_limit() -> None:
    key = Vault.new_key()
    with pytest.raises(ConfigurationError, match="CONNECTOR_DELIVERY_LEASE_SECONDS must be above"):
        load_settings({"CONNECTOR_FERNET_KEYS": key, "CONNECTOR_DELIVERY_LEASE_SECONDS": "900"})
    load_settings({"CONNECTOR_FERNET_KEYS": key, "CONNECTOR_DELIVERY_LEASE_SECONDS": "60",
                   "CONNECTOR_SFTP_TIME_LIMIT_SECONDS": "20", "CONNECTOR_SFTP_TIMEOUT_SECONDS": "5"})


# --- the commit window resolves itself ----------------------------------------------------------------

def test_a_crash_after_the_rename_with_the_file_already_taken_is_delivered_without_a_second_upload(
    services: Services, sandbox: XeroSandbox, sshd: Sshd, import_dir: Path,
) -> None:
    batch_id, _ = staged_batch(services, sandbox, sshd.target(import_dir))
    crashed_at_the_commit_point(services, batch_id)  # renamed; Stampli took the file before anyone looked
    report = deliver.deliver_batch(services, batch_id)
    assert (report.state, report.uploaded) == (BatchState.DELIVERED, False)
    assert list(import_dir.iterdir()) == []
    assert outcomes(services, batch_id)[-1] == AttemptOutcome.TAKEN
    assert bill_states(services, batch_id) == {BillState.DELIVERED}


def test_a_crash_before_the_rename_leaves_its_part_and_the_next_attempt_delivers_once(
    services: Services, sandbox: XeroSandbox, sshd: Sshd, import_dir: Path,
) -> None:
    batch_id, name = staged_batch(services, sandbox, sshd.target(import_dir))
    content = batch_row(services, batch_id).content
    (import_dir / f"{name}.part").write_bytes(content)  # written, marked COMMITTING, never renamed
    crashed_at_the_commit_point(services, batch_id)
    report = deliver.deliver_batch(services, batch_id)
    assert (report.state, report.uploaded) == (BatchState.DELIVERED, True)
    assert sorted(p.name for p in import_dir.iterdir()) == [name]
    assert (import_dir / name).read_bytes() == content
    assert AttemptOutcome.COMMITTING not in outcomes(services, batch_id)  # the doubt was settled


def test_a_lost_answer_to_the_rename_is_settled_by_the_folder_on_the_next_attempt(
    services: Services, sandbox: XeroSandbox, sshd: Sshd, import_dir: Path, clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from connector.sftp import upload as sftp_upload

    batch_id, _ = staged_batch(services, sandbox, sshd.target(import_dir))
    real_commit = sftp_upload._commit

    def renamed_then_lost(*args: object, **kwargs: object) -> object:
        real_commit(*args, **kwargs)  # the rename happened on the server …
        raise SftpUnavailable("connection reset")  # … and its answer never came back

    monkeypatch.setattr(sftp_upload, "_commit", renamed_then_lost)
    with pytest.raises(SftpUnavailable):
        deliver.deliver_batch(services, batch_id)
    monkeypatch.setattr(sftp_upload, "_commit", real_commit)
    assert outcomes(services, batch_id) == [AttemptOutcome.COMMIT_UNKNOWN]
    importer = Importer(import_dir)
    importer.take()
    due_now(services, batch_id)
    assert deliver.deliver_batch(services, batch_id).state == BatchState.DELIVERED
    importer.take()
    assert len(importer.taken) == 1
    assert batch_row(services, batch_id).last_error is None


# --- finding 8: a database blip right after the rename ------------------------------------------------

def test_a_database_blip_right_after_the_rename_is_waited_out_and_recorded(
    services: Services, sandbox: XeroSandbox, sshd: Sshd, import_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    batch_id, _ = staged_batch(services, sandbox, sshd.target(import_dir))
    real_settle = deliveries.settle_attempt
    blips = [OperationalError("UPDATE batches", {}, Exception("server closed the connection unexpectedly"))] * 3

    def settle_through_a_blip(*args: Any, **kwargs: Any) -> Any:
        if blips:
            raise blips.pop()
        return real_settle(*args, **kwargs)

    monkeypatch.setattr(deliveries, "settle_attempt", settle_through_a_blip)
    assert deliver.deliver_batch(services, batch_id).state == BatchState.DELIVERED
    assert blips == []
    assert outcomes(services, batch_id) == [AttemptOutcome.UPLOADED]
    assert Importer(import_dir).folder.joinpath(batch_row(services, batch_id).name).exists()


# --- finding 7: permanent SFTP failures are failures --------------------------------------------------

def test_a_full_disk_fails_the_batch_with_its_reason_in_status_and_replay_sends_it_once_freed(
    services: Services, sandbox: XeroSandbox, sshd: Sshd, import_dir: Path, sftp_user: SystemUser,
) -> None:
    with small_filesystem(import_dir / "small", 64 * 1024, sftp_user) as small:
        (small / "ballast").write_bytes(b"\0" * (60 * 1024))  # the customer's folder is nearly full
        batch_id, name = staged_batch(services, sandbox, sshd.target(small))
        with services.ledger.transaction() as session:  # a file larger than what is left
            session.execute(update(Batch).where(Batch.id == batch_id).values(
                content=b"x" * (32 * 1024), sha256=hashlib.sha256(b"x" * (32 * 1024)).hexdigest()))
        assert deliver.deliver_batch(services, batch_id).state == BatchState.FAILED
        row = batch_row(services, batch_id)
        assert "full disk or a quota" in (row.last_error or "") or "refused the write" in (row.last_error or "")
        assert any(name in line and "FAILED" in line for line in summarise(services.ledger).attention)
        assert sorted(p.name for p in small.iterdir()) == ["ballast"]
        (small / "ballast").unlink()  # a person frees space, then replays
        some = next(iter(_bill_ids(services, batch_id)))
        assert replay_invoice(services, some, actor="ap.ops").state == BatchState.DELIVERED
        assert sorted(p.name for p in small.iterdir()) == [name]


def _bill_ids(services: Services, batch_id: int) -> set[str]:
    with services.ledger.transaction() as session:
        return set(session.scalars(select(Bill.invoice_id).where(Bill.batch_id == batch_id)))


# --- redeliveries: a batch whose worker keeps dying is parked, not retried forever --------------------

def test_a_batch_whose_worker_died_three_times_is_failed_with_the_reason(
    services: Services, sandbox: XeroSandbox, sshd: Sshd, import_dir: Path,
) -> None:
    batch_id, _ = staged_batch(services, sandbox, sshd.target(import_dir))
    for hour in (3, 2, 1):  # each attempt took the lease and its worker died mid-upload
        taken = services.ledger.retrying(partial(deliveries.take_lease, batch_id=batch_id, task_id="doomed",
                                                 now=services.clock() - timedelta(hours=hour), lease_seconds=60))
        assert isinstance(taken, deliveries.Lease)
    assert deliver.deliver_batch(services, batch_id).state == BatchState.FAILED
    row = batch_row(services, batch_id)
    assert row.abandoned_attempts == 3
    assert "stopped its worker 3 times" in (row.last_error or "")
    assert outcomes(services, batch_id).count(AttemptOutcome.ABANDONED) == 3
    assert list(import_dir.iterdir()) == []


# --- finding 2: a re-sent bill is never stranded ------------------------------------------------------

def test_a_changed_bill_re_sent_on_request_goes_into_a_new_file(
    services: Services, sandbox: XeroSandbox, sshd: Sshd, import_dir: Path,
) -> None:
    batch_id, _ = staged_batch(services, sandbox, sshd.target(import_dir))
    assert deliver.deliver_batch(services, batch_id).state == BatchState.DELIVERED
    with services.ledger.transaction() as session:
        delivered = session.scalars(select(Bill).where(Bill.batch_id == batch_id).order_by(Bill.id)).first()
        assert delivered is not None
        tenant_id, invoice_id = delivered.tenant_id, delivered.invoice_id
        changed = {**delivered.payload, "UpdatedDateUTC": f"/Date({delivered.version + 60_000}+0000)/",
                   "Reference": "corrected by the supplier"}
    services.ledger.retrying(lambda s: poll.upsert_bills(s, tenant_id, [changed]))
    assert replay_invoice(services, invoice_id, actor="ap.ops", resend=True).state == "REOPENED"
    with services.ledger.transaction() as session:
        version = session.scalars(select(Bill.version).where(Bill.invoice_id == invoice_id)).one()
    map.map_invoice(services, tenant_id, invoice_id, version)
    [message] = batch.assemble_batches(services, tenant_id)
    assert deliver.deliver_batch(services, message.batch_id).state == BatchState.DELIVERED  # type: ignore[union-attr]
    with services.ledger.transaction() as session:
        again = session.scalars(select(Bill).where(Bill.invoice_id == invoice_id)).one()
        assert (again.state, again.batch_id) == (BillState.DELIVERED, message.batch_id)  # type: ignore[union-attr]
    assert len(list(import_dir.iterdir())) == 2


def test_every_settle_path_is_recorded_once(services: Services, sandbox: XeroSandbox, sshd: Sshd,
                                            import_dir: Path) -> None:
    """A late settle of an attempt that never owned the batch cannot move it (the table refuses)."""
    batch_id, _ = staged_batch(services, sandbox, sshd.target(import_dir))
    assert deliver.deliver_batch(services, batch_id).state == BatchState.DELIVERED
    with services.ledger.transaction() as session:
        ghost = DeliveryAttempt(batch_id=batch_id, task_id="ghost")
        session.add(ghost)
        session.flush()
        ghost_id = ghost.id
    decided = services.ledger.retrying(partial(
        deliveries.settle_attempt, batch_id=batch_id, attempt_id=ghost_id, commit=Commit.NOT_REACHED,
        failure=Failure.PERMANENT, error=SftpUnavailable("late"), remote_size=None, now=services.clock()))
    assert (decided.outcome, decided.batch_state) == (AttemptOutcome.SUPERSEDED, BatchState.DELIVERED)


# --- every delivery path runs under a time limit, the CLI's replay included ---------------------------

def test_a_replay_from_the_command_line_is_stopped_at_the_delivery_time_limit(
    sandbox: XeroSandbox, tmp_path: Path, sshd: Sshd, import_dir: Path,
) -> None:
    import socket
    import time

    from tests.support.services import services_for_sandbox

    limited = services_for_sandbox(sandbox, tmp_path, "sqlite", extra_env={
        "CONNECTOR_SFTP_TIME_LIMIT_SECONDS": "1", "CONNECTOR_SFTP_TIMEOUT_SECONDS": "30",
        "CONNECTOR_DELIVERY_LEASE_SECONDS": "70"})
    try:
        with socket.socket() as silent:  # a server that accepts and never answers
            silent.bind(("127.0.0.1", 0))
            silent.listen()
            target = sshd.target(import_dir, port=silent.getsockname()[1], timeout=30)
            batch_id, _ = staged_batch(limited, sandbox, target)
            started = time.monotonic()
            with pytest.raises(deliver.DeliveryTimeLimit):
                replay_invoice(limited, next(iter(_bill_ids(limited, batch_id))), actor="ap.ops")
            assert time.monotonic() - started < 10
        assert outcomes(limited, batch_id) == [AttemptOutcome.RETRY]
        row = batch_row(limited, batch_id)
        assert (row.state, row.lease_owner) == (BatchState.STAGED, None)
    finally:
        limited.close()
