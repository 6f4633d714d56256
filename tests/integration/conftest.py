"""Fixtures for integration tests. A test module names its own `sandbox` (seed, tenants, bills); these
build the connector's services against it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from connector.services.context import Services
from sandbox.xero import XeroSandbox
from tests.support.operator import operator  # noqa: F401
from tests.support.services import services_for_sandbox
from tests.support.sftp_fixtures import *  # noqa: F403


@pytest.fixture
def services(sandbox: XeroSandbox, tmp_path: Path) -> Iterator[Services]:
    """The services on a SQLite ledger, pointed at the module's sandbox."""
    built = services_for_sandbox(sandbox, tmp_path, "sqlite")
    yield built
    built.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def services_on_both_databases(request: pytest.FixtureRequest, tmp_path: Path,
                               sandbox: XeroSandbox) -> Iterator[Services]:
    """The same services on SQLite and on PostgreSQL (a fresh schema)."""
    schema = request.getfixturevalue("pg_schema") if request.param == "postgresql" else None
    built = services_for_sandbox(sandbox, tmp_path, request.param, schema=schema)
    yield built
    built.close()
