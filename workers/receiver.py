"""The webhook receiver wired to the broker: a wake is the dispatcher's task for one tenant, with a countdown.

gunicorn loads `application` (see connector.webhooks.serve). The dispatcher claims the tenant exactly
as on beat's tick, so a wake can never start a second poll next to a running one.
"""

from __future__ import annotations

from datetime import timedelta

from celery import Celery

from connector.settings import load_settings
from connector.store.db import Ledger
from connector.webhooks.receiver import LazyReceiver, Receiver, Wake
from workers.app import create_app

WAKE_EXPIRES_SECONDS = 300.0  # a wake that waited longer is stale: beat's tick has polled the tenant since


def celery_wake(app: Celery) -> Wake:
    def wake(tenant_id: str, delay: float) -> None:
        app.send_task("connector.dispatch_due_polls", kwargs={"tenant_id": tenant_id}, queue="poll",
                      countdown=delay, expires=delay + WAKE_EXPIRES_SECONDS)
    return wake


def build_receiver() -> Receiver:
    settings = load_settings()
    if settings.xero_webhook_key is None:
        raise RuntimeError("CONNECTOR_XERO_WEBHOOK_KEY is not set")
    ledger = Ledger.connect(settings.database_url, run_migrations=False)
    return Receiver(ledger, settings.xero_webhook_key, timedelta(seconds=settings.webhook_coalesce_seconds),
                    celery_wake(create_app(settings)))


application = LazyReceiver(build_receiver)
