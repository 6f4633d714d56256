"""Every command that changes tenants takes the same selection (`--tenant ID` repeatable, `--all-tenants`,
`--grant N`), resolved by one helper: each tenant checked once, an unknown tenant or grant refusing the
whole command (exit 2) before anything changes. Against the real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from connector.domain.states import BillState
from connector.store.models import Bill, SftpTargetRow, Tenant
from tests.support.operator import TENANT_ID, Operator, many_tenants

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


def unverified_target(operator: Operator, *selection: str) -> list[str]:
    """`sftp add` of a target nobody answers for (port 1), stored anyway with --unverified."""
    return ["sftp", "add", "--host", "127.0.0.1", "--port", "1", "--user", "stampli", "--import-dir", "/import",
            "--host-key", HOST_KEY, "--password-stdin", "--unverified", *selection]


def targets_of(operator: Operator) -> dict[str, int | None]:
    with operator.ledger.transaction() as session:
        return dict(session.execute(select(Tenant.id, Tenant.sftp_target_id)).tuples().all())


def stored_targets(operator: Operator) -> int:
    with operator.ledger.transaction() as session:
        return len(session.scalars(select(SftpTargetRow.id)).all())


@pytest.mark.parametrize("command", [
    ["tenants", "set", "--interval", "600"],
    ["tenants", "poll"],
    ["mappings", "import", "--gl", "{gl}"],
    ["reconcile"],
    ["holds", "release", "--reason", "unknown_po", "--why", "confirmed"],
    ["holds", "release", "--invoice", "INV-1", "--why", "confirmed"],
    ["sftp", "add", "--host", "127.0.0.1", "--port", "1", "--user", "u", "--import-dir", "/i", "--host-key", HOST_KEY,
     "--password-stdin", "--unverified"],
    ["masterdata", "set", "--on", "vendors"],
    ["masterdata", "resend", "--kind", "vendors"],
], ids=lambda command: " ".join(command[:2]))
@pytest.mark.parametrize("unknown", [["--tenant", "no-such-tenant"], ["--grant", "999"]], ids=["tenant", "grant"])
def test_every_changing_command_refuses_an_unknown_tenant_or_grant_and_changes_nothing(
    operator: Operator, tmp_path: Path, command: list[str], unknown: list[str],
) -> None:
    gl = tmp_path / "gl.csv"
    gl.write_text("xero_account_code,stampli_gl_code\n400,GL-400\n")
    args = [str(gl) if part == "{gl}" else part for part in command]
    result = operator.run(*args, "--tenant", TENANT_ID, *unknown, stdin="secret\n")
    assert result.exit_code == 2, result.output
    assert ("no such tenant: no-such-tenant" if unknown[0] == "--tenant" else "no such grant: 999") in result.stderr
    assert "Traceback" not in result.output
    assert stored_targets(operator) == 0
    shown = operator.run("mappings", "show", "--tenant", TENANT_ID)
    assert '"version": 0' in shown.output


def test_sftp_add_and_set_point_every_tenant_selected_at_the_target(operator: Operator) -> None:
    first, second, third = many_tenants(operator, 3)
    added = operator.run(*unverified_target(operator, "--grant", str(operator.grant_id)), stdin="secret\n")
    assert added.exit_code == 0, added.output
    assert "stored UNVERIFIED" in added.stderr
    assert set(targets_of(operator).values()) == {1}
    second_target = operator.run(*unverified_target(operator, "--tenant", first), stdin="secret\n")
    assert second_target.exit_code == 0, second_target.output
    assert targets_of(operator)[first] == 2
    assert operator.run("sftp", "set", "2", "--tenant", second, "--tenant", third).exit_code == 0
    assert targets_of(operator) == {TENANT_ID: 1, first: 2, second: 2, third: 2}
    everyone = operator.run("sftp", "set", "1", "--all-tenants")
    assert everyone.exit_code == 0, everyone.output
    assert "4 tenants deliver here" in everyone.output
    assert set(targets_of(operator).values()) == {1}


def test_reconcile_skips_a_paused_tenant_it_reached_by_selection_but_refuses_one_named(operator: Operator) -> None:
    assert operator.run("tenants", "set", "--all-tenants", "--status", "PAUSED").exit_code == 0
    skipped = operator.run("reconcile", "--all-tenants", "--json")
    assert skipped.exit_code == 0, skipped.output
    assert skipped.stdout.strip() == "[]"  # the skip is said on standard error, the JSON stays whole
    assert f"tenant {TENANT_ID}: PAUSED, not reconciled" in skipped.stderr
    refused = operator.run("reconcile", "--tenant", TENANT_ID)
    assert refused.exit_code == 4, refused.output
    assert "PAUSED" in refused.stderr


def held_bill(session: object, tenant_id: str, invoice_id: str, *codes: str) -> Bill:
    bill = Bill(tenant_id=tenant_id, invoice_id=invoice_id, invoice_number=invoice_id, xero_status="AUTHORISED",
                version=1, state=BillState.HELD, reasons=[{"code": code} for code in codes],
                mapping={"invoice_id": invoice_id, "total": "10.00"}, payload={})
    session.add(bill)  # type: ignore[attr-defined]
    return bill


def states(operator: Operator) -> dict[tuple[str, str], str]:
    with operator.ledger.transaction() as session:
        return {(b.tenant_id, b.invoice_id): b.state for b in session.scalars(select(Bill))}


def test_holds_are_released_by_reason_across_the_tenants_selected(operator: Operator, redis_url: str) -> None:
    first, second, other = many_tenants(operator, 3)
    with operator.ledger.transaction() as session:
        held_bill(session, first, "A", "unknown_po")
        held_bill(session, second, "B", "unknown_po")
        held_bill(session, second, "C", "unknown_po", "vendor_unknown")  # held for more than the PO: kept
        held_bill(session, other, "D", "unknown_po")  # not selected: kept
    operator.env["CONNECTOR_BROKER_URL"] = redis_url  # the work goes to the (absent) workers, bills stay READY
    result = operator.run("holds", "release", "--reason", "unknown_po", "--why", "POs confirmed by phone",
                          "--tenant", first, "--tenant", second, "--tenant", first)
    assert result.exit_code == 0, result.output
    assert "2 bills released in 2 tenants" in result.output
    after = states(operator)
    assert after[(first, "A")] == BillState.READY
    assert after[(second, "B")] == BillState.READY
    assert after[(second, "C")] == BillState.HELD
    assert after[(other, "D")] == BillState.HELD


def test_an_invoice_in_several_tenants_is_released_in_the_one_selected(operator: Operator, redis_url: str) -> None:
    operator.env["CONNECTOR_BROKER_URL"] = redis_url
    first, second = many_tenants(operator, 2)
    with operator.ledger.transaction() as session:
        held_bill(session, first, "SAME", "unknown_po")
        held_bill(session, second, "SAME", "unknown_po")
    ambiguous = operator.run("holds", "release", "--invoice", "SAME", "--why", "checked")
    assert ambiguous.exit_code == 4
    assert "name the tenant" in ambiguous.stderr
    both = operator.run("holds", "release", "--invoice", "SAME", "--why", "checked", "--all-tenants")
    assert both.exit_code == 4  # still two: nothing released
    assert set(states(operator).values()) == {BillState.HELD}
    one = operator.run("holds", "release", "--invoice", "SAME", "--why", "checked", "--tenant", second)
    assert one.exit_code == 0, one.output
    assert states(operator)[(first, "SAME")] == BillState.HELD
    assert states(operator)[(second, "SAME")] == BillState.READY
