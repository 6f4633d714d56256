"""`connector reconcile`: compare what was delivered with what Xero holds now."""

from __future__ import annotations

from typing import Any

import click

from connector.cli.context import TENANT, CliContext, emit, json_option, pass_context


@click.command()
@click.option("--tenant", "tenant_ids", type=TENANT, multiple=True,
              help="a tenant (repeatable; default: every active one)")
@json_option
@pass_context
def reconcile(context: CliContext, tenant_ids: tuple[str, ...], as_json: bool) -> None:
    """Compare what was delivered with what Xero holds now; store bills the deltas missed."""
    from connector.services.reconcile import reconcile_and_record as run
    from connector.store.tenants import active_tenant_ids

    if not tenant_ids:
        with context.ledger.transaction() as session:
            tenant_ids = tuple(active_tenant_ids(session))
    reports: list[dict[str, Any]] = []
    lines: list[str] = []
    for tenant_id in tenant_ids:
        found: list[object] = []
        report = run(context.services, tenant_id, emit=found.append)
        reports.append({"tenant_id": tenant_id, "delivered_checked": report.delivered_checked, "calls": report.calls,
                        "changed_after_delivery": list(report.changed_after_delivery),
                        "missing_from_ledger": list(report.missing_from_ledger), "to_map": len(found)})
        lines.append(f"tenant {tenant_id}: {report.delivered_checked} delivered bills checked in {report.calls} "
                     f"Xero calls; {len(report.changed_after_delivery)} changed after delivery; "
                     f"{len(report.missing_from_ledger)} eligible bills the ledger lacked ({len(found)} to map, "
                     "picked up by the sweeper)")
        lines.extend(f"  CHANGED {line}" for line in report.changed_after_delivery)
        lines.extend(f"  MISSING {invoice_id}" for invoice_id in report.missing_from_ledger)
    emit(as_json, reports, lines)
