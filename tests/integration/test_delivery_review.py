"""Exactly once under interleavings a review found: each test forces one that asked a person for nothing,
parked a file for good, or could send a file twice; against a real OpenSSH sshd whose folder Stampli empties.
"""

from __future__ import annotations

import contextlib
import errno
import threading
from collections.abc import Iterator
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import paramiko
import pytest
from sqlalchemy import select, update

from connector.domain.delivery import AttemptOutcome
from connector.domain.states import BatchState, BillState
from connector.errors import SftpUnavailable
from connector.services import deliver
from connector.services.context import Services
from connector.services.history import replay_file
from connector.services.replay import replay_invoice
from connector.services.status_report import status_report
from connector.sftp import upload as sftp_upload
from connector.store import deliveries
from connector.store.db import Session
from connector.store.models import Batch, Bill
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
from tests.support.sshd import Sshd


@pytest.fixture
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=7, tenants=1, bills=12) as running:
        yield running


def some_bill(services: Services, batch_id: int) -> str:
    with services.ledger.transaction() as session:
        return str(session.scalars(select(Bill.invoice_id).where(Bill.batch_id == batch_id)).first())


def workers_died(services: Services, batch_id: int, times: int) -> None:
    """`times` attempts took the lease and their workers died mid-upload (each lease long lapsed)."""
    for hour in range(times, 0, -1):
        taken = services.ledger.retrying(partial(deliveries.take_lease, batch_id=batch_id, task_id="doomed",
                                                 now=services.clock() - timedelta(hours=hour), lease_seconds=60))
        assert isinstance(taken, deliveries.Lease)


# --- a parked file is what a person replays -----------------------------------------------------------

def test_a_batch_parked_because_its_worker_kept_dying_is_delivered_when_a_person_replays_it(
    services: Services, sandbox: XeroSandbox, sshd: Sshd, import_dir: Path,
) -> None:
    batch_id, name = staged_batch(services, sandbox, sshd.target(import_dir))
    workers_died(services, batch_id, 3)
    assert deliver.deliver_batch(services, batch_id).state == BatchState.FAILED  # parked, as the README says
    assert replay_invoice(services, some_bill(services, batch_id), actor="ap.ops").state == BatchState.DELIVERED
    assert bill_states(services, batch_id) == {BillState.DELIVERED}
    assert sorted(p.name for p in import_dir.iterdir()) == [name]


def test_a_batch_whose_last_dead_worker_had_renamed_is_settled_by_the_folder_not_parked(
    services: Services, sandbox: XeroSandbox, sshd: Sshd, import_dir: Path,
) -> None:
    batch_id, _ = staged_batch(services, sandbox, sshd.target(import_dir))
    workers_died(services, batch_id, 3)  # two of them found dead so far
    crashed_at_the_commit_point(services, batch_id)  # the third died after its rename; Stampli took the file
    report = deliver.deliver_batch(services, batch_id)
    assert (report.state, report.uploaded) == (BatchState.DELIVERED, False)
    assert outcomes(services, batch_id)[-1] == AttemptOutcome.TAKEN
    assert list(import_dir.iterdir()) == []


def test_a_batch_whose_last_dead_worker_never_renamed_is_parked_without_another_upload(
    services: Services, sandbox: XeroSandbox, sshd: Sshd, import_dir: Path,
) -> None:
    batch_id, name = staged_batch(services, sandbox, sshd.target(import_dir))
    (import_dir / f"{name}.part").write_bytes(batch_row(services, batch_id).content)
    workers_died(services, batch_id, 3)  # two of them found dead so far
    crashed_at_the_commit_point(services, batch_id)  # the third died before its rename: its .part is there
    assert deliver.deliver_batch(services, batch_id).state == BatchState.FAILED
    assert "stopped its worker 3 times" in (batch_row(services, batch_id).last_error or "")
    assert not (import_dir / name).exists()


# --- the folder decides, even when Stampli takes the file while we look --------------------------------

def test_a_file_taken_while_its_bytes_are_read_back_is_settled_by_the_folder_not_failed(
    services: Services, sandbox: XeroSandbox, sshd: Sshd, import_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    batch_id, name = staged_batch(services, sandbox, sshd.target(import_dir))
    (import_dir / name).write_bytes(batch_row(services, batch_id).content)  # renamed, then the worker died
    crashed_at_the_commit_point(services, batch_id)
    importer = Importer(import_dir)
    real_sha256 = sftp_upload._sha256

    def taken_between_the_look_and_the_read(sftp: Any, path: str) -> str:
        importer.take()  # Stampli's importer picks the file up right after our stat saw it
        return real_sha256(sftp, path)

    monkeypatch.setattr(sftp_upload, "_sha256", taken_between_the_look_and_the_read)
    with pytest.raises(SftpUnavailable):
        deliver.deliver_batch(services, batch_id)
    monkeypatch.setattr(sftp_upload, "_sha256", real_sha256)
    assert batch_row(services, batch_id).state == BatchState.STAGED  # a passing condition, not a person's
    due_now(services, batch_id)
    report = deliver.deliver_batch(services, batch_id)
    assert (report.state, report.uploaded) == (BatchState.DELIVERED, False)
    assert outcomes(services, batch_id)[-1] == AttemptOutcome.TAKEN
    importer.take()
    assert len(importer.taken) == 1



def test_a_file_taken_between_our_look_at_the_folder_and_the_upload_is_not_sent_again(
    services: Services, sandbox: XeroSandbox, sshd: Sshd, import_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    batch_id, name = staged_batch(services, sandbox, sshd.target(import_dir))
    (import_dir / name).write_bytes(batch_row(services, batch_id).content)  # renamed, then the worker died
    crashed_at_the_commit_point(services, batch_id)
    importer = Importer(import_dir)
    real_remote_state = deliver.remote_state

    def taken_right_after_our_look(*args: Any, **kwargs: Any) -> Any:
        seen = real_remote_state(*args, **kwargs)  # our whole file is there …
        importer.take()  # … and Stampli takes it before the upload's own look
        return seen

    monkeypatch.setattr(deliver, "remote_state", taken_right_after_our_look)
    with contextlib.suppress(SftpUnavailable):
        deliver.deliver_batch(services, batch_id)
    monkeypatch.setattr(deliver, "remote_state", real_remote_state)
    due_now(services, batch_id)
    assert deliver.deliver_batch(services, batch_id).state == BatchState.DELIVERED
    importer.take()
    assert len(importer.taken) == 1


# --- a refusal that arrives after the rename happened keeps the doubt ---------------------------------

def test_a_rename_that_happened_but_was_answered_with_an_error_is_settled_by_the_folder_and_sent_once(
    services: Services, sandbox: XeroSandbox, sshd: Sshd, import_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    batch_id, _ = staged_batch(services, sandbox, sshd.target(import_dir))
    importer = Importer(import_dir)
    real_rename = paramiko.SFTPClient.rename

    def renamed_then_refused(self: paramiko.SFTPClient, old: str, new: str) -> None:
        real_rename(self, old, new)  # the server moved the file (a gateway that retried the request) …
        importer.take()  # … Stampli took it …
        raise FileNotFoundError(errno.ENOENT, "No such file")  # … and the answer we got was an error

    monkeypatch.setattr(paramiko.SFTPClient, "rename", renamed_then_refused)
    with pytest.raises(SftpUnavailable):
        deliver.deliver_batch(services, batch_id)
    monkeypatch.setattr(paramiko.SFTPClient, "rename", real_rename)
    assert batch_row(services, batch_id).state == BatchState.STAGED  # the folder can still decide
    assert outcomes(services, batch_id) == [AttemptOutcome.COMMIT_UNKNOWN]
    due_now(services, batch_id)
    assert deliver.deliver_batch(services, batch_id).state == BatchState.DELIVERED
    importer.take()
    assert len(importer.taken) == 1
    assert bill_states(services, batch_id) == {BillState.DELIVERED}


def test_a_foreign_file_under_our_name_at_the_commit_point_is_never_taken_for_our_delivery(
    services: Services, sandbox: XeroSandbox, sshd: Sshd, import_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    batch_id, name = staged_batch(services, sandbox, sshd.target(import_dir))
    ours = batch_row(services, batch_id).content

    def someone_else_writes_our_name() -> None:
        (import_dir / name).write_bytes(b"not ours\n")

    during_upload(monkeypatch, before_rename=someone_else_writes_our_name)
    assert deliver.deliver_batch(services, batch_id).state == BatchState.FAILED  # a person must look
    importer = Importer(import_dir)
    importer.take()  # the foreign file goes; ours was never renamed into place
    assert replay_invoice(services, some_bill(services, batch_id), actor="ap.ops").state == BatchState.DELIVERED
    importer.take()
    assert importer.taken == [b"not ours\n", ours]



class WorkerKilled(BaseException):
    """The worker process dies here (kill -9): nothing after this line runs."""


def test_a_crash_after_finding_a_foreign_file_under_our_name_keeps_our_part_as_proof_and_ours_is_sent_later(
    services: Services, sandbox: XeroSandbox, sshd: Sshd, import_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    batch_id, name = staged_batch(services, sandbox, sshd.target(import_dir))
    ours = batch_row(services, batch_id).content

    def someone_else_writes_our_name() -> None:
        (import_dir / name).write_bytes(b"not ours\n")

    def killed(*_args: Any, **_kwargs: Any) -> Any:
        raise WorkerKilled()

    during_upload(monkeypatch, before_rename=someone_else_writes_our_name)
    monkeypatch.setattr(deliveries, "settle_attempt", killed)  # dies before recording what it saw
    with pytest.raises(WorkerKilled):
        deliver.deliver_batch(services, batch_id)
    monkeypatch.undo()
    assert outcomes(services, batch_id) == [AttemptOutcome.COMMITTING]
    with services.ledger.transaction() as session:  # its lease lapses
        session.execute(update(Batch).where(Batch.id == batch_id).values(
            lease_until=services.clock() - timedelta(seconds=1)))
    assert deliver.deliver_batch(services, batch_id).state == BatchState.FAILED  # a person must look
    importer = Importer(import_dir)
    importer.take()  # the foreign file goes; ours was never renamed into place
    assert replay_invoice(services, some_bill(services, batch_id), actor="ap.ops").state == BatchState.DELIVERED
    importer.take()
    assert importer.taken == [b"not ours\n", ours]  # never recorded as "renamed and taken" with nothing sent


# --- the lease: two workers, one lapsed lease ---------------------------------------------------------

def test_two_workers_that_read_the_same_lapsed_lease_never_both_take_it(
    services_on_both_databases: Services, sandbox: XeroSandbox, sshd: Sshd, import_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    services = services_on_both_databases
    batch_id, _ = staged_batch(services, sandbox, sshd.target(import_dir))
    workers_died(services, batch_id, 1)  # a lapsed lease whose worker died: both workers read this owner
    both_have_read = threading.Barrier(2, timeout=3)
    real_get_one = Session.get_one

    def read_then_wait_for_the_other(self: Session, entity: Any, ident: Any, **kwargs: Any) -> Any:
        found = real_get_one(self, entity, ident, **kwargs)
        if entity is Batch:  # SQLite lets one writer in at a time, so there the other never arrives
            with contextlib.suppress(threading.BrokenBarrierError):
                both_have_read.wait()
        return found

    monkeypatch.setattr(Session, "get_one", read_then_wait_for_the_other)
    taken: list[object] = []

    def worker() -> None:
        taken.append(services.ledger.retrying(partial(deliveries.take_lease, batch_id=batch_id, task_id="racer",
                                                      now=services.clock(), lease_seconds=600)))

    racers = [threading.Thread(target=worker) for _ in range(2)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(timeout=60)
    monkeypatch.setattr(Session, "get_one", real_get_one)
    assert len(taken) == 2
    assert [isinstance(t, deliveries.Lease) for t in taken].count(True) == 1
    assert batch_row(services, batch_id).abandoned_attempts == 1  # the dead worker counted once


# --- a batch backing off after a failed delivery waits out its backoff, however often it is asked for -------

def test_a_second_message_for_a_batch_in_backoff_does_not_deliver_it_before_its_next_attempt_is_due(
    services: Services, sandbox: XeroSandbox, sshd: Sshd, import_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = services.clock = Clock()
    batch_id, name = staged_batch(services, sandbox, sshd.target(import_dir))
    another_worker_fails_to_connect(services, batch_id, monkeypatch)  # the server is down: back off
    due = batch_row(services, batch_id).next_attempt_at
    assert due is not None
    again = deliver.deliver_batch(services, batch_id, task_id="redelivered-by-the-broker")
    assert (again.state, again.uploaded) == (BatchState.STAGED, False)
    assert outcomes(services, batch_id) == [AttemptOutcome.RETRY]  # no second attempt was even started
    assert list(import_dir.iterdir()) == []
    clock.advance(3600)  # the backoff is over: the next message delivers it
    assert deliver.deliver_batch(services, batch_id).state == BatchState.DELIVERED
    assert sorted(p.name for p in import_dir.iterdir()) == [name]


# --- a bug or bad data met while delivering stops the file, for a person, instead of a retry for ever ------

def test_a_bug_met_while_delivering_fails_the_file_with_its_cause_and_the_file_is_delivered_by_a_replay_once_fixed(
    services: Services, sandbox: XeroSandbox, sshd: Sshd, import_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    batch_id, name = staged_batch(services, sandbox, sshd.target(import_dir))

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise ValueError("unsupported checksum layout 'v9'")

    monkeypatch.setattr(deliver, "upload", broken)
    report = deliver.deliver_batch(services, batch_id, task_id="worker-A")
    assert report.state == BatchState.FAILED  # not a retry: the next try would meet the same bug
    failed = batch_row(services, batch_id)
    assert failed.next_attempt_at is None
    assert name in (failed.last_error or "")
    assert "ValueError: unsupported checksum layout 'v9'" in (failed.last_error or "")
    assert bill_states(services, batch_id) == {BillState.FAILED}
    [shown] = [line for line in status_report(services.ledger).attention if name in line]
    assert "FAILED" in shown
    assert "unsupported checksum layout 'v9'" in shown
    assert f"replay --file {name}" in shown
    assert deliver.deliver_batch(services, batch_id, task_id="sweeper").state == BatchState.FAILED
    assert outcomes(services, batch_id) == [AttemptOutcome.FAILED]  # nobody tries it again by itself
    monkeypatch.setattr(deliver, "upload", sftp_upload.deliver)  # the fix is deployed
    assert replay_file(services, name, actor="ap.ops").state == BatchState.DELIVERED
    assert bill_states(services, batch_id) == {BillState.DELIVERED}
    assert sorted(p.name for p in import_dir.iterdir()) == [name]


# --- an answer from the server we cannot decode is the server's doing, not a bug of ours ----------------------

def test_a_server_answer_in_another_encoding_than_utf8_backs_the_file_off_instead_of_failing_it(
    services: Services, sandbox: XeroSandbox, sshd: Sshd, import_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """paramiko decodes the text of every SFTP status strictly as UTF-8; a server that words a passing
    failure in its locale's encoding (a Windows server: 'Fichier verrouillé' in cp1252) makes it raise a
    UnicodeDecodeError, a ValueError. That is the server talking, as any SFTP failure it reports: the file
    backs off and goes at its next attempt, it is not FAILED as a bug of ours would be."""
    clock = services.clock = Clock()
    batch_id, name = staged_batch(services, sandbox, sshd.target(import_dir))
    real = paramiko.SFTPClient._convert_status  # type: ignore[attr-defined]
    garbled = [True]

    def answered_in_cp1252(client: paramiko.SFTPClient, msg: paramiko.Message) -> None:
        at = msg.packet.tell()
        code = msg.get_int()
        msg.packet.seek(at)
        if code != paramiko.sftp.SFTP_OK and garbled:
            garbled.clear()
            paramiko.util.u("Fichier verrouillé".encode("cp1252"))  # what Message.get_text does with its text
        real(client, msg)

    monkeypatch.setattr(paramiko.SFTPClient, "_convert_status", answered_in_cp1252)
    with pytest.raises(SftpUnavailable, match="UnicodeDecodeError"):
        deliver.deliver_batch(services, batch_id, task_id="worker-A")
    assert not garbled  # the server's answer was met
    assert batch_row(services, batch_id).state == BatchState.STAGED
    assert bill_states(services, batch_id) == {BillState.BATCHED}
    assert outcomes(services, batch_id) == [AttemptOutcome.RETRY]
    clock.advance(3600)
    assert deliver.deliver_batch(services, batch_id, task_id="worker-B").state == BatchState.DELIVERED
    assert sorted(p.name for p in import_dir.iterdir()) == [name]
    assert bill_states(services, batch_id) == {BillState.DELIVERED}
