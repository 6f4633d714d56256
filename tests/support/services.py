"""Building real Services over a real database for integration tests."""

from __future__ import annotations

import atexit
import re
import shutil
import sqlite3
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from connector.crypto import Vault
from connector.services.context import Services, build_services
from connector.settings import load_settings, xero_url_environment
from connector.store.db import Ledger
from tests.conftest import PG_ADMIN_URL

# --- a migrated ledger per test, the migrations run once per session ------------------------------------
# Running every migration for each test's fresh ledger cost a few tenths of a second per test (more on a
# busy machine), hundreds of times a suite. The migrations run once, into a template; each fresh ledger
# starts as a copy of it: the very same tables, indexes and revision, and `build_services` still runs the
# migrations on start (finding the head, as a worker finds a migrated database). The migrations themselves
# are proven on empty databases by the tests that call `Ledger.connect` or `migrate` directly.


@cache
def _template_folder() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="connector-ledger-template-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


@cache
def _sqlite_template() -> Path:
    """A SQLite file migrated to the head, checkpointed (no WAL left beside it)."""
    path = _template_folder() / "ledger.db"
    Ledger.connect(f"sqlite:///{path}").dispose()
    return path


def _copy_sqlite_template(database: Path) -> None:
    database.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(_sqlite_template()) as source, sqlite3.connect(database) as copy:
        source.backup(copy)
    source.close()
    copy.close()


@cache
def _postgres_template() -> tuple[str, str] | None:
    """(schema name, its DDL and rows as one script) of a schema migrated to the head; None without pg_dump
    (each schema is then migrated as before)."""
    schema = f"connector_t_template_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    atexit.register(_drop_schema, schema)
    Ledger.connect(PG_ADMIN_URL, schema=schema).dispose()
    try:
        dump = subprocess.run(["pg_dump", "--no-owner", "--no-privileges", "--inserts", "--schema", schema,
                               PG_ADMIN_URL], capture_output=True, text=True, check=True, timeout=120).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    # psql meta-commands and the schema's own CREATE are not SQL for a plain connection
    script = "\n".join(line for line in dump.splitlines()
                        if not line.startswith("\\") and not re.match(r"CREATE SCHEMA ", line))
    return schema, script


def _drop_schema(schema: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _copy_postgres_template(schema: str) -> None:
    """Fill an empty `schema` with the template's tables in one transaction; a schema that already has
    tables (a second process's view of the same ledger) is left as it is."""
    template = _postgres_template()
    if template is None:
        return
    name, script = template
    with psycopg.connect(PG_ADMIN_URL) as conn:
        if conn.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = %s",
                        (schema,)).fetchone() != (0,):
            return
        conn.execute(script.replace(name, schema).encode())


def from_template(database_url: str, schema: str | None = None) -> None:
    """Make the ledger at `database_url` (a PostgreSQL `schema`, or the one its URL's search_path names)
    the migrated template's copy, if it is new: a SQLite file not there yet, an empty schema."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:" and not Path(url.database).exists():
            _copy_sqlite_template(Path(url.database))
        return
    options = url.query.get("options", "")
    named = re.search(r"search_path=([\w]+)", options if isinstance(options, str) else " ".join(options))
    schema = schema or (named[1] if named else None)
    if schema is not None:
        _copy_postgres_template(schema)


def make_services(database_url: str, tmp_path: Path, *, schema: str | None = None,
                  extra_env: dict[str, str] | None = None) -> Services:
    env = {
        "CONNECTOR_DATABASE_URL": database_url,
        "CONNECTOR_FERNET_KEYS": Vault.new_key(),
        "CONNECTOR_STAGING_DIR": str(tmp_path / "staging"),
        "CONNECTOR_BROKER_DIR": str(tmp_path / "broker"),
        **(extra_env or {}),
    }
    from_template(database_url, schema)
    return build_services(load_settings(env), schema=schema)


def services_for_sandbox(sandbox: Any, tmp_path: Path, database: str, *, schema: str | None = None,
                         extra_env: dict[str, str] | None = None) -> Services:
    """Services pointed at a running sandbox, on "sqlite" (a file in tmp_path) or "postgresql" (`schema`)."""
    env = {**xero_url_environment(sandbox.urls), **(extra_env or {})}
    if database == "sqlite":
        return make_services(f"sqlite:///{tmp_path / 'ledger.db'}", tmp_path, extra_env=env)
    return make_services(PG_ADMIN_URL, tmp_path, schema=schema, extra_env=env)


@pytest.fixture(name="services")
def services_on_postgres(pg_schema: str, tmp_path: Path) -> Iterator[Services]:
    """The services on a fresh PostgreSQL schema, as real worker processes share them (end-to-end, chaos)."""
    built = make_services(PG_ADMIN_URL, tmp_path, schema=pg_schema)
    yield built
    built.close()


def point_command_at(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the `connector` command (run in-process) use these services' ledger, keys and folders: without
    the folders it would stage files and queue messages under the working directory's `var/`, which every
    test (and every parallel test runner) would share."""
    monkeypatch.setenv("CONNECTOR_DATABASE_URL", services.settings.database_url)
    monkeypatch.setenv("CONNECTOR_FERNET_KEYS", services.settings.fernet_keys[0].reveal())
    monkeypatch.setenv("CONNECTOR_STAGING_DIR", str(services.settings.staging_dir))
    monkeypatch.setenv("CONNECTOR_BROKER_DIR", str(services.settings.broker_dir))
