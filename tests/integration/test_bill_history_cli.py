"""One bill's story without SQL (finding 4): `connector bills show`, `bills list`, `audit export` and
`replay --file`, through the command, on PostgreSQL after a real cycle against the sandbox."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select, update

from connector.cli import cli
from connector.domain.states import BatchState, BillState
from connector.services.context import Services
from connector.store.models import Batch, Bill, BillTransition
from sandbox.xero import XeroSandbox
from tests.conftest import pg_url_for
from tests.support.pipeline import onboard, run_cycle
from tests.support.services import services_for_sandbox
from tests.support.sftp_fixtures import BundledSftp


@pytest.fixture
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=42, tenants=1, bills=60) as running:
        yield running


@dataclass
class Cycle:
    services: Services
    tenant_id: str
    env: dict[str, str]

    def run(self, *args: str) -> Result:
        return CliRunner().invoke(cli, list(args), env=self.env)

    def bills(self, state: BillState) -> list[Bill]:
        with self.services.ledger.transaction() as session:
            return list(session.scalars(select(Bill).where(Bill.state == state).order_by(Bill.id)))


@pytest.fixture
def cycle(sandbox: XeroSandbox, pg_schema: str, tmp_path: Path, bundled_sftp: BundledSftp) -> Iterator[Cycle]:
    services = services_for_sandbox(sandbox, tmp_path, "postgresql", schema=pg_schema)
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    run_cycle(services, tenant_id)
    env = {"CONNECTOR_DATABASE_URL": pg_url_for(pg_schema),
           "CONNECTOR_FERNET_KEYS": ",".join(k.reveal() for k in services.settings.fernet_keys),
           "CONNECTOR_STAGING_DIR": str(tmp_path / "staging"), "CONNECTOR_BROKER_DIR": str(tmp_path / "broker")}
    yield Cycle(services, tenant_id, env)
    services.close()


def test_bills_show_tells_a_delivered_bills_story_with_its_file_and_attempts(cycle: Cycle) -> None:
    bill = cycle.bills(BillState.DELIVERED)[0]
    result = cycle.run("bills", "show", bill.invoice_id)
    assert result.exit_code == 0, result.output
    assert f"bill {bill.invoice_id}" in result.output
    assert "DELIVERED since" in result.output
    assert "DISCOVERED → READY  by connector" in result.output
    with cycle.services.ledger.transaction() as session:
        name = session.get_one(Batch, bill.batch_id).name
    assert f"file: {name} DELIVERED" in result.output
    assert "attempt 1:" in result.output
    [view] = json.loads(cycle.run("bills", "show", bill.invoice_id, "--json").stdout)
    assert view["state"] == "DELIVERED"
    assert [t["to_state"] for t in view["transitions"]][-2:] == ["BATCHED", "DELIVERED"]
    assert all(t["actor"] for t in view["transitions"])
    assert view["file"]["name"] == name
    assert view["file"]["attempts"][-1]["outcome"]


def test_bills_show_finds_a_held_bill_by_its_number_and_says_why(cycle: Cycle) -> None:
    held = next(b for b in cycle.bills(BillState.HELD) if b.invoice_number)
    result = cycle.run("bills", "show", str(held.invoice_number), "--json")
    assert result.exit_code == 0, result.output
    views = json.loads(result.stdout)
    view = next(v for v in views if v["invoice_id"] == held.invoice_id)
    assert view["state"] == "HELD"
    assert view["reasons"]
    assert view["file"] is None


def test_an_unknown_bill_is_refused_by_name(cycle: Cycle) -> None:
    result = cycle.run("bills", "show", "no-such-bill")
    assert result.exit_code == 2
    assert "no bill with Xero InvoiceID or number 'no-such-bill'" in result.stderr


def test_bills_list_filters_by_state_and_reason(cycle: Cycle) -> None:
    held = cycle.bills(BillState.HELD)
    result = cycle.run("bills", "list", "--state", "HELD", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert {r["invoice_id"] for r in rows} == {b.invoice_id for b in held}
    code = held[0].reasons[0]["code"]
    by_reason = json.loads(cycle.run("bills", "list", "--reason", code, "--json").stdout)
    assert by_reason
    assert all(code in r["reason_codes"] for r in by_reason)
    assert cycle.run("bills", "list", "--state", "NOPE").exit_code == 2


def test_the_audit_exports_as_csv_and_json_lines_from_a_time_on(cycle: Cycle) -> None:
    with cycle.services.ledger.transaction() as session:
        written = len(list(session.scalars(select(BillTransition.id))))
    as_csv = cycle.run("audit", "export", "--format", "csv")
    assert as_csv.exit_code == 0, as_csv.output
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert len(rows) == written
    assert {"at", "invoice_id", "from_state", "to_state", "reason", "actor", "file_name"} <= set(rows[0])
    lines = cycle.run("audit", "export", "--format", "jsonl", "--since", "1d").stdout.splitlines()
    assert len(lines) == written
    assert json.loads(lines[-1])["to_state"]
    assert cycle.run("audit", "export", "--since", "2999-01-01").stdout.splitlines() == [as_csv.stdout.splitlines()[0]]
    refused = cycle.run("audit", "export", "--since", "last tuesday")
    assert refused.exit_code == 2


def test_a_failed_files_status_hint_names_a_command_that_replays_it(cycle: Cycle) -> None:
    bill = cycle.bills(BillState.DELIVERED)[0]
    with cycle.services.ledger.transaction() as session:
        batch = session.get_one(Batch, bill.batch_id)
        name = batch.name
        session.execute(update(Batch).where(Batch.id == batch.id)
                        .values(state=BatchState.FAILED, last_error="authentication failed", delivered_at=None))
        session.execute(update(Bill).where(Bill.batch_id == batch.id).values(state=BillState.FAILED))
    status = cycle.run("status")
    hint = next(line for line in status.output.splitlines() if f"file {name} FAILED" in line)
    assert f"`connector replay --file {name}`" in hint
    replayed = cycle.run("replay", "--file", name, "--json")
    assert replayed.exit_code == 0, replayed.output
    assert json.loads(replayed.stdout)["state"] == "DELIVERED"
    assert cycle.run("replay", "--file", "no-such-file.csv").exit_code == 2
    assert cycle.run("replay").exit_code == 2


# --- Finding 5: status that scales and warns -------------------------------------------------------------

def test_status_summarises_held_bills_by_class_and_names_what_to_add_to_the_map(cycle: Cycle) -> None:
    held = cycle.bills(BillState.HELD)
    with cycle.services.ledger.transaction() as session:
        for bill in held[:3]:
            session.execute(update(Bill).where(Bill.id == bill.id).values(reasons=[
                {"code": "unmapped_gl", "line": 1, "account": "999"},
                {"code": "unmapped_gl", "line": 2, "account": "999"},
                {"code": "unmapped_dimension", "line": 1, "category": "Region", "option": "Mars"}]))
    result = cycle.run("status")
    assert result.exit_code == 0, result.output
    assert f"UNMAPPED account 999 ({cycle.tenant_id}): 3 bills; add it to the GL map" in result.output
    assert f"UNMAPPED tracking Region / Mars ({cycle.tenant_id}): 3 bills" in result.output
    assert f"HELD {cycle.tenant_id} unmapped_gl: 3 bills" in result.output
    for bill in held:
        assert bill.invoice_id not in result.output  # counted, not listed: `bills list` lists them
    report = json.loads(cycle.run("status", "--json").stdout)
    assert {"tenant_id": cycle.tenant_id, "account": "999", "bills": 3, "profile": None,
            "masked": False} in report["unmapped_accounts"]
    assert sum(row["bills"] for row in report["held_by_class"] if row["class"] == "unmapped_gl") == 3


def test_status_shows_a_waiting_files_last_error_and_next_attempt(cycle: Cycle) -> None:
    bill = cycle.bills(BillState.DELIVERED)[0]
    with cycle.services.ledger.transaction() as session:
        batch = session.get_one(Batch, bill.batch_id)
        name = batch.name
        session.execute(update(Batch).where(Batch.id == batch.id).values(
            state=BatchState.STAGED, attempts=4, last_error="connection refused by 10.0.0.7:22",
            next_attempt_at=batch.created_at.replace(year=2099), lease_until=None))
    line = next(x for x in cycle.run("status").output.splitlines() if x.startswith(f"WAITING {name}"))
    assert "4 attempts" in line
    assert "next attempt 2099-" in line
    assert "last error: connection refused by 10.0.0.7:22" in line


def test_status_says_what_changed_in_a_bill_after_delivery(cycle: Cycle) -> None:
    bill = cycle.bills(BillState.DELIVERED)[0]
    assert bill.mapping is not None
    with cycle.services.ledger.transaction() as session:
        session.execute(update(Bill).where(Bill.id == bill.id).values(
            state=BillState.CHANGED_AFTER_DELIVERY,
            payload={**bill.payload, "Status": "VOIDED", "Total": str(int(float(bill.mapping["total"])) + 10)}))
    line = next(x for x in cycle.run("status").output.splitlines() if x.startswith(f"CHANGED {bill.invoice_id}"))
    assert "voided" in line
    assert f"total {bill.mapping['total']} → " in line
    assert f"connector replay --invoice {bill.invoice_id} --resend" in line
