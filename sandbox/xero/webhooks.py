"""Xero's webhooks, as the sandbox sends them: signed POSTs to one URL when a tenant's data changes.

As Xero documents (developer.xero.com/documentation/webhooks and `xero-webhooks.yaml`): one webhook per
app for every connected organisation; the body is `{events, firstEventSequence, lastEventSequence,
entropy}`; `x-xero-signature` is base64(HMAC-SHA256(raw body, webhook key)). Setting the URL runs the
intent-to-receive check first: a correctly signed request must get 200 with an empty body and a wrongly
signed one 401, or the webhook is not enabled. Events queued while a delivery is in flight go out
together in the next payload, as Xero batches them. A failed delivery is retried with growing gaps;
after `max_attempts` the webhook is disabled until it is configured again (Xero: 24 hours, then the
developer portal).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import queue
import secrets
import string
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import requests


def sign(body: bytes, key: str) -> str:
    return base64.b64encode(hmac.new(key.encode("utf-8"), body, hashlib.sha256).digest()).decode("ascii")


def _entropy() -> str:
    return "".join(secrets.choice(string.ascii_uppercase) for _ in range(20))


def _date(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}"


@dataclass
class Delivery:
    """One POST as sent, kept so tests can replay Xero's real requests."""

    body: bytes
    signature: str
    status: int | None = None
    response_body: bytes = b""
    attempts: int = 0


@dataclass
class WebhookSender:
    url: str | None = None
    key: str | None = None
    intent_ok: bool | None = None
    disabled: bool = False
    max_attempts: int = 5
    first_gap: float = 0.2
    timeout: float = 5.0
    sequence: int = 0
    deliveries: list[Delivery] = field(default_factory=list)
    _pending: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _http: requests.Session = field(default_factory=requests.Session)

    @staticmethod
    def new_key() -> str:
        """Like the key the developer portal shows: 88 characters of base64."""
        return base64.b64encode(secrets.token_bytes(66)).decode("ascii")

    def configure(self, url: str, key: str | None = None) -> dict[str, Any]:
        """Point the app's webhook at `url` and run the intent-to-receive check; enabled only if it passes."""
        self.url, self.key, self.disabled = url, key or self.new_key(), False
        self.intent_ok = self._intent_to_receive()
        if self.intent_ok:
            self._start()
        return self.snapshot()

    def clear(self) -> None:
        self.url, self.key, self.intent_ok = None, None, None

    @property
    def enabled(self) -> bool:
        return bool(self.url and self.key and self.intent_ok and not self.disabled)

    def snapshot(self) -> dict[str, Any]:
        return {"url": self.url, "key": self.key, "intent_to_receive": self.intent_ok, "enabled": self.enabled,
                "disabled": self.disabled, "sequence": self.sequence, "pending": self._pending.qsize(),
                "deliveries": len(self.deliveries),
                "statuses": [d.status for d in self.deliveries[-20:]]}

    def _intent_to_receive(self) -> bool:
        """Xero sends a correctly and a wrongly signed payload with no events and expects 200/401, empty."""
        assert self.key is not None
        good = self._post(self._body([]), right=True)
        bad = self._post(self._body([]), right=False)
        return good is not None and bad is not None and good.status == 200 and not good.response_body \
            and bad.status == 401

    def changed(self, tenant_id: str, category: str, created: list[str], updated: list[str], at: datetime,
                data: Mapping[str, Mapping[str, str]] | None = None) -> None:
        """Queue the events of a data change; nothing is sent unless the webhook is enabled. `data` holds,
        by resource id, what Xero adds to an event of that category: a CREDITNOTE event carries the credit
        note's `{"Type", "Status"}` (xero-webhooks.yaml, CreditNoteWebhookEvent); the others carry none."""
        if not self.enabled:
            return
        resource = {"INVOICE": "Invoices", "CONTACT": "Contacts", "CREDITNOTE": "CreditNotes"}[category]
        for kind, ids in (("CREATE", created), ("UPDATE", updated)):
            for resource_id in ids:
                event: dict[str, Any] = {
                    "resourceUrl": f"https://api.xero.com/api.xro/2.0/{resource}/{resource_id}",
                    "resourceId": resource_id, "eventDateUtc": _date(at), "eventType": kind,
                    "eventCategory": category, "tenantId": tenant_id, "tenantType": "ORGANISATION",
                }
                if data and resource_id in data:
                    event["data"] = dict(data[resource_id])
                self._pending.put(event)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued event was delivered (or given up); True when the queue is empty."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._pending.unfinished_tasks == 0:
                return True
            time.sleep(0.01)
        return False

    def _body(self, events: list[dict[str, Any]]) -> bytes:
        with self._lock:
            first = self.sequence + 1 if events else 0
            self.sequence += len(events)
            last = self.sequence if events else 0
        return json.dumps({"events": events, "firstEventSequence": first, "lastEventSequence": last,
                           "entropy": _entropy()}, separators=(",", ":")).encode("utf-8")

    def _post(self, body: bytes, *, right: bool) -> Delivery | None:
        assert self.url is not None
        assert self.key is not None
        signature = sign(body, self.key) if right else sign(body, self.key + "-not-the-key")
        delivery = Delivery(body, signature)
        self.deliveries.append(delivery)
        try:
            response = self._http.post(self.url, data=body, timeout=self.timeout, headers={
                "Content-Type": "application/json", "x-xero-signature": signature})
        except requests.RequestException:
            return None
        delivery.status, delivery.response_body = response.status_code, response.content
        return delivery

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="xero-sandbox-webhooks", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            batch = [self._pending.get()]
            while len(batch) < 500:
                try:
                    batch.append(self._pending.get_nowait())
                except queue.Empty:
                    break
            try:
                if self.enabled:
                    self._deliver(self._body(batch))
            finally:
                for _ in batch:
                    self._pending.task_done()

    def _deliver(self, body: bytes) -> None:
        gap = self.first_gap
        for attempt in range(1, self.max_attempts + 1):
            delivery = self._post(body, right=True)
            if delivery is not None:
                delivery.attempts = attempt
                if delivery.status == 200:
                    return
            time.sleep(gap)
            gap *= 2
        self.disabled = True  # as Xero does after 24 hours of failures: until someone turns it on again
