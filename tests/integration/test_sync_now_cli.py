"""Operator actions take effect now, not at the next sweep (finding 6): `tenants poll`, a mapping import,
a hold release and an interval change, through the command on PostgreSQL against the sandbox; with a
broker the work goes to the workers' queues at once, with none it runs in the command."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner, Result
from sqlalchemy import func, select, update

from connector.cli import cli
from connector.domain.states import BillState
from connector.services.context import Services
from connector.settings import xero_url_environment
from connector.store.models import Bill, Tenant, utcnow
from sandbox.xero import XeroSandbox
from tests.conftest import pg_url_for
from tests.support.pipeline import onboard, run_cycle
from tests.support.services import services_for_sandbox
from tests.support.sftp_fixtures import BundledSftp


@pytest.fixture
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=42, tenants=1, bills=40) as running:
        yield running


@dataclass
class Desk:
    services: Services
    tenant_id: str
    env: dict[str, str]

    def run(self, *args: str, broker: str | None = None) -> Result:
        env = {**self.env, "CONNECTOR_BROKER_URL": broker} if broker else self.env
        return CliRunner().invoke(cli, list(args), env=env)

    def count(self, state: BillState) -> int:
        with self.services.ledger.transaction() as session:
            return int(session.scalar(select(func.count()).select_from(Bill).where(Bill.state == state)) or 0)


@pytest.fixture
def desk(sandbox: XeroSandbox, pg_schema: str, tmp_path: Path, bundled_sftp: BundledSftp,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[Desk]:
    monkeypatch.delenv("CONNECTOR_BROKER_URL", raising=False)
    services = services_for_sandbox(sandbox, tmp_path, "postgresql", schema=pg_schema)
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    env = {"CONNECTOR_DATABASE_URL": pg_url_for(pg_schema),
           "CONNECTOR_FERNET_KEYS": ",".join(k.reveal() for k in services.settings.fernet_keys),
           "CONNECTOR_STAGING_DIR": str(tmp_path / "staging"), "CONNECTOR_BROKER_DIR": str(tmp_path / "broker"),
           **xero_url_environment(sandbox.urls)}
    yield Desk(services, tenant_id, env)
    services.close()


def queued(redis_url: str, queue: str) -> int:
    client = redis.Redis.from_url(redis_url)
    try:
        return int(client.llen(queue))
    finally:
        client.close()


def test_messages_go_to_this_runs_broker_even_when_an_app_was_made_earlier_in_the_process(
    desk: Desk, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The workers' module makes its app when first imported; a command must not send through that one."""
    for name, value in {**desk.env, "CONNECTOR_BROKER_URL": "filesystem://"}.items():
        monkeypatch.setenv(name, value)
    import workers.app as worker_app

    monkeypatch.setattr(worker_app, "app", worker_app.create_app())  # made earlier, for another broker
    monkeypatch.delenv("CONNECTOR_BROKER_URL")
    assert desk.run("tenants", "poll", desk.tenant_id, broker=redis_url).exit_code == 0
    assert queued(redis_url, "poll") == 1


def test_tenants_poll_with_no_broker_polls_maps_and_delivers_within_seconds(desk: Desk) -> None:
    started = time.monotonic()
    result = desk.run("tenants", "poll", desk.tenant_id)
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started < 30
    assert "polled now; done here" in result.output
    assert desk.count(BillState.DELIVERED) > 0
    assert desk.count(BillState.DISCOVERED) == 0


def test_tenants_poll_with_a_broker_sends_the_poll_to_the_workers_at_once(desk: Desk, redis_url: str) -> None:
    result = desk.run("tenants", "poll", desk.tenant_id, broker=redis_url)
    assert result.exit_code == 0, result.output
    assert "1 message(s) sent to the workers" in result.output
    assert queued(redis_url, "poll") == 1


def test_a_paused_tenant_is_not_polled_on_demand(desk: Desk) -> None:
    assert desk.run("tenants", "set", desk.tenant_id, "--status", "PAUSED").exit_code == 0
    refused = desk.run("tenants", "poll", desk.tenant_id)
    assert refused.exit_code == 4
    assert "PAUSED" in refused.stderr


def import_tracking(desk: Desk, tmp_path: Path, broker: str | None = None) -> Result:
    tracking = tmp_path / "tracking.csv"
    tracking.write_text("xero_category,xero_option,stampli_dimension,stampli_value\n"
                        "Region,*,location,*\nDepartment,*,department,*\n")
    result = desk.run("mappings", "import", "--tenant", desk.tenant_id, "--tracking", str(tracking), broker=broker)
    assert result.exit_code == 0, result.output
    return result


def test_a_mapping_import_sends_the_bills_it_reopens_to_the_workers_at_once(
    desk: Desk, tmp_path: Path, redis_url: str,
) -> None:
    run_cycle(desk.services, desk.tenant_id)
    import_tracking(desk, tmp_path, broker=redis_url)
    reopened = desk.count(BillState.DISCOVERED)
    assert reopened > 0
    assert queued(redis_url, "map") == reopened


def test_a_mapping_import_with_no_broker_maps_the_bills_it_reopens_in_the_command(desk: Desk, tmp_path: Path) -> None:
    run_cycle(desk.services, desk.tenant_id)
    result = import_tracking(desk, tmp_path)
    assert "done here" in result.output
    assert desk.count(BillState.DISCOVERED) == 0  # mapped now, not left for the sweeper


def test_a_released_hold_is_sent_to_batching_at_once(desk: Desk, redis_url: str) -> None:
    run_cycle(desk.services, desk.tenant_id)
    with desk.services.ledger.transaction() as session:
        held = session.scalars(select(Bill).where(Bill.state == BillState.HELD, Bill.mapping.is_not(None))).first()
    assert held is not None
    result = desk.run("holds", "release", "--invoice", held.invoice_id, "--why", "PO confirmed", broker=redis_url)
    assert result.exit_code == 0, result.output
    assert "sent to the workers" in result.output
    assert queued(redis_url, "batch") == 1


def test_a_shorter_interval_moves_the_next_poll(desk: Desk) -> None:
    last = utcnow() - timedelta(seconds=100)
    with desk.services.ledger.transaction() as session:
        session.execute(update(Tenant).where(Tenant.id == desk.tenant_id).values(
            last_polled_at=last, next_poll_at=last + timedelta(seconds=900)))
    assert desk.run("tenants", "set", desk.tenant_id, "--interval", "60").exit_code == 0
    with desk.services.ledger.transaction() as session:
        next_poll = session.scalar(select(Tenant.next_poll_at).where(Tenant.id == desk.tenant_id))
    assert next_poll is not None
    assert abs((next_poll - (last + timedelta(seconds=60))).total_seconds()) < 1
