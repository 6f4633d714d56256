"""The poll dispatcher: beat's tick asks the database which tenants are due and claims each once."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import or_, select, update

from connector.services.context import Services
from connector.services.messages import Message, PollTenant
from connector.store.models import Tenant, XeroGrant


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
