"""The Celery app: queues, routes, reliability settings and beat schedule, wired in one place."""

from __future__ import annotations

from typing import Any

from celery import Celery, Task
from celery.signals import after_setup_logger
from kombu.entity import Exchange, Queue

from beat.schedule import beat_schedule
from connector.limits import TIME_LIMITS, soft_time_limit
from connector.logs import quiet_leaky_loggers
from connector.settings import Settings, load_settings

QUEUES = ("poll", "map", "batch", "sftp")
ROUTES = {
    "connector.dispatch_due_polls": "poll",
    "connector.sweep": "poll",
    "connector.refresh_grants": "poll",
    "connector.poll_tenant": "poll",
    "connector.reconcile_tenants": "poll",
    "connector.reconcile_tenant": "poll",
    "connector.map_invoice": "map",
    "connector.assemble_batch": "batch",
    "connector.deliver_batch": "sftp",
}
VISIBILITY_TIMEOUT = 7200  # far above every queue's hard time limit (connector.limits)


def celery_config(settings: Settings) -> dict[str, Any]:
    limits: dict[str, float] = {**TIME_LIMITS, "sftp": settings.sftp_time_limit_seconds}
    transport: dict[str, Any] = {"visibility_timeout": VISIBILITY_TIMEOUT}
    transport_class: dict[str, str] = {}
    if settings.broker_url.startswith("filesystem://"):
        transport_class = {"broker_transport": "workers.filesystem_broker:Transport"}  # writes messages whole
        settings.broker_dir.mkdir(parents=True, exist_ok=True)
        (settings.broker_dir / "control").mkdir(exist_ok=True)
        transport = {
            "data_folder_in": str(settings.broker_dir),
            "data_folder_out": str(settings.broker_dir),
            "control_folder": str(settings.broker_dir / "control"),
            "store_processed": False,
            "polling_interval": 0.1,
        }
    return {
        "broker_url": settings.broker_url,
        "broker_transport_options": transport,
        **transport_class,
        "broker_connection_retry_on_startup": True,
        # Queues hang off the default (nameless) exchange: a message goes straight to the list named
        # after its queue, with no binding table in Redis that a restart or failover could lose.
        "task_queues": [Queue(name, Exchange(""), routing_key=name) for name in QUEUES],
        "task_default_exchange": "",
        "task_default_queue": "poll",
        "task_routes": {name: {"queue": queue} for name, queue in ROUTES.items()},
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "task_ignore_result": True,
        "result_backend": None,
        "task_serializer": "json",
        "accept_content": ["json"],
        "worker_send_task_events": True,
        # No `task-sent` event beside each message: a first poll sends one map message per bill, and the
        # event doubled what each send cost the poll (the workers' own task events still show in Flower).
        "task_send_sent_event": False,
        "worker_hijack_root_logger": False,
        "task_annotations": {
            name: {"time_limit": limits[queue], "soft_time_limit": soft_time_limit(limits[queue])}
            for name, queue in ROUTES.items()
        },
        "beat_schedule": beat_schedule(settings),
        "beat_schedule_filename": str(settings.broker_dir.parent / "celerybeat-schedule"),
        "timezone": "UTC",
    }


class ConnectorTask(Task):  # type: ignore[misc]
    """Every task of the app. `trail` off: Celery otherwise keeps each message a task sends (an AsyncResult
    of about 1 KB in `request.children`, for result chains this app never uses) until the task ends, and a
    first poll sends one per bill of its tenant (100 MiB at 100,000 bills), a sweep one per bill it asks
    for again."""

    trail = False


def create_app(settings: Settings | None = None) -> Celery:
    settings = settings or load_settings()
    app = Celery("connector", task_cls=ConnectorTask)
    app.config_from_object(celery_config(settings))
    app.conf.connector_settings = settings
    return app


@after_setup_logger.connect
def _quiet_leaky_loggers(**_: Any) -> None:
    """Celery sets up its own handlers; ours only hold back the loggers that would print secrets."""
    quiet_leaky_loggers()


app = create_app()

import workers.key_custody  # noqa: E402  (which Fernet keys this worker holds, for key rotation)
import workers.probes  # noqa: E402  (probe files for Kubernetes)
import workers.tasks  # noqa: E402,F401  (registers the tasks on `app`)
