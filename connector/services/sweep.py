"""The sweeper and the poll dispatcher: the database decides what work exists, Redis only carries nudges.

If every broker message vanished, `sweep` rebuilds the work from the ledger: bills DISCOVERED but not
mapped, READY but not batched, and batches not yet delivered whose time has come.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import and_, or_, select, update

from connector.domain.states import BatchState, BillState
from connector.services.context import Services
from connector.services.messages import AssembleBatch, DeliverBatch, MapInvoice, Message, PollTenant
from connector.store.models import Batch, Bill, Tenant, XeroGrant


def dispatch_due_polls(services: Services) -> list[Message]:
    """Claim each due tenant by moving its next_poll_at forward; a duplicated tick claims nothing twice."""
    now = services.clock()
    messages: list[Message] = []
    with services.ledger.transaction() as session:
        due = session.execute(
            select(Tenant.id, Tenant.poll_interval_seconds)
            .join(XeroGrant, XeroGrant.id == Tenant.grant_id)
            .where(Tenant.status == "ACTIVE", XeroGrant.status == "ACTIVE")
            .where(or_(Tenant.next_poll_at.is_(None), Tenant.next_poll_at <= now))
            .where(or_(Tenant.parked_until.is_(None), Tenant.parked_until <= now))
        ).all()
    for tenant_id, interval in due:
        with services.ledger.transaction() as session:
            claimed = session.execute(
                update(Tenant)
                .where(Tenant.id == tenant_id)
                .where(or_(Tenant.next_poll_at.is_(None), Tenant.next_poll_at <= now))
                .values(next_poll_at=now + timedelta(seconds=interval))
            )
        if getattr(claimed, "rowcount", 0) == 1:
            messages.append(PollTenant(tenant_id))
    return messages


def sweep(services: Services) -> list[Message]:
    now = services.clock()
    stale = now - timedelta(seconds=services.settings.sweep_stale_seconds)
    messages: list[Message] = []
    with services.ledger.transaction() as session:
        for tenant_id, invoice_id, version in session.execute(
            select(Bill.tenant_id, Bill.invoice_id, Bill.version).where(
                Bill.state == BillState.DISCOVERED, Bill.state_changed_at <= stale
            )
        ):
            messages.append(MapInvoice(tenant_id, invoice_id, version))
        for (tenant_id,) in session.execute(
            select(Bill.tenant_id)
            .where(Bill.state == BillState.READY, Bill.batch_id.is_(None), Bill.state_changed_at <= stale)
            .distinct()
        ):
            messages.append(AssembleBatch(tenant_id))
        for (batch_id,) in session.execute(
            select(Batch.id).where(
                Batch.state == BatchState.STAGED,
                or_(Batch.lease_until.is_(None), Batch.lease_until <= now),
                or_(
                    Batch.next_attempt_at <= now,
                    and_(Batch.next_attempt_at.is_(None), Batch.created_at <= stale),
                ),
            )
        ):
            messages.append(DeliverBatch(batch_id))
    return messages
