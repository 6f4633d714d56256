"""The poll dispatcher: beat's tick asks the database which tenants are due and claims each once.

A tenant is due when its cadence has come, or when its running poll's lease lapsed because the worker
died: that poll is dispatched again at once (it resumes from its watermark), not a cadence later, and not
when the broker would redeliver its unacknowledged message. A dispatched message that no poll picked up
within a lease (its worker was killed first, the broker lost it) is dispatched again too. A tenant whose
polls keep dying is parked.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from connector.domain.tenants import poll_parked_reason, polls_exhausted
from connector.services.context import Services
from connector.services.messages import Message, PollTenant
from connector.services.sweep import settle_broker_epoch
from connector.store.polls import DuePoll, claim_poll, claim_polls, due_polls, park_polls, record_poll_resumed

log = logging.getLogger(__name__)


def dispatch_due_polls(services: Services, tenant_id: str | None = None) -> list[Message]:
    """Claim each due tenant with a conditional update; a duplicated tick or a second beat claims nothing twice.
    With `tenant_id`, only that tenant (a webhook woke it). The tenants whose poll holds no lease (all but a
    dead poll's) are read and claimed together, in one transaction however many are due: no poll starts
    before the tick has sent its messages, and ten thousand tenants may be due together."""
    settle_broker_epoch(services)  # before anything is sent: see services.sweep
    now = services.clock()
    claimed: set[str] = set()
    with services.ledger.transaction() as session:
        due = due_polls(session, now, tenant_id)
        fresh: dict[float, list[str]] = {}  # dispatch lease -> tenants
        for tenant in due:
            if tenant.lapsed_lease_until is None:
                fresh.setdefault(_dispatch_lease(services, tenant), []).append(tenant.tenant_id)
        for seconds, tenant_ids in sorted(fresh.items()):
            claimed.update(claim_polls(session, tenant_ids, now, now + timedelta(seconds=seconds)))
    messages: list[Message] = []
    for tenant in due:
        died_at = tenant.lapsed_lease_until
        if died_at is None:
            if tenant.tenant_id in claimed:
                messages.append(PollTenant(tenant.tenant_id))
            continue
        with services.ledger.transaction() as session:
            if polls_exhausted(tenant.runs):
                reason = poll_parked_reason(tenant.tenant_id, tenant.runs, died_at)
                if park_polls(session, tenant.tenant_id, reason, now):
                    log.error("%s; its polls are parked until a person clears them", reason)
                continue
            if not claim_poll(session, tenant, now, now + timedelta(seconds=_dispatch_lease(services, tenant))):
                continue
            record_poll_resumed(session, tenant.tenant_id, tenant.runs, died_at, now)
            log.warning("tenant %s: its poll's worker died (lease ran out at %s); polling it again",
                        tenant.tenant_id, died_at.isoformat())
        messages.append(PollTenant(tenant.tenant_id))
    return messages


def _dispatch_lease(services: Services, tenant: DuePoll) -> float:
    """Only a dispatch lease: the poll moves the cadence when it starts; if its message is lost (a worker
    killed before it began, the broker emptied), the tenant is due again after it."""
    return min(services.settings.poll_lease_seconds, float(tenant.interval_seconds))
