"""The Celery app Flower runs: the broker and the queues, nothing else.

Flower only reads the workers' events and the queues' lengths, so it is given the broker URL alone: no
Fernet keys and no database URL (`workers.app` loads and checks every setting, keys included, and would
refuse to start without them). Run it as `celery -A workers.monitor flower`.
"""

from __future__ import annotations

import os

from celery import Celery
from kombu.entity import Exchange, Queue

from connector.errors import ConfigurationError
from connector.limits import TIME_LIMITS

QUEUES = tuple(TIME_LIMITS)  # the same queues as workers.app, one per hard time limit
BROKER_VARIABLE = "CONNECTOR_BROKER_URL"


def create_monitor_app() -> Celery:
    broker_url = os.environ.get(BROKER_VARIABLE)
    if not broker_url:
        raise ConfigurationError([f"{BROKER_VARIABLE} is required: Flower watches the workers through the broker"])
    app = Celery("connector")
    app.conf.update(
        broker_url=broker_url,
        broker_connection_retry_on_startup=True,
        task_queues=[Queue(name, Exchange(""), routing_key=name) for name in QUEUES],
        task_default_exchange="",
        task_default_queue="poll",
        task_ignore_result=True,
        result_backend=None,
        accept_content=["json"],
        timezone="UTC",
    )
    return app


app = create_monitor_app()
