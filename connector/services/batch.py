"""assemble_batch: claim READY bills into one file, render it once, store bytes + sha256, stage it.

The claim is a conditional UPDATE (`state = READY AND batch_id IS NULL`) inside the transaction that
creates the batch, so two workers can never put one bill into two files.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from connector.domain.naming import batch_file_name
from connector.domain.render_csv import render_csv
from connector.domain.states import BatchState, BillState
from connector.services.context import Services
from connector.services.messages import DeliverBatch, Message
from connector.staging import stage
from connector.store.audit import record
from connector.store.models import Batch, Bill, Tenant

log = logging.getLogger(__name__)

MAX_SEQUENCE_RACES = 5


class _LostRace(Exception):
    """Raised inside the claim transaction to roll it back when another worker won."""


def assemble_batches(services: Services, tenant_id: str) -> list[Message]:
    """Make as many files as the READY bills fill (each at most the tenant's cap); never an empty one."""
    messages: list[Message] = []
    races = 0
    while True:
        try:
            batch_id = _claim_one(services, tenant_id)
        except (IntegrityError, _LostRace):
            races += 1  # another worker took the same sequence number or the same bills: look again
            if races > MAX_SEQUENCE_RACES:
                raise
            continue
        if batch_id is None:
            return messages
        stage_batch(services, batch_id)
        messages.append(DeliverBatch(batch_id))


def _claim_one(services: Services, tenant_id: str) -> int | None:
    with services.ledger.transaction() as session:
        tenant = session.get_one(Tenant, tenant_id)
        candidates = list(
            session.scalars(
                select(Bill.id)
                .where(Bill.tenant_id == tenant_id, Bill.state == BillState.READY, Bill.batch_id.is_(None))
                .order_by(Bill.id)
                .limit(tenant.max_bills_per_file)
            )
        )
        if not candidates:
            return None
        batch = new_batch(session, tenant, services.clock())
        claimed = session.execute(
            update(Bill)
            .where(Bill.id.in_(candidates), Bill.state == BillState.READY, Bill.batch_id.is_(None))
            .values(batch_id=batch.id, row_version=Bill.row_version + 1)
            .execution_options(synchronize_session=False)
        )
        if getattr(claimed, "rowcount", 0) == 0:
            raise _LostRace  # another worker claimed these bills first; roll back this batch row
        fill_batch(session, batch, list(session.scalars(select(Bill).where(Bill.batch_id == batch.id))))
        return batch.id


def new_batch(session: Session, tenant: Tenant, now: datetime) -> Batch:
    """An empty batch row with the tenant's next sequence number (unique: a racing twin fails)."""
    sequence = (session.scalar(select(func.max(Batch.sequence)).where(Batch.tenant_id == tenant.id)) or 0) + 1
    batch = Batch(
        tenant_id=tenant.id, sequence=sequence, name=batch_file_name(tenant.short_name, now, sequence),
        content=b"", sha256="", bill_count=0, state=BatchState.STAGED, created_at=now,
    )
    session.add(batch)
    session.flush()
    return batch


def fill_batch(session: Session, batch: Batch, bills: list[Bill], *, actor: str = "connector",
               reason: str | None = None) -> None:
    """Render the bills once into the batch (bytes + sha256) and move each to BATCHED, audited."""
    bills = sorted(bills, key=lambda b: b.id)
    batch.content = render_csv([b.mapping or {} for b in bills])
    batch.sha256 = hashlib.sha256(batch.content).hexdigest()
    batch.bill_count = len(bills)
    for bill in bills:
        bill.batch_id = batch.id
        record(session, bill, BillState.BATCHED, batch_id=batch.id, file_name=batch.name, actor=actor, reason=reason)
    log.info("tenant %s: batch %s holds %s bills", batch.tenant_id, batch.name, len(bills))


def stage_batch(services: Services, batch_id: int) -> None:
    with services.ledger.transaction() as session:
        batch = session.get_one(Batch, batch_id)
        path = stage(services.settings.staging_dir / batch.tenant_id, batch.name, batch.content)
        batch.staged_path = str(path)
