"""`connector webhooks serve`: the receiver behind gunicorn, a production WSGI server.

gunicorn forks its workers after the schema is migrated once here; each worker builds its own receiver
(and ledger connections) on its first request. Threads per worker keep connections alive between
Xero's deliveries; the request timeout is far under Xero's 5 seconds only in the normal case, so it is
set to what a stuck database may take before the worker is replaced.
"""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.util import import_app

from connector.settings import Settings
from connector.store.db import Ledger

#: The WSGI callable gunicorn loads in each worker: the receiver wired to the Celery broker.
APPLICATION = "workers.receiver:application"


class _Server(BaseApplication):  # type: ignore[misc]  # gunicorn ships no type hints
    def __init__(self, options: dict[str, Any]) -> None:
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for name, value in self._options.items():
            if name in self.cfg.settings:  # settings newer than the installed gunicorn are left out
                self.cfg.set(name, value)

    def load(self) -> Any:
        return import_app(APPLICATION)


def server_options(bind: str, workers: int, threads: int) -> dict[str, Any]:
    return {
        "bind": [bind],
        "workers": workers,
        "worker_class": "gthread",
        "threads": threads,
        "timeout": 30,
        "graceful_timeout": 10,
        "keepalive": 5,
        "limit_request_field_size": 8190,
        "accesslog": None,  # one line per delivery adds nothing the inbox does not hold
        "proc_name": "connector-webhooks",
        # No runtime control socket (gunicorn 25.1+): it would be created under $HOME, read-only in the
        # container, and shared by every receiver of the same user on one host.
        "control_socket_disable": True,
    }


def serve(settings: Settings, bind: str, workers: int, threads: int) -> None:
    """Migrate once, then serve until SIGTERM (gunicorn finishes the requests in flight)."""
    if settings.xero_webhook_key is None:
        raise SystemExit("CONNECTOR_XERO_WEBHOOK_KEY is not set: the receiver cannot check any signature")
    Ledger.connect(settings.database_url).dispose()
    _Server(server_options(bind, workers, threads)).run()
