"""The Xero webhook receiver as a plain WSGI app: it answers in milliseconds and never reads Xero.

Xero wants 200 with an empty body within 5 s for a correctly signed request and 401 for any other, and
checks both when the webhook is set up (intent to receive); deliveries it cannot make are retried for
24 hours, then the webhook is disabled. So the receiver does the least that is safe: check the signature
over the raw bytes in constant time, store the payload once in the inbox, plan a wake for each known
tenant (bursts coalesce), commit, hand the wakes to the broker, answer. A wake that never reaches
the broker still left the tenant due in the ledger, so beat's next tick polls it.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from connector.domain.webhooks import (
    MAX_BODY_BYTES,
    InboxNote,
    UnreadablePayload,
    WebhookPayload,
    parse_payload,
    signature_valid,
)
from connector.secret import Secret
from connector.store.db import Ledger, LedgerError
from connector.store.models import utcnow
from connector.store.webhooks import Accepted, Inbox, ledger_answers

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/xero"
LIVENESS_PATH = "/healthz"
READINESS_PATH = "/readyz"

#: Asks for a tenant's poll `delay` seconds from now (a Celery countdown in production).
Wake = Callable[[str, float], None]


class Receiver:
    """One per process. `wake` is called after the payload is committed, never inside the transaction."""

    def __init__(self, ledger: Ledger, key: Secret, window: timedelta, wake: Wake,
                 clock: Callable[[], datetime] = utcnow) -> None:
        if not key:
            raise ValueError("the receiver needs the Xero webhook key (CONNECTOR_XERO_WEBHOOK_KEY)")
        self.ledger, self._key, self.window, self.wake, self.clock = ledger, key, window, wake, clock
        self.inbox = Inbox(ledger)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        if path == WEBHOOK_PATH:
            status = self._webhook(environ) if method == "POST" else "405 Method Not Allowed"
        elif path == LIVENESS_PATH and method == "GET":
            status = "200 OK"
        elif path == READINESS_PATH and method == "GET":
            status = "200 OK" if self._ready() else "503 Service Unavailable"
        else:
            status = "404 Not Found"
        start_response(status, [("Content-Length", "0")])
        return [b""]

    def _webhook(self, environ: WSGIEnvironment) -> str:
        try:
            length = int(environ.get("CONTENT_LENGTH") or "")
        except ValueError:
            return "411 Length Required"
        if length < 0:
            return "400 Bad Request"
        if length > MAX_BODY_BYTES:
            return "413 Content Too Large"
        body = _read(environ["wsgi.input"], length)
        if not signature_valid(body, environ.get("HTTP_X_XERO_SIGNATURE"), self._key.reveal()):
            log.info("webhook refused: its signature does not match the webhook key (%d bytes)", len(body))
            return "401 Unauthorized"
        try:
            accepted = self.accept(body)
        except LedgerError:
            log.exception("webhook not stored: the ledger is unavailable; Xero will deliver it again")
            return "503 Service Unavailable"
        self._send_wakes(accepted)
        return "200 OK"

    def accept(self, body: bytes) -> Accepted:
        """Store a signed body once and plan its wakes (one statement on PostgreSQL, see store.webhooks.Inbox)."""
        payload: WebhookPayload | None
        try:
            payload = parse_payload(body)
            note = None if payload.events else InboxNote.INTENT_TO_RECEIVE
        except UnreadablePayload as exc:
            log.warning("a signed webhook is not Xero's documented shape (%s); stored, nothing woken", exc)
            payload, note = None, InboxNote.UNREADABLE
        text = body.decode("utf-8", errors="replace")
        digest = hashlib.sha256(body).hexdigest()
        now = self.clock()
        accepted = self.inbox.accept(body=text, body_sha256=digest, payload=payload, note=note, now=now,
                                     window=self.window)
        if accepted.unknown_tenants:
            log.info("webhook for tenants we do not sync, recorded and ignored: %s",
                     ", ".join(accepted.unknown_tenants))
        return accepted

    def _send_wakes(self, accepted: Accepted) -> None:
        now = self.clock()
        for tenant_id, at in accepted.wakes:
            try:
                self.wake(tenant_id, max(0.0, (at - now).total_seconds()))
            except Exception:  # the broker is down: the tenant is due in the ledger, beat's tick polls it
                log.warning("could not send the wake of tenant %s; beat's next tick polls it", tenant_id,
                            exc_info=True)

    def close(self) -> None:
        """Release the connections the inbox keeps (a server process just exits instead)."""
        self.inbox.close()

    def _ready(self) -> bool:
        try:
            with self.ledger.transaction() as session:
                return ledger_answers(session)
        except LedgerError:
            return False


def _read(stream: object, length: int) -> bytes:
    read = getattr(stream, "read")  # noqa: B009 - a WSGI input stream, typed loosely by the server
    chunks: list[bytes] = []
    remaining = length
    while remaining > 0:
        chunk = read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


class LazyReceiver:
    """Built on the first request in each server process (after the fork), so no connection is shared."""

    def __init__(self, build: Callable[[], Receiver]) -> None:
        self._build = build
        self._receiver: Receiver | None = None
        self._lock = threading.Lock()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if self._receiver is None:
            with self._lock:
                if self._receiver is None:
                    self._receiver = self._build()
        return self._receiver(environ, start_response)
