"""Per-process state of a worker: the services, built lazily once, and the message sender."""

from __future__ import annotations

import logging

from celery import Celery

from connector.domain.backoff import backoff
from connector.services.context import Services, build_services
from connector.services.messages import AssembleBatch, DeliverBatch, MapInvoice, Message, PollTenant
from connector.settings import Settings

log = logging.getLogger(__name__)

_services: Services | None = None


def services(app: Celery) -> Services:
    global _services
    if _services is None:
        settings: Settings = app.conf.connector_settings
        log.info("connector settings: %s", settings.describe())
        _services = build_services(settings)
    return _services


def send(app: Celery, message: Message) -> None:
    """Send one follow-up message; called only after the work that asked for it is committed."""
    match message:
        case PollTenant(tenant_id):
            app.send_task("connector.poll_tenant", args=[tenant_id])
        case MapInvoice(tenant_id, invoice_id, version):
            app.send_task("connector.map_invoice", args=[tenant_id, invoice_id, version])
        case AssembleBatch(tenant_id, bills, full_files):
            # At once: the last mapping's ask is on the first sync's critical path (a 1 s countdown here was
            # 1 s before the last bill file and 1 s more before the credit notes its delivery re-opened).
            kwargs = ({} if bills else {"bills": False}) | ({"full_files": True} if full_files else {})
            app.send_task("connector.assemble_batch", args=[tenant_id], kwargs=kwargs)
        case DeliverBatch(batch_id):
            app.send_task("connector.deliver_batch", args=[batch_id])


def retry_countdown(retries: int, retry_after: float | None, cap: float) -> float:
    """A Celery retry's countdown: 1 s doubling, never shorter than the server's Retry-After, at most `cap`."""
    return backoff(retries + 1, base=1.0, cap=cap, retry_after=retry_after)
