"""Which Fernet keys each running worker holds, as the worker last said with its heartbeat.

A worker started before a new key was added cannot read what is encrypted under it; key rotation reads
this table to refuse while such a worker is alive. Only key ids (fingerprints) are stored, never a key.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from connector.domain.key_custody import WorkerKeys
from connector.store.models import Base


class WorkerKeyRow(Base):
    """One row per worker node name, rewritten with its heartbeat, removed when it stops cleanly."""

    __tablename__ = "worker_keys"
    worker: Mapped[str] = mapped_column(String(255), primary_key=True)
    key_ids: Mapped[str] = mapped_column(Text)  # comma-separated, newest first, as the worker was configured
    started_at: Mapped[datetime]
    heartbeat_at: Mapped[datetime]


def record_worker_keys(session: Session, worker: str, key_ids: list[str], now: datetime) -> None:
    row = session.get(WorkerKeyRow, worker)
    joined = ",".join(key_ids)
    if row is None:
        session.add(WorkerKeyRow(worker=worker, key_ids=joined, started_at=now, heartbeat_at=now))
        return
    if row.key_ids != joined:  # the same node name restarted with another key list
        row.started_at = now
    row.key_ids = joined
    row.heartbeat_at = now


def forget_worker_keys(session: Session, worker: str) -> None:
    session.execute(delete(WorkerKeyRow).where(WorkerKeyRow.worker == worker))


def workers_seen(session: Session) -> list[WorkerKeys]:
    rows = session.scalars(select(WorkerKeyRow).order_by(WorkerKeyRow.worker))
    return [WorkerKeys(row.worker, tuple(k for k in row.key_ids.split(",") if k), row.started_at, row.heartbeat_at)
            for row in rows]
