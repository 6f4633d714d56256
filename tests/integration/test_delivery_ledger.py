"""Delivery as the ledger records it, against a real OpenSSH sshd: after each fault the file on the
server is whole or absent, and the batch, its bills and its attempts say which."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from connector.domain.states import BatchState, BillState
from connector.services import deliver
from connector.services.context import Services
from connector.services.replay import replay_invoice
from connector.store.models import Batch, Bill, DeliveryAttempt, SftpTargetRow
from sandbox.xero import XeroSandbox
from tests.support.pipeline import staged_batch
from tests.support.sshd import Sshd, new_ed25519_key


@pytest.fixture
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=42, tenants=1, bills=25) as running:
        yield running


def ledger_says(services: Services, batch_id: int) -> tuple[str, set[str], list[str], str | None]:
    with services.ledger.transaction() as session:
        row = session.get_one(Batch, batch_id)
        bills = set(session.scalars(select(Bill.state).where(Bill.batch_id == batch_id)))
        outcomes = list(session.scalars(select(DeliveryAttempt.outcome).where(DeliveryAttempt.batch_id == batch_id)
                                        .order_by(DeliveryAttempt.id)))
        return row.state, bills, outcomes, row.last_error


def test_a_host_key_mismatch_fails_the_batch_naming_both_fingerprints_and_sends_nothing(
    services: Services, sandbox: XeroSandbox, sshd: Sshd, import_dir: Path,
) -> None:
    _, impostor = new_ed25519_key()
    batch_id, _ = staged_batch(services, sandbox, sshd.target(import_dir, host_key=impostor))
    assert deliver.deliver_batch(services, batch_id).state == BatchState.FAILED
    state, bills, outcomes, error = ledger_says(services, batch_id)
    assert (state, bills, outcomes) == (BatchState.FAILED, {BillState.FAILED}, ["FAILED"])
    assert error is not None
    assert error.count("SHA256:") == 2
    assert list(import_dir.iterdir()) == []


def test_the_final_file_already_there_is_recorded_delivered_without_uploading(
    services: Services, sandbox: XeroSandbox, sshd: Sshd, import_dir: Path,
) -> None:
    batch_id, name = staged_batch(services, sandbox, sshd.target(import_dir))
    with services.ledger.transaction() as session:
        content = session.get_one(Batch, batch_id).content
    (import_dir / name).write_bytes(content)  # a crashed worker renamed it but never recorded it
    assert deliver.deliver_batch(services, batch_id).uploaded is False
    assert ledger_says(services, batch_id)[:3] == (BatchState.DELIVERED, {BillState.DELIVERED}, ["ALREADY_PRESENT"])


def test_a_different_file_under_our_name_is_never_overwritten(
    services: Services, sandbox: XeroSandbox, sshd: Sshd, import_dir: Path,
) -> None:
    batch_id, name = staged_batch(services, sandbox, sshd.target(import_dir))
    (import_dir / name).write_bytes(b"someone else's bytes")
    assert deliver.deliver_batch(services, batch_id).state == BatchState.FAILED
    assert (import_dir / name).read_bytes() == b"someone else's bytes"
    state, bills, _, error = ledger_says(services, batch_id)
    assert (state, bills) == (BatchState.FAILED, {BillState.FAILED})
    assert "different" in (error or "")


def test_a_wrong_password_fails_the_batch_and_keeps_the_file_for_replay(
    services: Services, sandbox: XeroSandbox, sshd: Sshd, import_dir: Path,
) -> None:
    from connector.secret import Secret

    batch_id, _ = staged_batch(services, sandbox, sshd.target(import_dir, password=Secret("not-the-password")))
    assert deliver.deliver_batch(services, batch_id).state == BatchState.FAILED
    with services.ledger.transaction() as session:
        assert session.get_one(Batch, batch_id).content  # kept whole for replay
        session.execute(update(SftpTargetRow).values(password_enc=services.vault.encrypt(sshd.user.password)))
    with services.ledger.transaction() as session:
        some = session.scalars(select(Bill.invoice_id).where(Bill.batch_id == batch_id)).first()
    assert some is not None
    assert replay_invoice(services, some, actor="ap.ops").state == BatchState.DELIVERED


def test_replay_never_re_sends_a_delivered_file_and_a_changed_bill_is_re_mapped_only_on_request(
    services: Services, sandbox: XeroSandbox, sshd: Sshd, import_dir: Path,
) -> None:
    from connector.services.replay import ReplayRefused

    batch_id, name = staged_batch(services, sandbox, sshd.target(import_dir))
    deliver.deliver_batch(services, batch_id)
    with services.ledger.transaction() as session:
        changed = session.scalars(select(Bill).where(Bill.batch_id == batch_id)).first()
        assert changed is not None
        session.execute(update(Bill).where(Bill.id == changed.id).values(state=BillState.CHANGED_AFTER_DELIVERY))
    with pytest.raises(ReplayRefused, match="--resend"):
        replay_invoice(services, changed.invoice_id, actor="ap.ops")
    assert replay_invoice(services, changed.invoice_id, actor="ap.ops", resend=True).state == "REOPENED"
    with services.ledger.transaction() as session:
        assert session.scalars(select(Bill.state).where(Bill.id == changed.id)).one() == BillState.DISCOVERED
    assert [p.name for p in import_dir.iterdir()] == [name]  # the old file was not sent again
