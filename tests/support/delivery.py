"""Delivery at the commit point, as the exactly-once tests drive it: a movable clock, Stampli's
importer emptying the folder, interleavings forced inside an upload, and what the ledger says after."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from connector.domain.delivery import AttemptOutcome
from connector.errors import SftpUnavailable
from connector.services import deliver
from connector.services.context import Services
from connector.store.models import Batch, Bill, DeliveryAttempt


class Clock:
    """The services' clock, moved by the test: leases run out when the test says so."""

    def __init__(self) -> None:
        self.now = datetime.now().astimezone()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Importer:
    """Stampli's importer: takes each finished file away, keeping every copy it took for counting."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.taken: list[bytes] = []

    def take(self) -> None:
        for path in sorted(self.folder.iterdir()):
            if path.suffix in (".csv", ".xml"):
                self.taken.append(path.read_bytes())
                path.unlink()


def outcomes(services: Services, batch_id: int) -> list[str]:
    with services.ledger.transaction() as session:
        return list(session.scalars(select(DeliveryAttempt.outcome).where(DeliveryAttempt.batch_id == batch_id)
                                    .order_by(DeliveryAttempt.id)))


def batch_row(services: Services, batch_id: int) -> Batch:
    with services.ledger.transaction() as session:
        return session.get_one(Batch, batch_id)


def bill_states(services: Services, batch_id: int) -> set[str]:
    with services.ledger.transaction() as session:
        return set(session.scalars(select(Bill.state).where(Bill.batch_id == batch_id)))


def due_now(services: Services, batch_id: int) -> None:
    with services.ledger.transaction() as session:
        session.execute(update(Batch).where(Batch.id == batch_id).values(next_attempt_at=None, backoff_until=None))


def during_upload(monkeypatch: pytest.MonkeyPatch, *, before_rename: Callable[[], None] | None = None,
                  after_rename: Callable[[], None] | None = None) -> None:
    """Run code inside the next upload, just before its commit fence or just after its rename (once)."""
    real = deliver.upload
    fired: list[bool] = []

    def upload(*args: Any, before_commit: Callable[[], None] | None = None, **kwargs: Any) -> Any:
        if before_commit is None or fired:
            return real(*args, before_commit=before_commit, **kwargs)
        fired.append(True)

        def fence_after_interleaving() -> None:
            if before_rename is not None:
                before_rename()
            before_commit()

        result = real(*args, before_commit=fence_after_interleaving, **kwargs)
        if after_rename is not None:
            after_rename()
        return result

    monkeypatch.setattr(deliver, "upload", upload)


def another_worker_fails_to_connect(services: Services, batch_id: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second worker takes the lapsed lease and fails for a passing reason (connection refused)."""
    real = deliver.open_session

    def refused(*_args: Any, **_kwargs: Any) -> Any:
        raise SftpUnavailable("connecting: connection refused (NoValidConnectionsError)")

    monkeypatch.setattr(deliver, "open_session", refused)
    with pytest.raises(SftpUnavailable):
        deliver.deliver_batch(services, batch_id, task_id="worker-B")
    monkeypatch.setattr(deliver, "open_session", real)


def crashed_at_the_commit_point(services: Services, batch_id: int) -> None:
    """An attempt that marked COMMITTING and died: its lease lapsed, its outcome never written."""
    with services.ledger.transaction() as session:
        crashed = DeliveryAttempt(batch_id=batch_id, task_id="crashed", outcome=AttemptOutcome.COMMITTING)
        session.add(crashed)
        session.flush()
        session.execute(update(Batch).where(Batch.id == batch_id).values(
            lease_owner=crashed.id, lease_until=services.clock() - timedelta(seconds=1)))
