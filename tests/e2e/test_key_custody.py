"""Finding 2 on real parts: a real `celery worker` records the ids of the Fernet keys it holds with its
heartbeat, `connector keys rotate` with a newer key first is refused while that worker runs, naming it,
and goes ahead once the worker has stopped cleanly (its record gone)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import select

from connector.cli import cli
from connector.crypto import Vault, key_id
from connector.onboarding import add_grant
from connector.secret import Secret
from connector.store.db import Ledger
from connector.store.worker_keys import WorkerKeyRow
from tests.conftest import pg_url_for
from tests.support.celery_procs import celery, wait_until


def test_a_running_worker_without_the_new_key_holds_back_the_rotation_until_it_stops(
    pg_schema: str, redis_url: str, tmp_path: Path,
) -> None:
    url = pg_url_for(pg_schema)
    old_key, new_key = Vault.new_key(), Vault.new_key()
    ledger = Ledger.connect(url)
    add_grant(ledger, Vault([Secret(old_key)]), client_id="client-1", client_secret=Secret("s"),
              refresh_token=Secret("r"))
    env = {"CONNECTOR_DATABASE_URL": url, "CONNECTOR_BROKER_URL": redis_url, "CONNECTOR_FERNET_KEYS": old_key,
           "CONNECTOR_BROKER_DIR": str(tmp_path / "broker"), "CONNECTOR_STAGING_DIR": str(tmp_path / "staging"),
           "CONNECTOR_PROBE_DIR": str(tmp_path / "probes")}

    def recorded() -> list[WorkerKeyRow]:
        with ledger.transaction() as session:
            return list(session.scalars(select(WorkerKeyRow)))

    rotate = ["keys", "rotate"]
    both = {**env, "CONNECTOR_FERNET_KEYS": f"{new_key},{old_key}"}
    with celery("worker", env, tmp_path / "logs", queues=("map",)) as worker:
        wait_until(lambda: bool(recorded()), 30, "the worker to record its keys", (worker,))
        [row] = recorded()
        assert row.key_ids == key_id(Secret(old_key))
        assert row.worker.startswith("e2e-map-")
        refused = CliRunner().invoke(cli, rotate, env=both)
        assert refused.exit_code == 4, refused.output
        assert row.worker in refused.stderr
        assert key_id(Secret(new_key)) in refused.stderr
    assert recorded() == []  # a clean stop removes the record
    done = CliRunner().invoke(cli, rotate, env=both)
    assert done.exit_code == 0, done.output
    ledger.dispose()
