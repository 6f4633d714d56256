"""`connector reconcile`: compare what was delivered with what Xero holds now."""

from __future__ import annotations

import time
from typing import Any

import click

from connector.cli.context import (
    CliContext,
    active_among,
    emit,
    json_option,
    pass_context,
    selected_tenants,
    tenant_selection,
)


@click.command()
@tenant_selection
@json_option
@pass_context
def reconcile(context: CliContext, tenant_ids: tuple[str, ...], all_tenants: bool, grant_ids: tuple[int, ...],
              as_json: bool) -> None:
    """Compare the bills and credit notes delivered with what Xero holds now; store those the deltas missed.

    For the tenants selected (--tenant, repeatable; --all-tenants; --grant N), by default every ACTIVE one.
    A tenant named that is not ACTIVE refuses the command (exit 4); one reached by --all-tenants or
    --grant is skipped, and said so. A reconcile that a worker left unfinished is taken up where it
    stopped; one that spends the minute's rate budget waits for it and goes on. One whose run a worker
    took between two of its legs leaves the run to it, and says so."""
    from connector.services.reconcile import reconcile_and_record as run
    from connector.store.tenants import active_tenant_ids

    if tenant_ids or all_tenants or grant_ids:
        chosen = active_among(selected_tenants(tenant_ids, all_tenants, grant_ids), tenant_ids, "reconciled")
    else:
        with context.ledger.transaction() as session:
            chosen = active_tenant_ids(session)
    reports: list[dict[str, Any]] = []
    lines: list[str] = []
    for tenant_id in chosen:
        found: list[object] = []
        report = run(context.services, tenant_id, emit=found.append, handover=False)
        if report.busy:
            reports.append({"tenant_id": tenant_id, "busy": True})
            lines.append(f"tenant {tenant_id}: a worker is reconciling it now; `connector status` shows what "
                         "that run finds once it ends")
            continue
        changed, missing = list(report.changed_after_delivery), list(report.missing_from_ledger)
        while report.stopped and not report.busy:  # a spent minute, or half the hold spent: go on where it stopped
            time.sleep(report.resume_in)
            # Naming the run: a worker's leg may have taken it between two of ours (and ended it); then
            # this one starts no run of its own, which would ask Xero again for all that run asked.
            report = run(context.services, tenant_id, emit=found.append, handover=False, run_of=report.started_at)
            changed += report.changed_after_delivery
            missing += report.missing_from_ledger
        if report.busy or report.skipped:
            reports.append({"tenant_id": tenant_id, "busy": True, "changed_after_delivery": changed,
                            "missing_from_ledger": missing, "to_map": len(found)})
            lines.append(f"tenant {tenant_id}: a worker went on with this reconcile; `connector status` shows "
                         "what the run finds once it ends")
            lines.extend(f"  CHANGED {line}" for line in changed)
            lines.extend(f"  MISSING {invoice_id}" for invoice_id in missing)
            continue
        report.changed_after_delivery, report.missing_from_ledger = changed, missing
        reports.append({"tenant_id": tenant_id, "delivered_checked": report.delivered_checked,
                        "credit_notes_checked": report.credit_notes_checked, "calls": report.calls,
                        "changed_after_delivery": list(report.changed_after_delivery),
                        "missing_from_ledger": list(report.missing_from_ledger), "to_map": len(found)})
        lines.append(f"tenant {tenant_id}: {report.delivered_checked} delivered bills and "
                     f"{report.credit_notes_checked} credit notes checked in {report.calls} Xero calls; "
                     f"{len(report.changed_after_delivery)} changed after delivery; {len(report.missing_from_ledger)} "
                     f"eligible bills or credit notes the ledger lacked ({len(found)} to map, picked up by the "
                     "sweeper)")
        lines.extend(f"  CHANGED {line}" for line in report.changed_after_delivery)
        lines.extend(f"  MISSING {invoice_id}" for invoice_id in report.missing_from_ledger)
    emit(as_json, reports, lines)
