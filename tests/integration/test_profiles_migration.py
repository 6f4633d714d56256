"""Migration 0013 (mapping profiles) on both databases: a cadence an operator had changed from the
onboarding default stays the tenant's own when it joins a profile; the migration goes down and up again."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import text

from connector.store.db import MIGRATIONS, make_engine
from tests.conftest import pg_url_for


def alembic_to(engine: object, revision: str, *, down: bool = False) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:  # type: ignore[attr-defined]
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_cadence_changed_from_the_default_stays_the_tenant_s_own(
    database: str, request: pytest.FixtureRequest, tmp_path: Path,
) -> None:
    url = pg_url_for(request.getfixturevalue("pg_schema")) if database == "postgresql" \
        else f"sqlite:///{tmp_path / 'ledger.db'}"
    engine = make_engine(url)
    alembic_to(engine, "0012")
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO xero_grants (id, kind, client_id, status, version, created_at) "
                                "VALUES (1, 'authorization_code', 'c', 'ACTIVE', 0, CURRENT_TIMESTAMP)"))
        for tenant_id, interval in (("default", 900), ("chosen", 600)):
            connection.execute(text(
                "INSERT INTO tenants (id, name, short_name, grant_id, status, poll_interval_seconds, "
                "reference_interval_seconds, max_bills_per_file) "
                "VALUES (:id, :id, :id, 1, 'ACTIVE', :interval, 21600, 500)"), {"id": tenant_id, "interval": interval})
    alembic_to(engine, "head")
    with engine.begin() as connection:
        own = dict(connection.execute(text("SELECT id, own_poll_interval FROM tenants")).tuples().all())
    assert {tenant_id: bool(value) for tenant_id, value in own.items()} == {"default": False, "chosen": True}
    alembic_to(engine, "0012", down=True)
    alembic_to(engine, "head")
    engine.dispose()
