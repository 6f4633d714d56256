"""Mapping against the sandbox's answer key, and the operator's side: importing a mapping set and
releasing a hold through the `connector` command."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from connector.cli import cli
from connector.config.loader import MappingSetData
from connector.domain.states import BillState
from connector.services import map as mapping
from connector.services.context import Services
from connector.services.mappings import import_mapping_set
from connector.services.messages import MapInvoice
from connector.services.sweep import sweep
from connector.store.models import Bill, BillTransition
from sandbox.demo import demo_mapping_set
from sandbox.xero import XeroSandbox
from tests.support.pipeline import onboard, run_cycle
from tests.support.services import point_command_at
from tests.support.sftp_fixtures import BundledSftp

ALL_STATUSES = ["DRAFT", "SUBMITTED", "AUTHORISED", "PAID", "VOIDED", "DELETED"]


@pytest.fixture
def sandbox() -> Iterator[XeroSandbox]:
    # 100 bills of seed 42 hold every case the tests ask for (81 with one PO, 1 with several, 18 with none,
    # held ones among them) at a third of the 300's time
    with XeroSandbox(seed=42, tenants=1, bills=100) as running:
        yield running


def bills(services: Services) -> dict[str, Bill]:
    with services.ledger.transaction() as session:
        return {b.invoice_id: b for b in session.scalars(select(Bill).where(Bill.document_type == "BILL"))}


def test_every_bill_is_matched_to_exactly_the_pos_the_answer_key_names(
    sandbox: XeroSandbox, services: Services, bundled_sftp: BundledSftp,
) -> None:
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    tenant = sandbox.dataset.tenant(tenant_id)
    everything = MappingSetData(settings={"eligible_statuses": ALL_STATUSES}, gl=demo_mapping_set(tenant).gl,
                                tracking=demo_mapping_set(tenant).tracking)
    import_mapping_set(services.ledger, tenant_id, everything, actor="test")
    run_cycle(services, tenant_id)
    key = sandbox.answer_key(tenant_id)
    found = {invoice_id: sorted(bill.mapping["po_numbers"]) for invoice_id, bill in bills(services).items()
             if bill.mapping is not None}
    assert set(found) == set(key), "every ACCPAY bill was mapped"
    exact, multi, none = 0, 0, 0
    for invoice_id, expected in key.items():
        assert found[invoice_id] == sorted(expected), (bills(services)[invoice_id].invoice_number, expected)
        exact += len(expected) == 1
        multi += len(expected) > 1
        none += not expected
    assert exact
    assert multi
    assert none


def remap_stale(services: Services) -> None:
    """What the sweeper does for re-opened bills once they are stale (made stale here at once)."""
    with services.ledger.transaction() as session:
        session.execute(update(Bill).values(state_changed_at=services.clock().replace(year=2000)))
    for message in sweep(services):
        if isinstance(message, MapInvoice):
            mapping.map_invoice(services, message.tenant_id, message.invoice_id, message.version)


def test_importing_a_mapping_set_from_files_re_maps_the_held_bills(
    sandbox: XeroSandbox, services: Services, bundled_sftp: BundledSftp, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    run_cycle(services, tenant_id)
    point_command_at(services, monkeypatch)
    tracking = tmp_path / "tracking.csv"
    header = "xero_category,xero_option,stampli_dimension,stampli_value\n"

    def import_tracking(rows: str) -> str:
        tracking.write_text(header + rows, encoding="utf-8")
        result = CliRunner().invoke(cli, ["mappings", "import", "--tenant", tenant_id, "--tracking", str(tracking)],
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    # Version 2 forgets the Sales department: the bills using it are held once re-mapped.
    assert "mapping set 2 stored" in import_tracking("Region,*,location,*\nDepartment,Operations,department,D-OPS\n")
    remap_stale(services)
    held = [b for b in bills(services).values() if b.state == BillState.HELD
            and "unmapped_dimension" in {r["code"] for r in b.reasons}]
    assert held
    # Version 3 maps every department: those bills come back by themselves.
    assert "mapping set 3 stored" in import_tracking("Region,*,location,*\nDepartment,*,department,*\n")
    remap_stale(services)
    after = bills(services)
    for bill in held:
        now = after[bill.invoice_id]
        assert now.mapping_version == 3
        assert "unmapped_dimension" not in {r["code"] for r in now.reasons}
        if {r["code"] for r in bill.reasons} == {"unmapped_dimension"}:
            assert now.state == BillState.READY


def test_a_person_can_release_a_hold_and_the_audit_says_who_and_why(
    sandbox: XeroSandbox, services: Services, bundled_sftp: BundledSftp, monkeypatch: pytest.MonkeyPatch,
) -> None:
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    run_cycle(services, tenant_id)
    held = next(b for b in bills(services).values() if b.state == BillState.HELD and b.mapping is not None)
    point_command_at(services, monkeypatch)
    refused = CliRunner().invoke(cli, ["holds", "release", "--invoice", held.invoice_id, "--why", " "])
    assert refused.exit_code != 0
    result = CliRunner().invoke(cli, ["holds", "release", "--invoice", held.invoice_id, "--by", "ap.lead",
                                      "--why", "PO confirmed by phone"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    released = bills(services)[held.invoice_id]
    assert released.state == BillState.DELIVERED  # no broker configured: the command sent it on at once
    assert released.mapping["released"] is True  # marked released in the file, not on hold
    assert released.mapping["flagged"] is False
    assert released.mapping["release_note"].startswith("released by ap.lead: PO confirmed by phone (was held: ")
    with services.ledger.transaction() as session:
        last = session.scalars(select(BillTransition).where(BillTransition.invoice_id == held.invoice_id,
                                                            BillTransition.to_state == BillState.READY)
                               .order_by(BillTransition.id.desc())).first()
    assert last is not None
    assert last.actor.startswith("cli:")  # who ran it; the name given with --by is in the reason
    assert "released by ap.lead" in (last.reason or "")
    assert last.to_state == BillState.READY
