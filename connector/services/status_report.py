"""`connector status` at any scale: a summary a person can read with 300 bills held or 30,000, and what
to do next. Held bills are counted by reason class and tenant, and the unmapped account codes and
tracking options are listed with how many bills each holds (what to add to the map); each file waiting
shows its last error and next attempt; each bill changed after delivery says what changed; a grant
whose refresh token has not been used for a while is flagged well before Xero's 60-day idle expiry."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from connector.domain.changes import what_changed
from connector.domain.reasons import CATALOGUE, render_with_next_try
from connector.reporting import summarise
from connector.services.profiles import tenant_maps
from connector.store.attachments import documents_retrying, left_out_for_size
from connector.store.db import Ledger, Session
from connector.store.history import changed_after_delivery, held_reasons, waiting_files
from connector.store.inventory import grant_listings
from connector.store.masterdata import master_file_kinds
from connector.store.models import utcnow
from connector.store.profiles import profile_names_of
from connector.store.reconciliations import last_reconciles

#: Xero expires a refresh token unused for 60 days; warn with a fortnight to spare.
REFRESH_TOKEN_IDLE_WARNING = timedelta(days=45)


@dataclass
class StatusReport:
    attention: list[str] = field(default_factory=list)
    bills_by_state: dict[str, int] = field(default_factory=dict)
    held_by_class: list[dict[str, Any]] = field(default_factory=list)  # tenant, class, bills
    # tenant, account, bills, and the tenant's profile (None: on none), whose map is where a shared code goes
    unmapped_accounts: list[dict[str, Any]] = field(default_factory=list)
    unmapped_tracking: list[dict[str, Any]] = field(default_factory=list)  # tenant, category, option, bills, profile
    waiting_files: list[dict[str, Any]] = field(default_factory=list)
    changed_after_delivery: list[dict[str, Any]] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)
    webhooks: list[str] = field(default_factory=list)  # per app and tenant: when the last webhook arrived
    reconciliations: list[dict[str, Any]] = field(default_factory=list)  # per tenant: the last reconcile
    # per tenant and master-data kind: the last file delivered, the files waiting, the records to send next
    master_data: list[dict[str, Any]] = field(default_factory=list)
    # each supplier document a bill goes (or went) without, over its tenant's size cap: the bill is flagged
    documents_left_out: list[dict[str, Any]] = field(default_factory=list)
    # each bill held for a document Xero failed to serve: its failures in a row and when it is asked again
    documents_retrying: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def status_report(ledger: Ledger, tenant_id: str | None = None, *, now: datetime | None = None,
                  webhook_silence: timedelta = timedelta(hours=1)) -> StatusReport:
    now = now or utcnow()
    summary = summarise(ledger, tenant_id, webhook_silence=webhook_silence)
    report = StatusReport(attention=list(summary.attention), bills_by_state=dict(sorted(summary.by_state.items())),
                          files=[{"name": n, "bills": c, "state": s} for n, c, s in summary.files],
                          webhooks=list(summary.webhooks))
    classes: Counter[tuple[str, str]] = Counter()
    accounts: Counter[tuple[str, str]] = Counter()
    tracking: Counter[tuple[str, str, str]] = Counter()
    with ledger.transaction() as session:
        for tenant, reasons in held_reasons(session, tenant_id):
            for each_class in {_class_of(r) for r in reasons}:
                classes[(tenant, each_class)] += 1
            for account in {str(r.get("account")) for r in reasons if r.get("code") == "unmapped_gl"}:
                accounts[(tenant, account)] += 1
            for category, option in {(str(r.get("category")), str(r.get("option"))) for r in reasons
                                     if r.get("code") == "unmapped_dimension"}:
                tracking[(tenant, category, option)] += 1
        for batch in waiting_files(session, tenant_id):
            report.waiting_files.append({
                "name": batch.name, "tenant_id": batch.tenant_id, "bills": batch.bill_count,
                "attempts": batch.attempts, "last_error": batch.last_error, "next_attempt_at": batch.next_attempt_at,
                "being_delivered": batch.lease_until is not None and batch.lease_until > now})
        for bill, why in changed_after_delivery(session, tenant_id):
            report.changed_after_delivery.append({
                "tenant_id": bill.tenant_id, "invoice_id": bill.invoice_id, "invoice_number": bill.invoice_number,
                "changes": what_changed(bill.mapping, bill.payload or {}), "recorded": why})
        for last in last_reconciles(session, tenant_id):
            report.reconciliations.append({"tenant_id": last.tenant_id, "at": last.at, "ok": last.ok, **last.found})
            if not last.ok:
                report.attention.append(f"tenant {last.tenant_id}: the last reconcile failed "
                                        f"({last.at:%Y-%m-%d %H:%M} UTC): {last.found.get('error')}; it runs again "
                                        "on schedule, or now with `connector reconcile --tenant ID`")
        profiles = profile_names_of(session, {t for t, _ in accounts} | {t for t, _, _ in tracking})
        masks = {t: view.own.masked for t, view in tenant_maps(session, profiles).items() if view.own.masked}
        report.master_data = master_data_status(session, tenant_id)
        report.documents_left_out = [
            {"tenant_id": bill.tenant_id, "invoice_id": bill.invoice_id, "invoice_number": bill.invoice_number,
             "state": bill.state, "name": reason.get("name"), "size": reason.get("size"), "cap": reason.get("cap")}
            for bill, reason in left_out_for_size(session, tenant_id)]
        report.documents_retrying = [
            {"tenant_id": bill.tenant_id, "invoice_id": bill.invoice_id, "invoice_number": bill.invoice_number,
             "failures": bill.documents_failures, "next_try_at": bill.documents_retry_at,
             "reasons": render_with_next_try(bill.reasons, None)}
            for bill in documents_retrying(session, tenant_id)]
        kinds = master_file_kinds(session, tenant_id)
        for row in [*report.files, *report.waiting_files]:
            row["kind"] = kinds.get(row["name"], "bills")
        for grant in grant_listings(session):
            if not grant.tenant_ids or grant.kind == "client_credentials":
                continue
            last_used = grant.refreshed_at or grant.created_at
            if isinstance(last_used, datetime) and now - last_used > REFRESH_TOKEN_IDLE_WARNING:
                report.attention.append(
                    f"grant {grant.id}: refresh token last used {(now - last_used).days} days ago; Xero expires it "
                    "after 60 idle days (are its tenants' polls running?)")
    report.held_by_class = [{"tenant_id": t, "class": c, "bills": n} for (t, c), n in sorted(classes.items())]
    report.unmapped_accounts = [{"tenant_id": t, "account": a, "bills": n, "profile": profiles.get(t),
                                 "masked": t in masks and a in masks[t].gl}
                                for (t, a), n in sorted(accounts.items(), key=lambda kv: (kv[0][0], -kv[1]))]
    report.unmapped_tracking = [{"tenant_id": t, "category": c, "option": o, "bills": n, "profile": profiles.get(t),
                                 "masked": t in masks and (c, o) in masks[t].tracking}
                                for (t, c, o), n in sorted(tracking.items(), key=lambda kv: (kv[0][0], -kv[1]))]
    return report


def master_data_status(session: Session, tenant_id: str | None = None) -> list[dict[str, Any]]:
    """Per tenant sending master data, per kind it sends or has sent: what was last sent and what waits."""
    from connector.domain.masterdata import delta
    from connector.services.masterdata import kind_template, records_of
    from connector.stampli import render
    from connector.store import masterdata as store

    found: list[dict[str, Any]] = []
    for tenant in store.tenants_with_master_data(session, tenant_id):
        settings = store.settings(session, tenant)
        for files in store.kind_files(session, tenant, settings):
            enabled = settings[files.kind].enabled
            if not enabled and files.last_delivered is None and not files.waiting:
                continue
            sent = store.sent_fingerprints(session, tenant, files.kind)
            pending = delta(records_of(session, tenant, files.kind, sent), sent) if enabled else []
            held = []
            if pending:  # what the kind's template cannot carry, named with the column (rendered, not stored)
                template = kind_template(files.kind, settings[files.kind].template, tenant)
                problems = render(template, [r.row for r in pending]).problems
                held = [{"key": r.key, "label": r.label, "problem": problems[r.key]}
                        for r in pending if r.key in problems]
            last = files.last_delivered
            found.append({
                "tenant_id": tenant, "kind": str(files.kind), "enabled": enabled,
                "template": "custom" if settings[files.kind].template else "default",
                "last_sent": {"file": last[0], "records": last[1], "at": last[2]} if last else None,
                "records_sent": files.records_sent,
                "waiting": [{"file": n, "records": c, "state": st, "last_error": e} for n, c, st, e in files.waiting],
                "pending": len(pending), "held": held})
    return found


def _class_of(reason: dict[str, Any]) -> str:
    entry = CATALOGUE.get(str(reason.get("code")))
    return str(entry[0].value) if entry and entry[0] is not None else str(reason.get("code"))
