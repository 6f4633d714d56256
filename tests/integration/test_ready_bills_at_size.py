"""Making a file looks for the tenant's READY bills not yet in a file, oldest first, and the sweeper for
the tenants that have such bills: each must read those bills only, however many the tenant has. On a first
sync with no statistics yet, PostgreSQL answered "READY and in no file" by intersecting the (tenant, state)
index with the batch_id index, whose NULL range holds every bill not yet in a file (each one's dead
versions too): at 100,000 bills, 224,000 index entries and 236 ms for each file's claim, and a claim at
every 250th mapping, so a first sync quadratic in the tenant's size. They now read one partial index
(READY and in no file, by tenant and id)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text

from connector.services.context import Services
from connector.store import batches, sweeps
from sandbox.xero import XeroSandbox
from tests.support.pipeline import onboard
from tests.support.services import services_for_sandbox
from tests.support.sftp_fixtures import BundledSftp

UNFILED = 100_000  # bills of the tenant not yet in a file, most of them still mapping
READY = 600


@pytest.fixture(scope="module")
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=3, tenants=1, bills=5) as running:
        yield running


@pytest.fixture(params=["sqlite", "postgresql"])
def services(request: pytest.FixtureRequest, sandbox: XeroSandbox, tmp_path: Path) -> Iterator[Services]:
    schema = request.getfixturevalue("pg_schema") if request.param == "postgresql" else None
    built = services_for_sandbox(sandbox, tmp_path, request.param, schema=schema)
    yield built
    built.close()


def plans_of_reads(services: Services, read: Any) -> list[str]:
    """The plan of each SELECT on bills that `read(session)` runs, as the database would run it now."""
    reads: list[tuple[str, Any]] = []

    def seen(_conn: object, _cursor: object, statement: str, parameters: Any, *_: object) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM bills" in statement:
            reads.append((statement, parameters))

    event.listen(services.ledger.engine, "before_cursor_execute", seen)
    try:
        with services.ledger.transaction() as session:
            read(session)
    finally:
        event.remove(services.ledger.engine, "before_cursor_execute", seen)
    assert reads
    explain = "EXPLAIN" if services.ledger.engine.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN"
    plans = []
    with services.ledger.engine.connect() as connection:
        cursor = connection.connection.cursor()
        for statement, parameters in reads:
            cursor.execute(f"{explain} {statement}", parameters)
            plans.append("\n".join(str(row[-1]) for row in cursor.fetchall()))
    return plans


def test_a_files_claim_and_the_sweepers_look_read_only_the_ready_bills_not_yet_in_a_file(
    services: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    postgresql = services.ledger.engine.dialect.name == "postgresql"
    # a bill's payload is about this long
    payload = "CAST('{\"pad\": \"' || repeat('x', 1500) || '\"}' AS JSON)" if postgresql else \
        "'{\"pad\": \"' || hex(zeroblob(750)) || '\"}'"
    with services.ledger.transaction() as session:  # a first sync under way, no statistics yet
        session.execute(text(
            "INSERT INTO bills (tenant_id, invoice_id, document_type, xero_status, version, state, reasons,"
            " payload, state_changed_at, map_runs, row_version, documents_failures)"
            " SELECT :tenant, 'filler-' || n, 'BILL', 'AUTHORISED', 1,"
            " CASE WHEN n % :every = 0 THEN 'READY' ELSE 'DISCOVERED' END, '[]',"
            f" {payload}, CURRENT_TIMESTAMP, 0, 1, 0"
            " FROM (WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < :count)"
            " SELECT n FROM s) AS numbers"), {"tenant": tenant_id, "every": UNFILED // READY, "count": UNFILED})
    with services.ledger.transaction() as session:
        assert len(batches.ready_bill_ids(session, tenant_id, 500)) == 500
    plans = [*plans_of_reads(services, lambda session: batches.ready_bill_ids(session, tenant_id, 500)),
             *plans_of_reads(services, lambda session: sweeps.tenants_with_unbatched_ready(session, None))]
    for plan in plans:
        assert "ix_bills_batch_id" not in plan, plan
        if postgresql:  # (SQLite reads the tenant's READY bills by (tenant, state): it keeps no dead versions)
            assert "ix_bills_ready_unfiled" in plan, plan
