"""Shared fixtures: the machine's real PostgreSQL and Redis (own schema / DB number), never stand-ins.

A service that does not answer is a failure, not a skip: `make test` starts them first.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import redis

PG_ADMIN_URL = os.environ.get("CONNECTOR_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _redis_test_url() -> str:
    """CONNECTOR_TEST_REDIS_URL (default DB 11); under parallel runners (`make test` runs pytest-xdist) runner
    N takes DB number + N, as two runs on one Redis DB would flush each other's messages and leases."""
    url = os.environ.get("CONNECTOR_TEST_REDIS_URL", "redis://127.0.0.1:6379/11")
    runner = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not runner.startswith("gw"):
        return url
    parts = urlsplit(url)
    database = int(parts.path.strip("/") or 0) + int(runner[2:])
    if database > 15:
        raise RuntimeError(f"runner {runner} of CONNECTOR_TEST_REDIS_URL={url} would need Redis DB {database}")
    return urlunsplit(parts._replace(path=f"/{database}"))


REDIS_TEST_URL = _redis_test_url()

_FOLDER_MARKS = {"unit", "integration", "e2e", "chaos", "sandbox", "deploy"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by its top-level folder so CI can pick a layer without decorators."""
    for item in items:
        parts = Path(str(item.fspath)).parts
        if "tests" in parts:
            folder = parts[parts.index("tests") + 1]
            if folder in _FOLDER_MARKS:
                item.add_marker(getattr(pytest.mark, folder))


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh PostgreSQL schema for one test, dropped afterwards."""
    schema = f"connector_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    yield schema
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def pg_url_for(schema: str) -> str:
    """A URL whose connections use `schema` (for child processes that only get a URL)."""
    return f"{PG_ADMIN_URL}?options=-csearch_path%3D{schema}"


@pytest.fixture
def redis_url() -> Iterator[str]:
    client = redis.Redis.from_url(REDIS_TEST_URL)
    client.flushdb()
    yield REDIS_TEST_URL
    client.flushdb()
    client.close()
