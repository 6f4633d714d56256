"""An idle poll is the cost of a tenant in a cycle with nothing new, and ten thousand tenants a cycle are
ten thousand of them: its own ledger work must be a few round trips beside its two Xero calls. It reads
what it needs in the transaction that takes its lease (watermarks, cadences, the stored token, what the
tenant sends), commits nothing for an empty page, and does its upkeep (credit notes whose bills arrived,
documents to fetch again) in the transaction that ends it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Connection, event

from connector.services import poll
from connector.services.context import Services
from sandbox.xero import XeroSandbox
from tests.support.pipeline import make_due, onboard_unsent


@pytest.fixture
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=61, tenants=1, bills=20) as running:
        yield running


def api_calls(sandbox: XeroSandbox) -> dict[str, int]:
    return {name.rsplit("/", 1)[-1]: sum(codes.values()) for name, codes in sandbox.stats()["calls_by_endpoint"].items()
            if "/api.xro/" in name}


# What an idle poll may cost the ledger at most. Taking the lease: the tenant's row read and written, its
# map backlog recounted (two statements), its watermarks, stored token and the master data it sends read
# with it. A page of records already held (the newest of each endpoint is read again every poll, through
# the watermark's overlap): one statement, committed by itself, finds them held at their versions, and
# nothing else is done for it. Ending it: the held credit notes and documents it looks at, the lease freed.
IDLE_POLL_TRANSACTIONS = 2  # start, end
IDLE_POLL_AUTOCOMMITTED = 2  # the page of POs and the page of bills, each found held already
IDLE_POLL_STATEMENTS = {"postgresql": 12, "sqlite": 12}


def test_an_idle_poll_is_a_few_transactions_and_a_fixed_number_of_statements_beside_its_two_xero_calls(
        services_on_both_databases: Services, sandbox: XeroSandbox) -> None:
    """Counted, so a new transaction or statement on this path is a decision, not an accident (it was 12
    transactions and 23 statements)."""
    services = services_on_both_databases
    tenant_id = onboard_unsent(services, sandbox)
    first = poll.poll_tenant(services, tenant_id, emit=lambda _: None)
    assert first.bills_seen > 0
    make_due(services, tenant_id)
    statements: list[str] = []
    transactions: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(" ".join(statement.split()))

    def begun(conn: Connection) -> None:
        transactions.append(conn.get_execution_options().get("isolation_level", "transaction"))

    calls_before = api_calls(sandbox)
    event.listen(services.ledger.engine, "before_cursor_execute", seen)
    event.listen(services.ledger.engine, "begin", begun)
    try:
        idle = poll.poll_tenant(services, tenant_id, emit=lambda _: None)
    finally:
        event.remove(services.ledger.engine, "before_cursor_execute", seen)
        event.remove(services.ledger.engine, "begin", begun)
    calls = {name: n - calls_before.get(name, 0) for name, n in api_calls(sandbox).items()
             if n != calls_before.get(name, 0)}

    assert not idle.skipped
    assert idle.bills_changed == 0
    assert calls == {"Invoices": 1, "PurchaseOrders": 1}
    assert transactions.count("transaction") <= IDLE_POLL_TRANSACTIONS, transactions
    assert transactions.count("AUTOCOMMIT") <= IDLE_POLL_AUTOCOMMITTED, transactions
    budget = IDLE_POLL_STATEMENTS[services.ledger.engine.dialect.name]
    assert len(statements) <= budget, "\n".join(statement[:120] for statement in statements)
