"""Xero webhooks as pure rules: the signature, the payload, when a tenant is woken, when silence is suspect.

A webhook only wakes a tenant's poll; the poll stays the one reader of Xero. So these rules decide
nothing about bills: a forged, lost or repeated event can at worst make a poll come early or late.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final

#: Xero's payloads are a few kilobytes; anything far larger is not Xero and is refused before it is read.
MAX_BODY_BYTES: Final = 256 * 1024
SIGNATURE_HEADER: Final = "x-xero-signature"
SALES_CREDIT: Final = "ACCRECCREDIT"  # a CREDITNOTE event's data.Type for a customer's credit note


class EventCategory(StrEnum):
    INVOICE = "INVOICE"
    CONTACT = "CONTACT"
    CREDITNOTE = "CREDITNOTE"
    SUBSCRIPTION = "SUBSCRIPTION"


class EventType(StrEnum):
    CREATE = "CREATE"
    UPDATE = "UPDATE"  # archiving arrives as an UPDATE; Xero sends no DELETE


class InboxNote(StrEnum):
    """Why an accepted payload woke no tenant."""

    INTENT_TO_RECEIVE = "intent_to_receive"  # Xero's set-up check: a signed payload with no events
    UNREADABLE = "unreadable"                # signed by Xero's key, but not the documented shape


def sign(body: bytes, key: str) -> str:
    """What Xero puts in `x-xero-signature`: base64 of HMAC-SHA256 over the raw body, keyed with the webhook key."""
    return base64.b64encode(hmac.new(key.encode("utf-8"), body, hashlib.sha256).digest()).decode("ascii")


def signature_valid(body: bytes, signature: str | None, key: str) -> bool:
    """Constant time over the raw bytes as received (never a re-serialised body)."""
    if not signature:
        return False
    return hmac.compare_digest(sign(body, key).encode("ascii"), signature.strip().encode("ascii", "replace"))


@dataclass(frozen=True)
class WebhookEvent:
    tenant_id: str
    category: str  # an EventCategory when Xero keeps to its spec; kept as sent otherwise
    event_type: str
    resource_id: str
    event_date: str
    credit_note_type: str = ""  # a CREDITNOTE event's `data.Type` (ACCPAYCREDIT, ACCRECCREDIT), "" if not sent


@dataclass(frozen=True)
class WebhookPayload:
    events: tuple[WebhookEvent, ...]
    first_sequence: int | None
    last_sequence: int | None

    @property
    def tenant_ids(self) -> list[str]:
        """Tenants named by the events, once each, in order of first mention."""
        return list(dict.fromkeys(e.tenant_id for e in self.events))

    def events_of(self, tenant_id: str) -> list[WebhookEvent]:
        return [e for e in self.events if e.tenant_id == tenant_id]


class UnreadablePayload(ValueError):
    """A correctly signed body that is not the envelope Xero documents."""


def parse_payload(body: bytes) -> WebhookPayload:
    """The envelope `{events, firstEventSequence, lastEventSequence, entropy}`; raises UnreadablePayload."""
    try:
        data: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UnreadablePayload(f"not JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("events"), list):
        raise UnreadablePayload("no events list")
    events: list[WebhookEvent] = []
    for at, raw in enumerate(data["events"]):
        if not isinstance(raw, dict) or not isinstance(raw.get("tenantId"), str) or not raw["tenantId"]:
            raise UnreadablePayload(f"event {at} names no tenantId")
        events.append(WebhookEvent(
            tenant_id=raw["tenantId"][:64], category=str(raw.get("eventCategory", ""))[:32],
            event_type=str(raw.get("eventType", ""))[:32], resource_id=str(raw.get("resourceId", ""))[:64],
            event_date=str(raw.get("eventDateUtc", ""))[:40],
            credit_note_type=_credit_note_type(raw.get("data")),
        ))
    return WebhookPayload(tuple(events), _sequence(data.get("firstEventSequence")),
                          _sequence(data.get("lastEventSequence")))


def _credit_note_type(extra: object) -> str:
    """`data.Type` of an event that carries one (Xero's CREDITNOTE events do), else ""."""
    return str(extra.get("Type", ""))[:32] if isinstance(extra, dict) else ""


def _sequence(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**31 else None


def wakes_a_poll(event: WebhookEvent) -> bool:
    """Bills and their suppliers are what we read; a subscription event is about the app, not data."""
    return event.category != EventCategory.SUBSCRIPTION


def announces_credit_notes(event: WebhookEvent) -> bool:
    """A supplier credit note changed: the poll it wakes reads credit notes too (domain.credit_note_cadence).
    A sales credit note (Xero's `data.Type` ACCRECCREDIT) still wakes the poll, but asks for no read of
    the credit notes: those are never read. An event without `data` asks, to be safe."""
    return event.category == EventCategory.CREDITNOTE and event.credit_note_type != SALES_CREDIT


def next_wake(planned_wake_at: datetime | None, now: datetime, window: timedelta) -> datetime | None:
    """When to ask for the tenant's poll, or None when a wake already planned covers this event.

    The first event plans a wake one short window later; every event until that wake fires is covered
    by it, so a burst asks for one poll; an event after it plans the next. So a tenant is woken at most
    once per window, and every event by a wake that comes after it."""
    if planned_wake_at is not None and planned_wake_at > now:
        return None
    return now + window


def webhooks_silent(last_webhook_at: datetime | None, last_change_at: datetime | None, grace: timedelta) -> bool:
    """Xero changed the tenant's bills well after the last webhook: Xero may have disabled the webhook
    after 24 hours of failed deliveries, and only a person can turn it on again."""
    if last_change_at is None:
        return False
    return last_webhook_at is None or last_change_at > last_webhook_at + grace
