"""One full cycle through the services (no Celery) against the Xero sandbox and the bundled SFTP server,
on SQLite and PostgreSQL: the fast proof that the stages fit together."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connector.domain.states import BillState
from connector.reporting import summarise
from connector.services.context import Services
from connector.services.messages import AssembleBatch, MapInvoice
from sandbox.xero import XeroSandbox
from tests.support.pipeline import invoice_ids_in_files, onboard, run_cycle
from tests.support.sftp_fixtures import BundledSftp


@pytest.fixture(scope="module")
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=11, tenants=1, bills=40) as running:
        yield running


@pytest.fixture
def services(services_on_both_databases: Services) -> Services:
    return services_on_both_databases


def test_a_cycle_delivers_every_ready_bill_once_and_explains_the_rest(
    services: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    tenant_id = onboard(services, sandbox, bundled_sftp.target(), cap=15)
    run_cycle(services, tenant_id)
    summary = summarise(services.ledger)
    assert summary.settled
    tenant = sandbox.dataset.tenant(tenant_id)
    supplier_credits = [n for n in tenant.credit_notes if n.type == "ACCPAYCREDIT"]
    assert summary.bills_seen == len(tenant.bills)
    assert summary.credit_notes == len(supplier_credits) > 0
    delivered = summary.by_state[BillState.DELIVERED]
    assert delivered > 0
    folder = bundled_sftp.server.local_path(bundled_sftp.import_dir)
    in_files = invoice_ids_in_files(folder)
    assert len(in_files) == len(set(in_files)) == delivered
    assert all(reasons for _, _, reasons in summary.held + summary.excluded)

    # Credit notes waiting for a bill the first cycle delivered followed it in that cycle (its delivery
    # re-opened them): the next cycle maps at most those still waiting; the one after finds nothing to do.
    waited = {i for i, _, reasons in summary.held if any("Stampli does not have yet" in r for r in reasons)}
    second = run_cycle(services, tenant_id)
    assert {m.invoice_id for m in second if isinstance(m, MapInvoice)} <= waited
    assert [m for m in run_cycle(services, tenant_id) if not isinstance(m, AssembleBatch)] == []
    after = summarise(services.ledger)
    assert after.files[:len(summary.files)] == summary.files
    in_files = invoice_ids_in_files(folder)
    assert len(in_files) == len(set(in_files)) == after.by_state[BillState.DELIVERED]
