"""Reconciliation against the sandbox: edits the deltas did not see, and bills the ledger never got."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from sqlalchemy import delete, select, update

from connector.cli import cli
from connector.domain.states import BillState
from connector.services.context import Services
from connector.services.reconcile import reconcile
from connector.store.models import Bill, BillTransition
from sandbox.xero import XeroSandbox
from tests.support.pipeline import onboard, run_cycle
from tests.support.sftp_fixtures import BundledSftp


@pytest.fixture
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=42, tenants=1, bills=120) as running:
        yield running


def test_reconcile_marks_changes_the_deltas_missed_and_stores_missing_bills(
    sandbox: XeroSandbox, services: Services, bundled_sftp: BundledSftp, monkeypatch: pytest.MonkeyPatch,
) -> None:
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    run_cycle(services, tenant_id)
    with services.ledger.transaction() as session:
        delivered = list(session.scalars(select(Bill).where(Bill.state == BillState.DELIVERED,
                                                            Bill.document_type == "BILL").order_by(Bill.id)))
        edited, lost = delivered[0], delivered[1]
        # An edit that moved nothing we saw: we think we delivered an older version than Xero's.
        session.execute(update(Bill).where(Bill.id == edited.id).values(mapped_version=edited.version - 1))
        # A bill the ledger never got (e.g. an edit that did not move UpdatedDateUTC before our first read).
        session.execute(delete(BillTransition).where(BillTransition.invoice_id == lost.invoice_id))
        session.execute(delete(Bill).where(Bill.id == lost.id))
    calls_before = sandbox.stats()["calls"]
    found: list[object] = []
    report = reconcile(services, tenant_id, emit=found.append)
    assert report.delivered_checked == len(delivered) - 1
    assert [line.split()[0] for line in report.changed_after_delivery] == [edited.invoice_id]
    assert lost.invoice_id in report.missing_from_ledger
    assert len(found) == 1  # the lost bill, to be mapped again; nothing else re-opened
    assert report.calls == -(-(len(delivered) - 1) // 50) + 1
    assert sandbox.stats()["calls"] - calls_before == report.calls
    with services.ledger.transaction() as session:
        assert session.scalars(select(Bill.state).where(Bill.invoice_id == edited.invoice_id)).one() \
            == BillState.CHANGED_AFTER_DELIVERY
        assert session.scalars(select(Bill.state).where(Bill.invoice_id == lost.invoice_id)).one() \
            == BillState.DISCOVERED
    monkeypatch.setenv("CONNECTOR_DATABASE_URL", services.settings.database_url)
    monkeypatch.setenv("CONNECTOR_FERNET_KEYS", services.settings.fernet_keys[0].reveal())
    for name, url in sandbox.urls.items():
        if name in ("token", "api"):
            monkeypatch.setenv(f"CONNECTOR_XERO_{name.upper()}_URL", url)
    result = CliRunner().invoke(cli, ["reconcile", "--tenant", tenant_id], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "0 changed after delivery; 0 eligible bills the ledger lacked" in result.output
