"""Finding 8 of the operator's day: a GL and tracking map start from Xero's own lists, and a mapping is
tried before it is stored. `mappings draft --tenant` writes starter CSVs from the tenant's chart of
accounts and tracking options (codes, names, status; the Stampli columns to fill in), which import as
they are filled; `mappings import --dry-run` shows which bills would change state and why, and stores
nothing."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from connector.cli import cli
from connector.config.loader import MappingSetData
from connector.domain.states import BillState
from connector.services.context import Services
from connector.services.mappings import import_mapping_set
from connector.store.models import Bill, BillTransition
from sandbox.demo import demo_mapping_set
from sandbox.xero import XeroSandbox
from tests.support.pipeline import onboard, run_cycle
from tests.support.services import point_command_at
from tests.support.sftp_fixtures import BundledSftp


@pytest.fixture
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=42, tenants=1, bills=40) as running:
        yield running


@pytest.fixture
def connector(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    point_command_at(services, monkeypatch)


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def ledger_state(services: Services) -> tuple[dict[str, str], int]:
    with services.ledger.transaction() as session:
        states = {b.invoice_id: str(b.state) for b in session.scalars(select(Bill))}
        transitions = session.scalar(select(func.count()).select_from(BillTransition)) or 0
    return states, transitions


def test_a_draft_lists_the_chart_of_accounts_and_every_tracking_option_with_the_stampli_columns_to_fill(
    sandbox: XeroSandbox, services: Services, bundled_sftp: BundledSftp, connector: None, tmp_path: Path,
) -> None:
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    import_mapping_set(services.ledger, tenant_id, MappingSetData(), actor="test")  # nothing mapped yet
    run_cycle(services, tenant_id)
    result = run("mappings", "draft", "--tenant", tenant_id, "--out", str(tmp_path / "draft"))
    assert result.exit_code == 0, result.output
    gl = read_csv(tmp_path / "draft" / "gl.csv")
    tenant = sandbox.dataset.tenant(tenant_id)
    assert {row["xero_account_code"] for row in gl} >= set(demo_mapping_set(tenant).gl)
    assert all(row["stampli_gl_code"] == "" for row in gl)
    assert all(row["xero_account_name"] for row in gl)
    assert {row["xero_account_status"] for row in gl} <= {"ACTIVE", "ARCHIVED"}
    tracking = read_csv(tmp_path / "draft" / "tracking.csv")
    assert {(row["xero_category"], row["xero_option"]) for row in tracking} >= {("Department", "Sales"),
                                                                              ("Region", "North")}
    assert all(row["stampli_dimension"] == row["stampli_value"] == "" for row in tracking)
    assert "gl.csv" in result.output
    assert "tracking.csv" in result.output

    # Filled in for two accounts and one category, the draft imports as it is: empty rows are not mapped.
    gl[0]["stampli_gl_code"], gl[1]["stampli_gl_code"] = "6000", "6100"
    for row in tracking:
        if row["xero_category"] == "Department":
            row["stampli_dimension"], row["stampli_value"] = "department", row["xero_option"].upper()
    write_csv(tmp_path / "draft" / "gl.csv", gl)
    write_csv(tmp_path / "draft" / "tracking.csv", tracking)
    imported = run("mappings", "import", "--tenant", tenant_id, "--allow-unmatched-dimensions",
                   "--gl", str(tmp_path / "draft" / "gl.csv"), "--tracking", str(tmp_path / "draft" / "tracking.csv"))
    assert imported.exit_code == 0, imported.output
    shown = json.loads(run("mappings", "show", "--tenant", tenant_id).stdout)
    assert shown["gl"] == {gl[0]["xero_account_code"]: "6000", gl[1]["xero_account_code"]: "6100"}
    assert {row["stampli_dimension"] for row in shown["tracking"]} == {"department"}


def test_a_draft_is_refused_before_the_tenant_s_lists_were_read_from_xero(
    sandbox: XeroSandbox, services: Services, bundled_sftp: BundledSftp, connector: None, tmp_path: Path,
) -> None:
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    result = run("mappings", "draft", "--tenant", tenant_id, "--out", str(tmp_path / "draft"))
    assert result.exit_code == 4, result.output
    assert f"connector tenants poll {tenant_id}" in result.stderr
    assert not (tmp_path / "draft").exists()


def test_a_draft_never_overwrites_a_file(
    sandbox: XeroSandbox, services: Services, bundled_sftp: BundledSftp, connector: None, tmp_path: Path,
) -> None:
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    run_cycle(services, tenant_id)
    (tmp_path / "gl.csv").write_text("mine\n")
    result = run("mappings", "draft", "--tenant", tenant_id, "--out", str(tmp_path))
    assert result.exit_code == 2, result.output
    assert (tmp_path / "gl.csv").read_text() == "mine\n"


def test_a_dry_run_shows_which_bills_would_change_state_and_why_and_stores_nothing(
    sandbox: XeroSandbox, services: Services, bundled_sftp: BundledSftp, connector: None, tmp_path: Path,
) -> None:
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    mapped = demo_mapping_set(sandbox.dataset.tenant(tenant_id))
    forgetful = [row for row in mapped.tracking if not (row["xero_category"] == "Department"
                                                        and row["xero_option"] == "Sales")]
    import_mapping_set(services.ledger, tenant_id, MappingSetData(settings=mapped.settings, gl=mapped.gl,
                                                                  tracking=forgetful), actor="test")
    run_cycle(services, tenant_id)
    before = ledger_state(services)
    held_for_sales = [i for i, state in before[0].items() if state == BillState.HELD]
    assert held_for_sales
    tracking = tmp_path / "tracking.csv"
    write_csv(tracking, mapped.tracking)
    result = run("mappings", "import", "--tenant", tenant_id, "--tracking", str(tracking), "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["stored"] is False
    changes = {c["invoice_id"]: c for c in report["bills"]}
    ready = [c for c in changes.values() if (c["from"], c["to"]) == ("HELD", "READY")]
    assert ready, report
    # (a credit note waiting for a bill delivered since would go READY too: bills only here)
    bills_only = [c for c in ready if not c["invoice_number"].startswith("CN-")]
    assert bills_only
    assert all(any("Department" in why for why in c["was"]) for c in bills_only)
    assert ledger_state(services) == before  # no state, no audit row
    assert json.loads(run("mappings", "show", "--tenant", tenant_id).stdout)["version"] == 2
    people = run("mappings", "import", "--tenant", tenant_id, "--tracking", str(tracking), "--dry-run")
    assert people.exit_code == 0, people.output
    assert "nothing stored" in people.output
    assert "HELD -> READY" in people.output
