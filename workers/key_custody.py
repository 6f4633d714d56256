"""Each worker records in the ledger, with its heartbeat, which Fernet keys it holds (their ids, never the
keys), so `connector keys rotate` can refuse while a running worker lacks the newest key.

The record is written at most every RECORD_EVERY on a heartbeat (so a worker whose event loop is stuck
stops renewing it, like the liveness probe), in a short-lived thread with its own engine: the heartbeat
never waits on the database, and no connection is shared with the pool's forked children. A clean stop
removes the record; a killed worker stops counting as running LIVE_FOR after its last record.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

from celery.signals import heartbeat_sent, worker_ready, worker_shutdown

from connector.crypto import key_id
from connector.domain.key_custody import RECORD_EVERY

log = logging.getLogger(__name__)

_lock = threading.Lock()          # one write in flight at a time
_worker_name = f"worker@{socket.gethostname()}"
_last_recorded = float("-inf")    # time.monotonic() of the last write started
_migrated = False


def _settings() -> Any:
    from workers.app import app

    return app.conf.connector_settings


def _write(forget: bool) -> None:
    global _migrated
    from connector.services.keys import forget_worker, record_held_keys
    from connector.store.db import Ledger

    if not _lock.acquire(blocking=forget):
        return  # the previous record is still being written: this heartbeat adds nothing
    try:
        settings = _settings()
        ledger = Ledger.connect(settings.database_url, run_migrations=not _migrated)
        _migrated = True
        try:
            if forget:
                forget_worker(ledger, _worker_name)
            else:
                record_held_keys(ledger, _worker_name, [key_id(k) for k in settings.fernet_keys])
        finally:
            ledger.dispose()
    except Exception as exc:  # the next heartbeat tries again; a worker never stops for this
        log.warning("could not record this worker's key ids in the ledger: %s", type(exc).__name__)
    finally:
        _lock.release()


def _record_soon() -> None:
    global _last_recorded
    now = time.monotonic()
    if now - _last_recorded < RECORD_EVERY.total_seconds():
        return
    _last_recorded = now
    threading.Thread(target=_write, args=(False,), name="key-custody", daemon=True).start()


@worker_ready.connect
def _started(sender: Any = None, **_: Any) -> None:
    global _worker_name
    _worker_name = str(getattr(sender, "hostname", None) or _worker_name)
    _record_soon()


@heartbeat_sent.connect
def _heartbeat(**_: Any) -> None:
    _record_soon()


@worker_shutdown.connect
def _stopping(**_: Any) -> None:
    stopper = threading.Thread(target=_write, args=(True,), name="key-custody-stop", daemon=True)
    stopper.start()
    stopper.join(timeout=10)  # a database that does not answer must not hold up the shutdown
