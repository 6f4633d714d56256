"""What an operator asks the ledger: counts by state, held bills with reasons, delivered files."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

from connector.domain.reasons import render
from connector.domain.states import IN_FLIGHT, BatchState, BillState
from connector.domain.tenants import TenantStatus
from connector.domain.webhooks import webhooks_silent
from connector.store import reports
from connector.store.db import Ledger
from connector.store.models import utcnow
from connector.store.polls import parked_polls
from connector.store.webhooks import WebhookStanding, webhook_standings


@dataclass
class Summary:
    by_state: Counter[str] = field(default_factory=Counter)
    held: list[tuple[str, str, list[str]]] = field(default_factory=list)  # invoice id, number, reasons
    excluded: list[tuple[str, str, list[str]]] = field(default_factory=list)
    files: list[tuple[str, int, str]] = field(default_factory=list)  # name, bills, state
    staged_batches: int = 0
    attention: list[str] = field(default_factory=list)  # grants and tenants a person must look at
    webhooks: list[str] = field(default_factory=list)  # per app and tenant: when the last webhook arrived
    credit_notes: int = 0  # of the documents seen, how many are supplier credit notes

    @property
    def seen(self) -> int:
        """Documents seen: bills and supplier credit notes (they share one life cycle)."""
        return sum(self.by_state.values())

    @property
    def bills_seen(self) -> int:
        return self.seen - self.credit_notes

    @property
    def settled(self) -> bool:
        """Nothing is moving by itself any more: every bill waits for Xero or a person, or is delivered."""
        moving = sum(self.by_state[s] for s in IN_FLIGHT)
        return self.seen > 0 and moving == 0 and self.staged_batches == 0


def summarise(ledger: Ledger, tenant_id: str | None = None, *,
              webhook_silence: timedelta = timedelta(hours=1)) -> Summary:
    summary = Summary()
    with ledger.transaction() as session:
        _webhooks(summary, webhook_standings(session, tenant_id), webhook_silence)
        summary.by_state.update(reports.bill_counts_by_state(session, tenant_id))
        summary.credit_notes = reports.credit_note_count(session, tenant_id)
        for bill in reports.held_and_excluded_bills(session, tenant_id):
            entry = (bill.invoice_id, bill.invoice_number or "", [render(r) for r in bill.reasons])
            (summary.held if bill.state == BillState.HELD else summary.excluded).append(entry)
        summary.files = reports.files(session, tenant_id)
        summary.staged_batches = sum(1 for _, _, s in summary.files if s == BatchState.STAGED)
        for grant_id, status in reports.grants_not_active(session):
            summary.attention.append(f"grant {grant_id} {status}: re-authorise with `connector auth connect "
                                     f"--grant {grant_id}`")
        for name, error in reports.failed_files(session, tenant_id):
            summary.attention.append(f"file {name} FAILED: {error} (fix the cause, then "
                                     f"`connector replay --file {name}`)")
        for parked_tenant, reason in parked_polls(session, tenant_id):
            summary.attention.append(f"tenant {parked_tenant} polls parked: {reason} (look at the worker logs,"
                                     " then clear with `connector tenants set ID --status ACTIVE`)")
        for each_tenant, status, parked in reports.tenant_statuses(session):
            if status != TenantStatus.ACTIVE:
                summary.attention.append(f"tenant {each_tenant} {status}")
            elif parked is not None and parked > utcnow():
                summary.attention.append(f"tenant {each_tenant} parked until {parked.isoformat()} (Xero day limit)")
    return summary


def _webhooks(summary: Summary, standings: list[WebhookStanding], silence: timedelta) -> None:
    """Once any webhook has arrived, a tenant whose bills keep changing with no webhook is a warning:
    Xero disables a webhook after 24 hours of failed deliveries, and only a person turns it on again."""
    in_use = any(s.last_webhook_at is not None for s in standings)
    for each in standings:
        heard = each.last_webhook_at.isoformat() if each.last_webhook_at else "never"
        if not each.known:
            summary.webhooks.append(f"tenant {each.tenant_id} (not synced): {each.events} events ignored, "
                                    f"last at {heard}")
            continue
        summary.webhooks.append(f"app {each.client_id} tenant {each.tenant_id}: last webhook {heard}, "
                                f"{each.events} events")
        if in_use and webhooks_silent(each.last_webhook_at, each.last_change_at, silence):
            changed = each.last_change_at.isoformat() if each.last_change_at else "?"
            summary.attention.append(
                f"tenant {each.tenant_id}: webhooks stopped (last {heard}) while its Xero bills kept changing "
                f"(latest {changed}); check the webhook in Xero's developer portal (re-enable it) and the receiver")
