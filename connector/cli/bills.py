"""`connector bills …` and `connector audit export`: one bill's story, bills by state or reason, and the
audit as CSV or JSON lines, without SQL."""

from __future__ import annotations

import csv
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from connector.cli.context import TENANT, CliContext, emit, json_option, pass_context, print_json
from connector.domain.states import BillState


@click.group()
def bills() -> None:
    """Bills: one bill's history, or bills by state and reason."""


@bills.command("show")
@click.argument("invoice")
@click.option("--tenant", default=None, type=TENANT, help="the tenant, when the bill is in several")
@json_option
@pass_context
def show(context: CliContext, invoice: str, tenant: str | None, as_json: bool) -> None:
    """A bill or credit note by Xero InvoiceID (CreditNoteID) or number: its state and reasons, the bills a
    credit note is allocated to, its documents (sha256, place in the file), every transition with who and
    why, and the file that carried it with that file's delivery attempts."""
    from connector.services.history import bill_views

    views = bill_views(context.ledger, invoice, tenant)
    if as_json:
        print_json(views)
        return
    for view in views:
        for line in _bill_lines(view):
            click.echo(line)


def _bill_lines(view: dict[str, Any]) -> list[str]:
    kind = _KIND.get(view["document_type"], "bill")
    lines = [f"{kind} {view['invoice_id']} ({view['invoice_number']!r}) of tenant {view['tenant_id']}: "
             f"{view['state']} since {_when(view['since'])}",
             f"  Xero status {view['xero_status']}; mapped with mapping set {view['mapping_set'] or '-'}"
             + (f" and its profile's set {view['mapping_profile_version']}"
                if view.get("mapping_profile_version") is not None else "")]
    lines.extend(f"  reason: {reason}" for reason in view["reasons"])
    lines.extend(f"  flag: {flag}" for flag in view["flags"])
    lines.extend(f"  allocated to bill {a['invoice_number'] or a['invoice_id']} ({a['invoice_id']}): {a['amount']}"
                 + (f" on {a['date']}" if a["date"] else "") for a in view["allocations"])
    lines.extend(f"  document: {d['path']} in {d['file'] or '(no file yet)'} (sha256 {d['sha256']}, "
                 f"{d['size']} bytes, {d['mime_type']}; {d['name']!r} in Xero)" for d in view["documents"])
    lines.append("  history:")
    for t in view["transitions"]:
        file_part = f" [file {t['file_name']}]" if t["file_name"] else ""
        mapped_with = f" [mapped with {t['mapped_with']}]" if t.get("mapped_with") else ""
        lines.append(f"    {_when(t['at'])}  {t['from_state'] or '-'} → {t['to_state']}  by {t['actor']}: "
                     f"{t['reason'] or ''}{file_part}{mapped_with}")
    file = view["file"]
    if file is None:
        lines.append("  file: none yet")
        return lines
    lines.append(f"  file: {file['name']} {file['state']} ({file['bills']} bills, made {_when(file['created_at'])}"
                 + (f", delivered {_when(file['delivered_at'])}" if file["delivered_at"] else "") + ")")
    if file["last_error"]:
        lines.append(f"    last error: {file['last_error']}")
    if file["next_attempt_at"] and file["state"] == "STAGED":
        lines.append(f"    next attempt: {_when(file['next_attempt_at'])}")
    for number, attempt in enumerate(file["attempts"], 1):
        lines.append(f"    attempt {number}: {_when(attempt['started_at'])} {attempt['outcome']}"
                     + (f": {attempt['error']}" if attempt["error"] else ""))
    if file["state"] == "FAILED":
        lines.append(f"    fix the cause, then: connector replay --file {file['name']}")
    return lines


_KIND = {"BILL": "bill", "CREDIT_NOTE": "credit note"}


def _when(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


@bills.command("list")
@click.option("--tenant", default=None, type=TENANT)
@click.option("--state", type=click.Choice([s.value for s in BillState], case_sensitive=False))
@click.option("--reason", "reason_code", default=None, help="a reason code, e.g. unmapped_gl, no_po, vendor_unknown")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="at most this many bills")
@json_option
@pass_context
def list_bills(context: CliContext, tenant: str | None, state: str | None, reason_code: str | None,
               limit: int | None, as_json: bool) -> None:
    """Bills and credit notes by tenant, state and reason code, with their reasons, allocations and documents."""
    from connector.services.history import bill_list

    rows = bill_list(context.ledger, tenant_id=tenant, state=state.upper() if state else None,
                     reason_code=reason_code, limit=limit)
    emit(as_json, rows, (_list_line(r) for r in rows))


def _list_line(row: dict[str, Any]) -> str:
    applied = ", ".join(a["invoice_number"] or a["invoice_id"] for a in row["allocations"])
    return (f"{row['tenant_id']}  {row['invoice_id']}  {row['invoice_number']!r}  {row['document_type']}  "
            f"{row['state']}" + (f": {'; '.join(row['reasons'])}" if row["reasons"] else "")
            + (f"  [allocated to {applied}]" if applied else "")
            + (f"  [{len(row['documents'])} documents]" if row["documents"] else ""))


@click.group()
def audit() -> None:
    """The append-only audit of every bill's state changes."""


SINCE_HELP = "an ISO date or time (2026-01-31, 2026-01-31T08:00) or an age (90m, 24h, 7d); default: all"


def parse_since(value: str | None) -> datetime | None:
    """An ISO date or time (UTC unless it says otherwise), or an age back from now."""
    if value is None:
        return None
    age = re.fullmatch(r"(\d+)([mhd])", value.strip())
    if age:
        unit = {"m": "minutes", "h": "hours", "d": "days"}[age.group(2)]
        return datetime.now(UTC) - timedelta(**{unit: int(age.group(1))})
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r}: {SINCE_HELP}", param_hint="--since") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@audit.command("export")
@click.option("--since", default=None, help=SINCE_HELP)
@click.option("--tenant", default=None, type=TENANT)
@click.option("--format", "output_format", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True)
@pass_context
def export(context: CliContext, since: str | None, tenant: str | None, output_format: str) -> None:
    """Every state change of every bill from --since on, oldest first, to standard output."""
    from connector.services.history import AUDIT_FIELDS, audit_export

    rows = audit_export(context.ledger, parse_since(since), tenant)
    if output_format == "jsonl":
        for row in rows:
            click.echo(json.dumps(row, default=_iso, ensure_ascii=False))
        return
    writer = csv.DictWriter(_Echo(), fieldnames=AUDIT_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _iso(value) if isinstance(value, datetime) else value for key, value in row.items()})


class _Echo:
    """A file-like standard output for csv.writer (through click, so tests and pipes see the same)."""

    def write(self, text: str) -> int:
        click.echo(text, nl=False)
        return len(text)


def _iso(value: object) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)
