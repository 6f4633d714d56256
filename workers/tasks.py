"""Celery tasks: thin shells that call a service, then send the follow-up messages it returned.

Retryable errors become Celery retries (backoff with jitter, never shorter than Retry-After) as long as
the wait is short; longer waits are parked in the database by the service and resumed by beat.
Permanent errors are recorded by the services and end the task without a retry storm.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from celery import Task

from connector.errors import PermanentError, RetryableError
from connector.services import batch, deliver, dispatch, grants, map, poll, reconcile, sweep
from connector.services.messages import Message
from workers.app import app
from workers.runtime import retry_countdown, send, services

log = logging.getLogger(__name__)
T = TypeVar("T")


MAX_CELERY_RETRIES = 8  # past this, the work waits in the ledger for the sweeper or the next poll


def _run(task: Task, work: Callable[[], T]) -> T | None:
    """Run a service call with the one retry policy for every task."""
    settings = services(app).settings
    try:
        return work()
    except RetryableError as exc:
        cap = settings.delivery_max_countdown_seconds
        if (exc.retry_after is not None and exc.retry_after > cap) or task.request.retries >= MAX_CELERY_RETRIES:
            log.warning("%s: %s; left in the ledger, resumed by beat and the sweeper", task.name, exc)
            return None
        countdown = retry_countdown(task.request.retries, exc.retry_after, cap)
        log.warning("%s: %s; retry in %.1fs", task.name, exc, countdown)
        raise task.retry(countdown=countdown, max_retries=MAX_CELERY_RETRIES) from None
    except PermanentError as exc:
        log.error("%s: %s", task.name, exc)
        return None


def _send_all(messages: list[Message]) -> None:
    """Send the follow-ups, then mark the map messages among them sent (the sweeper leaves those alone)."""
    for message in messages:
        send(app, message)
    sweep.mark_sent(services(app), messages)


@app.task(name="connector.dispatch_due_polls", bind=True)
def dispatch_due_polls(self: Task, tenant_id: str | None = None) -> None:
    """Beat's tick (every due tenant), or a webhook's wake (`tenant_id`)."""
    _send_all(_run(self, lambda: dispatch.dispatch_due_polls(services(app), tenant_id)) or [])


@app.task(name="connector.sweep", bind=True)
def sweep_stalled_work(self: Task) -> None:
    """Each chunk of the sweep's messages is sent and marked sent before the next is read."""
    _run(self, lambda: sweep.sweep(services(app), send=_send_all))


@app.task(name="connector.refresh_grants", bind=True)
def refresh_grants(self: Task) -> None:
    _run(self, lambda: grants.refresh_due_grants(services(app)))


@app.task(name="connector.reconcile_tenants", bind=True)
def reconcile_tenants(self: Task) -> None:
    """Beat's daily entry: one reconcile per active tenant, each its own task (and its own time limit)."""
    for tenant_id in _run(self, lambda: reconcile.tenants_to_reconcile(services(app))) or []:
        app.send_task("connector.reconcile_tenant", args=[tenant_id])


@app.task(name="connector.reconcile_tenant", bind=True)
def reconcile_tenant(self: Task, tenant_id: str, run_of: str | None = None) -> None:
    """A reconcile that stopped (the minute's rate budget spent, or its time budget read) is sent again to
    go on with the same run from its progress in the ledger, as a fresh task: its own time limit, no retry
    count; `run_of` names the run, so a leg that arrives after the run ended does nothing."""
    report = _run(self, lambda: reconcile.reconcile_and_record(services(app), tenant_id, run_of=run_of,
                                                                 emit=lambda m: send(app, m), leg=self.request.id))
    if report is not None and report.stopped:
        app.send_task("connector.reconcile_tenant", args=[tenant_id], kwargs={"run_of": report.started_at},
                      countdown=report.resume_in)


@app.task(name="connector.poll_tenant", bind=True)
def poll_tenant(self: Task, tenant_id: str) -> None:
    _run(self, lambda: poll.poll_tenant(services(app), tenant_id, emit=lambda m: send(app, m)))


@app.task(name="connector.map_invoice", bind=True)
def map_invoice(self: Task, tenant_id: str, invoice_id: str, version: int) -> None:
    _send_all(_run(self, lambda: map.map_invoice(services(app), tenant_id, invoice_id, version)) or [])


@app.task(name="connector.assemble_batch", bind=True)
def assemble_batch(self: Task, tenant_id: str, bills: bool = True, full_files: bool = False) -> None:
    """Each file's delivery is sent as soon as it is staged (not once the whole assemble is done)."""
    _run(self, lambda: batch.assemble_batches(services(app), tenant_id, bills=bills, full_files=full_files,
                                              emit=lambda message: _send_all([message])))


#: A file that waits for an earlier master-data file looks again after 2, 4, 8 ... s, at most this long.
WAITING_FILE_RECHECK_CAP_SECONDS = 60.0


@app.task(name="connector.deliver_batch", bind=True)
def deliver_batch(self: Task, batch_id: int, waited: int = 0) -> Any:
    report = _run(self, lambda: deliver.deliver_batch(services(app), batch_id, task_id=self.request.id))
    _send_all(list(report.follow_ups) if report is not None else [])  # files that waited for this one
    if report is not None and report.waits_for:
        # The delivery it waits for wakes it; if that wake-up is lost (a worker killed between the settle
        # and the send), the waiting file still looks again by itself instead of waiting for the sweeper.
        countdown = min(2.0 ** (waited + 1), WAITING_FILE_RECHECK_CAP_SECONDS)
        app.send_task("connector.deliver_batch", args=[batch_id], kwargs={"waited": waited + 1}, countdown=countdown)
