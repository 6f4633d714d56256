"""An operator at the `connector` command: a ledger on the real PostgreSQL with one onboarded tenant, the
environment the command reads, and tenants added in bulk. The integration conftest exposes the fixture."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from connector.cli import cli
from connector.crypto import Vault
from connector.onboarding import add_grant, add_tenant
from connector.secret import Secret
from connector.store.db import Ledger
from tests.conftest import pg_url_for
from tests.support.services import from_template

TENANT_ID = "11111111-2222-3333-4444-555555555555"
CLIENT_SECRET = "planted-client-secret-0451"
REFRESH_TOKEN = "planted-refresh-token-0452"


@dataclass
class Operator:
    """A ledger with one onboarded tenant, and the environment the command reads."""

    ledger: Ledger
    env: dict[str, str]
    grant_id: int

    def run(self, *args: str, stdin: str | None = None) -> Result:
        return CliRunner().invoke(cli, list(args), env=self.env, input=stdin)


@pytest.fixture
def operator(pg_schema: str, tmp_path: Path) -> Iterator[Operator]:
    yield from operator_on(pg_url_for(pg_schema), tmp_path)


def operator_on(url: str, tmp_path: Path) -> Iterator[Operator]:
    """An operator on the ledger at `url` (PostgreSQL or SQLite)."""
    env = {"CONNECTOR_DATABASE_URL": url, "CONNECTOR_FERNET_KEYS": Vault.new_key(),
           "CONNECTOR_STAGING_DIR": str(tmp_path / "staging"), "CONNECTOR_BROKER_DIR": str(tmp_path / "broker")}
    from_template(url)
    ledger = Ledger.connect(url)
    vault = Vault([Secret(env["CONNECTOR_FERNET_KEYS"])])
    grant_id = add_grant(ledger, vault, client_id="client-1", client_secret=Secret(CLIENT_SECRET),
                         refresh_token=Secret(REFRESH_TOKEN))
    add_tenant(ledger, tenant_id=TENANT_ID, name="Acme Ltd", short_name="acme", grant_id=grant_id,
               sftp_target_id=None)
    yield Operator(ledger, env, grant_id)
    ledger.dispose()


def many_tenants(operator: Operator, count: int) -> list[str]:
    from connector.store.tenants import add_tenant as store_tenant

    ids = [f"00000000-0000-0000-0000-{n:012d}" for n in range(count)]
    with operator.ledger.transaction() as session:
        for tenant_id in ids:
            store_tenant(session, tenant_id=tenant_id, name=f"Org {tenant_id[-4:]}", short_name="org",
                         grant_id=operator.grant_id, sftp_target_id=None, poll_interval_seconds=1800,
                         max_bills_per_file=1000)
    return ids
