"""A page of a Xero delta read goes into the ledger in one statement for purchase orders and contacts, on
SQLite and PostgreSQL, and the upsert keeps the rules it had record by record."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

from connector.onboarding import add_grant, add_tenant
from connector.secret import Secret
from connector.services.context import Services
from connector.store.models import ContactRow, PurchaseOrderRow
from connector.store.reference import Contact
from connector.store.xero_records import upsert_contacts, upsert_purchase_orders
from tests.conftest import PG_ADMIN_URL
from tests.support.services import make_services

TENANT = "t-1"


@pytest.fixture(params=["sqlite", "postgresql"])
def services(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Services]:
    if request.param == "sqlite":
        built = make_services(f"sqlite:///{tmp_path / 'ledger.db'}", tmp_path)
    else:
        built = make_services(PG_ADMIN_URL, tmp_path, schema=request.getfixturevalue("pg_schema"))
    grant = add_grant(built.ledger, built.vault, client_id="c", client_secret=Secret("s"), refresh_token=Secret("r"))
    add_tenant(built.ledger, tenant_id=TENANT, name="Acme", short_name="acme", grant_id=grant, sftp_target_id=None)
    yield built
    built.close()


def purchase_order(n: int, version: int, number: str | None = None) -> dict[str, Any]:
    return {"PurchaseOrderID": f"po-{n}", "PurchaseOrderNumber": number or f"PO-{n:04d}", "Status": "AUTHORISED",
            "Contact": {"ContactID": "c-1"}, "UpdatedDateUTC": f"/Date({version}+0000)/"}


def contact(n: int, name: str) -> Contact:
    return Contact(contact_id=f"c-{n}", name=name, status="ACTIVE", is_supplier=True, merged_to=None, version=n,
                   payload={"ContactID": f"c-{n}", "Name": name})


class Statements:
    """Counts the statements the ledger's engine sends."""

    def __init__(self, services: Services) -> None:
        self.count = 0
        self._engine = services.ledger.engine
        event.listen(self._engine, "before_cursor_execute", self._seen)

    def _seen(self, *_: Any) -> None:
        self.count += 1

    def close(self) -> None:
        event.remove(self._engine, "before_cursor_execute", self._seen)


def test_a_page_of_a_thousand_purchase_orders_is_one_statement_and_only_newer_versions_are_written(
    services: Services,
) -> None:
    with services.ledger.transaction() as session:
        assert upsert_purchase_orders(session, TENANT, [purchase_order(n, 1_000) for n in range(1000)]) == 1000
    counted = Statements(services)
    with services.ledger.transaction() as session:
        page = [purchase_order(n, 2_000 if n < 10 else 1_000, number="PO-9999" if n < 10 else None)
                for n in range(1000)]
        written = upsert_purchase_orders(session, TENANT, page)
        statements = counted.count
    counted.close()
    assert written == 10  # the 990 re-seen versions change nothing
    assert statements == 1
    with services.ledger.transaction() as session:
        rows = {r.purchase_order_id: r for r in session.scalars(select(PurchaseOrderRow))}
    assert (rows["po-3"].number, rows["po-3"].key, rows["po-3"].version) == ("PO-9999", "9999", 2_000)
    assert rows["po-500"].number == "PO-0500"


def test_a_page_of_contacts_is_one_statement_beside_the_tenants_reference_version_and_replaces_what_was_held(
    services: Services,
) -> None:
    with services.ledger.transaction() as session:
        upsert_contacts(session, TENANT, [contact(n, "old") for n in range(1, 501)], read_at=services.clock())
    counted = Statements(services)
    with services.ledger.transaction() as session:
        upsert_contacts(session, TENANT, [contact(n, "new") for n in range(1, 1001)], read_at=services.clock())
        statements = counted.count
    counted.close()
    assert statements == 2  # the page, and the tenant's reference_version (workers' copies are stale)
    with services.ledger.transaction() as session:
        names = list(session.scalars(select(ContactRow.name)))
    assert len(names) == 1000
    assert set(names) == {"new"}
