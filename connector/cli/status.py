"""`connector status`: what the ledger holds and what waits for a person, summarised so that it reads
the same with 3 bills held or 30,000 (`connector bills list` gives the bills themselves)."""

from __future__ import annotations

import click

from connector.cli.context import TENANT, CliContext, json_option, pass_context, print_json

#: Up to this many files are listed one by one; beyond, the states are counted.
FILES_LISTED = 20


@click.command()
@click.option("--tenant", default=None, type=TENANT, help="limit to one Xero tenant id")
@json_option
@pass_context
def status(context: CliContext, tenant: str | None, as_json: bool) -> None:
    """What needs a person first, then bills by state, held bills by reason class and tenant, what to add
    to the maps, files waiting with their last error and next attempt, bills changed after delivery, and
    per master-data kind the last file sent and what waits."""
    from datetime import timedelta

    from connector.services.status_report import status_report

    silence = timedelta(seconds=context.settings.webhook_silence_seconds)
    report = status_report(context.ledger, tenant, webhook_silence=silence)
    if as_json:
        print_json(report.as_json())
        return
    for line in report.attention:
        click.echo(f"ATTENTION {line}")
    for state, count in report.bills_by_state.items():
        click.echo(f"{state:<24}{count:>8}")
    for row in report.held_by_class:
        click.echo(f"HELD {row['tenant_id']} {row['class']}: {row['bills']} bills")
    for row in report.unmapped_accounts:
        click.echo(f"UNMAPPED account {row['account']} ({row['tenant_id']}): {row['bills']} bills; "
                   + _where(row, "GL", f"--gl {row['account']}"))
    for row in report.unmapped_tracking:
        click.echo(f"UNMAPPED tracking {row['category']} / {row['option']} ({row['tenant_id']}): {row['bills']} "
                   "bills; " + _where(row, "tracking", f"--tracking {row['category']} {row['option']}"))
    if report.held_by_class:
        click.echo("  (the bills: connector bills list --state HELD [--reason CODE])")
    for row in report.waiting_files:
        when = row["next_attempt_at"].strftime("%Y-%m-%d %H:%M:%S UTC") if row["next_attempt_at"] else "now"
        doing = "being delivered" if row["being_delivered"] else f"next attempt {when}"
        error = f"; last error: {row['last_error']}" if row["last_error"] else ""
        click.echo(f"WAITING {row['name']} ({_count(row)}): {row['attempts']} attempts, {doing}{error}")
    for row in report.changed_after_delivery:
        what = ", ".join(row["changes"]) or row["recorded"] or "edited in Xero"
        click.echo(f"CHANGED {row['invoice_id']} {row['invoice_number']!r} ({row['tenant_id']}): {what}; "
                   f"Stampli has the old version (connector replay --invoice {row['invoice_id']} --resend)")
    for row in report.documents_left_out:
        click.echo(f"DOCUMENT LEFT OUT {row['invoice_id']} {row['invoice_number']!r} ({row['tenant_id']}, "
                   f"{row['state']}): {row['name']!r} is {row['size']} bytes, over the tenant's cap of {row['cap']}; "
                   "the bill goes flagged without it (raise attachments.max_bytes to send such documents)")
    for row in report.documents_retrying:
        click.echo(f"DOCUMENT RETRY {row['invoice_id']} {row['invoice_number']!r} ({row['tenant_id']}): "
                   f"{'; '.join(row['reasons'])}; failed {row['failures']} times in a row, next try at "
                   f"{row['next_try_at']:%Y-%m-%d %H:%M} UTC (at once on a new version in Xero or "
                   f"`connector holds release --invoice {row['invoice_id']}`)")
    for row in report.master_data:
        last = row["last_sent"]
        sent = (f"last sent {last['file']} ({last['records']} records, {last['at']:%Y-%m-%d %H:%M} UTC)" if last
                else "nothing sent yet")
        waits = "; ".join(f"{w['file']} {w['state']} ({w['records']} records)"
                          f"{': ' + str(w['last_error']) if w['last_error'] else ''}" for w in row["waiting"])
        off = "" if row["enabled"] else " (turned off)"
        click.echo(f"MASTERDATA {row['tenant_id']} {row['kind']}{off}: {sent}; {row['records_sent']} records in "
                   f"Stampli; waiting: {waits or 'no file'}; {row['pending']} records for the next file")
        for held in row["held"]:
            click.echo(f"HELD {row['kind']} {held['key']} {held['label']!r} ({row['tenant_id']}): {held['problem']}; "
                       f"not sent until the record in Xero or the {row['kind']} template changes "
                       f"(connector masterdata set {row['tenant_id']} --template {row['kind']}=FILE)")
    files = report.files
    if len(files) <= FILES_LISTED:
        for row in files:
            click.echo(f"FILE {row['name']} ({_count(row)}) {row['state']}")
    else:
        counted: dict[str, int] = {}
        for row in files:
            counted[row["state"]] = counted.get(row["state"], 0) + 1
        click.echo("FILES " + ", ".join(f"{n} {s}" for s, n in sorted(counted.items())))
    for line in report.webhooks:
        click.echo(f"WEBHOOK {line}")
    for row in report.reconciliations:
        if row["ok"]:
            click.echo(f"RECONCILED {row['tenant_id']} {row['at']:%Y-%m-%d %H:%M} UTC: {row.get('delivered_checked')} "
                       f"delivered bills and {row.get('credit_notes_checked', 0)} credit notes checked in "
                       f"{row.get('calls')} Xero calls; {row.get('changed_after_delivery')} changed after delivery, "
                       f"{row.get('missing_from_ledger')} eligible bills or credit notes the ledger lacked")


def _where(row: dict[str, object], which: str, entry: str) -> str:
    """Where an unmapped code goes: for a tenant on a profile, the profile's map (one import for every tenant
    on it), not the tenant's own (an override that would stop following the profile); a code the tenant
    masks is unmapped on purpose."""
    name, tenant = row.get("profile"), row["tenant_id"]
    if row.get("masked"):
        return f"masked for this tenant (lift it: connector mappings unset --tenant {tenant} {entry})"
    if name is None:
        return f"add it to the {which} map"
    return f"add it to the {which} map of profile {name} (connector mappings import --profile {name})"


def _count(row: dict[str, object]) -> str:
    """What a file carries: bills, or the records of a master-data kind."""
    kind = row.get("kind", "bills")
    return f"{row['bills']} bills" if kind == "bills" else f"{row['bills']} {kind} records"
