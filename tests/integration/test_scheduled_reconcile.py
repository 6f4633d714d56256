"""Finding 12 of the operator's day: reconcile (the only thing that finds a change Xero does not announce)
runs from beat without anyone remembering, and what it found is in `connector status`."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from sqlalchemy import update

from connector.cli import cli
from connector.domain.states import BillState
from connector.errors import XeroUnavailable
from connector.services.context import Services
from connector.services.reconcile import reconcile_and_record, tenants_to_reconcile
from connector.services.status_report import status_report
from connector.store.models import Bill
from sandbox.xero import XeroSandbox
from tests.support.pipeline import onboard, run_cycle
from tests.support.services import point_command_at
from tests.support.sftp_fixtures import BundledSftp


@pytest.fixture
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=42, tenants=1, bills=40) as running:
        yield running


def test_a_scheduled_reconcile_covers_every_active_tenant_and_status_shows_what_it_found(
    sandbox: XeroSandbox, services: Services, bundled_sftp: BundledSftp, monkeypatch: pytest.MonkeyPatch,
) -> None:
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    run_cycle(services, tenant_id)
    assert tenants_to_reconcile(services) == [tenant_id]
    assert status_report(services.ledger).reconciliations == []  # never reconciled: nothing to show
    with services.ledger.transaction() as session:
        edited = session.scalars(update(Bill).where(Bill.state == BillState.DELIVERED)
                                 .values(mapped_version=Bill.version - 1).returning(Bill.invoice_id)).first()
    found = reconcile_and_record(services, tenant_id, emit=lambda _: None)
    assert found.changed_after_delivery
    [last] = status_report(services.ledger).reconciliations
    assert last["tenant_id"] == tenant_id
    assert last["ok"] is True
    assert last["changed_after_delivery"] == len(found.changed_after_delivery)
    assert last["delivered_checked"] == found.delivered_checked
    assert last["calls"] == found.calls
    point_command_at(services, monkeypatch)
    shown = CliRunner().invoke(cli, ["status"], catch_exceptions=False)
    assert f"RECONCILED {tenant_id}" in shown.output
    assert "changed after delivery" in shown.output
    assert edited is not None
    assert json.loads(CliRunner().invoke(cli, ["status", "--json"]).stdout)["reconciliations"][0]["ok"] is True


def test_a_reconcile_that_fails_is_recorded_and_shown_as_needing_attention(
    sandbox: XeroSandbox, services: Services, bundled_sftp: BundledSftp, monkeypatch: pytest.MonkeyPatch,
) -> None:
    tenant_id = onboard(services, sandbox, bundled_sftp.target())

    def unreachable(*_: object, **__: object) -> None:
        raise XeroUnavailable("Xero answered 503")

    monkeypatch.setattr("connector.services.reconcile.reconcile", unreachable)
    with pytest.raises(XeroUnavailable):
        reconcile_and_record(services, tenant_id, emit=lambda _: None)
    [last] = status_report(services.ledger).reconciliations
    assert last["ok"] is False
    assert "503" in last["error"]
    assert any(f"tenant {tenant_id}: the last reconcile failed" in line
               for line in status_report(services.ledger).attention)


def test_a_paused_tenant_is_not_reconciled_on_schedule(
    sandbox: XeroSandbox, services: Services, bundled_sftp: BundledSftp,
) -> None:
    from connector.store.models import Tenant

    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    with services.ledger.transaction() as session:
        session.execute(update(Tenant).where(Tenant.id == tenant_id).values(status="PAUSED"))
    assert tenants_to_reconcile(services) == []
