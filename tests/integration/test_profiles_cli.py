"""Mapping profiles through the `connector` command, against the real PostgreSQL: one map (versioned), a
template and a cadence shared by many tenants; a tenant overrides the map entry by entry and the cadence
and template whole; a profile's import or template is checked against the map and template every tenant
on it would use, and sends their bills on at once; the audit names the profile version a bill was mapped
with; a thousand tenants go on one profile with one import within seconds."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from connector.domain.states import BillState
from connector.store.models import Bill, Tenant
from tests.conftest import pg_url_for
from tests.support.operator import TENANT_ID, Operator, many_tenants, operator_on

TRACKING_HEADER = "xero_category,xero_option,stampli_dimension,stampli_value\n"


@pytest.fixture(params=["postgresql", "sqlite"])
def desk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Operator]:
    """The operator on PostgreSQL and on the embedded SQLite ledger."""
    url = pg_url_for(request.getfixturevalue("pg_schema")) if request.param == "postgresql" \
        else f"sqlite:///{tmp_path / 'ledger.db'}"
    yield from operator_on(url, tmp_path)


def write(folder: Path, name: str, text: str) -> str:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def gl(folder: Path, name: str, rows: dict[str, str]) -> str:
    return write(folder, name, "xero_account_code,stampli_gl_code\n"
                 + "".join(f"{code},{value}\n" for code, value in rows.items()))


def template(folder: Path, name: str, *dimensions: str) -> str:
    """A minimal CSV template reading these dimensions."""
    columns = "".join(f"  - {{name: {d}, source: line.dimensions.{d}}}\n" for d in dimensions)
    return write(folder, name, "version: 1\nformat: csv\ncolumns:\n"
                 "  - {name: XeroInvoiceID, source: invoice_id, required: true}\n" + columns)


def ok(operator: Operator, *args: str) -> str:
    result = operator.run(*args)
    assert result.exit_code == 0, (args, result.output)
    return result.stdout


def shown(operator: Operator, tenant_id: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(ok(operator, "mappings", "show", "--tenant", tenant_id))
    return document


def listed(operator: Operator) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in json.loads(ok(operator, "tenants", "list", "--json"))}


def test_a_thousand_tenants_go_on_one_profile_with_one_import_in_seconds(operator: Operator, tmp_path: Path) -> None:
    ids = many_tenants(operator, 1000)
    started = time.monotonic()
    ok(operator, "profiles", "create", "uk", "--interval", "3600")
    ok(operator, "tenants", "set", "--all-tenants", "--profile", "uk")
    imported = json.loads(ok(operator, "mappings", "import", "--profile", "uk", "--json",
                             "--gl", gl(tmp_path, "gl.csv", {"400": "GL-400", "500": "GL-500"})))
    ok(operator, "profiles", "set", "uk", "--template", template(tmp_path, "uk.yaml"))
    ok(operator, "tenants", "set", ids[0], "--interval", "600")  # one tenant's own cadence
    ok(operator, "profiles", "set", "uk", "--interval", "1800")  # every other tenant's
    elapsed = time.monotonic() - started
    assert imported["version"] == 1
    assert imported["tenants"] == 1001
    for tenant_id in (ids[0], ids[500], ids[-1], TENANT_ID):
        in_force = shown(operator, tenant_id)
        assert in_force["gl"] == {"400": "GL-400", "500": "GL-500"}
        assert in_force["profile"] == {"name": "uk", "version": 1}
    with operator.ledger.transaction() as session:
        cadences = dict(session.execute(select(Tenant.id, Tenant.poll_interval_seconds)).tuples().all())
    assert cadences.pop(ids[0]) == 600
    assert set(cadences.values()) == {1800}
    rows = listed(operator)
    assert {rows[t]["template_from"] for t in (ids[0], ids[999], TENANT_ID)} == {"profile"}
    profiles = json.loads(ok(operator, "profiles", "list", "--json"))
    assert [(p["name"], p["tenants"], p["mapping_version"], p["template"]) for p in profiles] == \
        [("uk", 1001, 1, "custom")]
    print(f"1,001 tenants put on a profile, one map imported, a template and two cadences set: {elapsed:.2f} s")
    assert elapsed < 30, elapsed


def test_a_tenant_overrides_the_profile_map_entry_by_entry(desk: Operator, tmp_path: Path) -> None:
    operator = desk
    first, second = many_tenants(operator, 2)
    ok(operator, "profiles", "create", "uk")
    ok(operator, "tenants", "set", first, second, "--profile", "uk")
    shared = gl(tmp_path, "p1.csv", {"400": "P-400", "500": "P-500"})
    ok(operator, "mappings", "import", "--profile", "uk", "--gl", shared)
    own = gl(tmp_path, "own.csv", {"500": "A-500", "600": "A-600"})
    ok(operator, "mappings", "import", "--tenant", first, "--gl", own)
    assert shown(operator, first)["gl"] == {"400": "P-400", "500": "A-500", "600": "A-600"}
    assert shown(operator, first)["version"] == 1
    assert shown(operator, second)["gl"] == {"400": "P-400", "500": "P-500"}
    # A new version of the profile reaches both; the tenant's own entries still win, and stay its own.
    ok(operator, "mappings", "import", "--profile", "uk", "--gl", gl(tmp_path, "p2.csv", {"400": "P-401"}))
    assert shown(operator, first)["gl"] == {"400": "P-401", "500": "A-500", "600": "A-600"}
    assert shown(operator, first)["profile"] == {"name": "uk", "version": 2}
    assert shown(operator, second)["gl"] == {"400": "P-401"}
    own_only = json.loads(ok(operator, "mappings", "show", "--tenant", first, "--own"))
    assert own_only["gl"] == {"500": "A-500", "600": "A-600"}
    assert json.loads(ok(operator, "mappings", "show", "--profile", "uk"))["gl"] == {"400": "P-401"}
    # Leaving the profile: the tenant's own map only.
    ok(operator, "tenants", "set", first, "--no-profile")
    assert shown(operator, first)["gl"] == {"500": "A-500", "600": "A-600"}
    assert shown(operator, first)["profile"] is None


def test_a_tenant_keeps_its_own_cadence_and_template_until_it_inherits_the_profile_s(
    operator: Operator, tmp_path: Path,
) -> None:
    first, second = many_tenants(operator, 2)
    ok(operator, "profiles", "create", "uk", "--interval", "1200")
    ok(operator, "tenants", "set", "--tenant", first, "--tenant", second, "--profile", "uk")
    ok(operator, "tenants", "set", first, "--interval", "600", "--template", template(tmp_path, "own.yaml"))
    ok(operator, "profiles", "set", "uk", "--interval", "2400", "--template", template(tmp_path, "uk.yaml"))
    rows = listed(operator)
    assert (rows[first]["poll_interval_seconds"], rows[first]["template_from"]) == (600, "own")
    assert (rows[second]["poll_interval_seconds"], rows[second]["template_from"]) == (2400, "profile")
    ok(operator, "tenants", "set", first, "--inherit", "interval", "--inherit", "template")
    rows = listed(operator)
    assert (rows[first]["poll_interval_seconds"], rows[first]["template_from"]) == (2400, "profile")
    show = json.loads(ok(operator, "profiles", "show", "uk", "--json"))
    assert [t["id"] for t in show["tenant_list"]] == [first, second]


def test_a_profile_import_or_template_is_refused_when_any_tenant_would_lose_a_dimension(
    operator: Operator, tmp_path: Path,
) -> None:
    first, second = many_tenants(operator, 2)
    ok(operator, "profiles", "create", "uk")
    ok(operator, "tenants", "set", first, second, "--profile", "uk")
    ok(operator, "tenants", "set", second, "--template", template(tmp_path, "own.yaml", "department"),
       "--allow-unmatched-dimensions")
    # `second` reads department, `first` (the profile's default template) reads what the default reads:
    # a map giving cost_center only is refused for both, naming them, and nothing is stored.
    tracking = write(tmp_path, "tracking.csv", TRACKING_HEADER + "Department,*,cost_center,*\n")
    refused = operator.run("mappings", "import", "--profile", "uk", "--tracking", tracking)
    assert refused.exit_code == 2, refused.output
    assert f"tenant {second}:" in refused.stderr
    assert json.loads(ok(operator, "mappings", "show", "--profile", "uk"))["version"] == 0
    warned = operator.run("mappings", "import", "--profile", "uk", "--tracking", tracking,
                          "--allow-unmatched-dimensions")
    assert warned.exit_code == 0, warned.output
    assert f"warning: tenant {second}:" in warned.stderr
    # A profile template that reads no dimension the map gives is refused for the tenant that would use it.
    refused_template = operator.run("profiles", "set", "uk", "--template", template(tmp_path, "uk.yaml", "region"))
    assert refused_template.exit_code == 2, refused_template.output
    assert f"tenant {first}:" in refused_template.stderr
    assert f"tenant {second}:" not in refused_template.stderr  # it has its own template
    assert listed(operator)[first]["template_from"] == "default"


def held(session: Any, tenant_id: str, invoice_id: str, *codes: str) -> None:
    session.add(Bill(tenant_id=tenant_id, invoice_id=invoice_id, invoice_number=invoice_id, xero_status="AUTHORISED",
                     version=1, state=BillState.HELD, reasons=[{"code": code} for code in codes],
                     mapping=None, payload=PAYLOAD | {"InvoiceID": invoice_id, "InvoiceNumber": invoice_id}))


#: A bill as Xero sends it, on an account code no map gives: held for it (and for its unknown vendor).
PAYLOAD = {"Type": "ACCPAY", "Status": "AUTHORISED", "Contact": {"ContactID": "contact-1", "Name": "Supplier"},
           "Date": "/Date(1767225600000+0000)/", "DueDate": "/Date(1769904000000+0000)/", "CurrencyCode": "GBP",
           "LineAmountTypes": "NoTax", "SubTotal": 10, "TotalTax": 0, "Total": 10,
           "UpdatedDateUTC": "/Date(1767225600000+0000)/",
           "LineItems": [{"Description": "paper", "Quantity": 1, "UnitAmount": 10, "LineAmount": 10,
                          "TaxAmount": 0, "AccountCode": "999"}]}


def test_a_profile_import_sends_the_held_bills_of_every_tenant_on_it_at_once(
    operator: Operator, tmp_path: Path, redis_url: str,
) -> None:
    first, second, elsewhere = many_tenants(operator, 3)
    ok(operator, "profiles", "create", "uk")
    ok(operator, "tenants", "set", first, second, "--profile", "uk")
    with operator.ledger.transaction() as session:
        for tenant_id in (first, second, elsewhere):
            held(session, tenant_id, f"bill-{tenant_id[-1]}", "unmapped_gl")
    operator.env["CONNECTOR_BROKER_URL"] = redis_url
    result = json.loads(ok(operator, "mappings", "import", "--profile", "uk", "--json",
                           "--gl", gl(tmp_path, "gl.csv", {"400": "GL-400"})))
    assert result["reopened"] == 2
    assert result["sent"] == "4 message(s) sent to the workers"  # a map and a batch request per tenant
    with operator.ledger.transaction() as session:
        bills = {b.tenant_id: b for b in session.scalars(select(Bill))}
    assert {t: (bills[t].state, bills[t].map_sent_at is not None) for t in (first, second, elsewhere)} == {
        first: (BillState.DISCOVERED, True), second: (BillState.DISCOVERED, True), elsewhere: (BillState.HELD, False)}


def test_the_audit_says_which_profile_version_a_bill_was_mapped_with(desk: Operator, tmp_path: Path) -> None:
    operator = desk
    ok(operator, "profiles", "create", "uk")
    ok(operator, "tenants", "set", TENANT_ID, "--profile", "uk")
    with operator.ledger.transaction() as session:
        held(session, TENANT_ID, "bill-1", "unmapped_gl")
    ok(operator, "mappings", "import", "--profile", "uk", "--gl", gl(tmp_path, "gl.csv", {"400": "GL-400"}))
    ok(operator, "mappings", "import", "--tenant", TENANT_ID, "--gl", gl(tmp_path, "own.csv", {"500": "A-500"}))
    # no broker: the command mapped the re-opened bill itself, with the tenant's set 1 and the profile's 1
    [bill] = json.loads(ok(operator, "bills", "show", "bill-1", "--json"))
    assert (bill["mapping_set"], bill["mapping_profile_version"]) == (1, 1)
    rows = [json.loads(line) for line in ok(operator, "audit", "export", "--format", "jsonl").splitlines()]
    assert [row["mapped_with"] for row in rows if row["from_state"] == "DISCOVERED"][-1] == "set 1 + profile uk v1"
    assert "[mapped with set 1 + profile uk v1]" in ok(operator, "bills", "show", "bill-1")


def test_unknown_profiles_are_refused_with_exit_2(operator: Operator, tmp_path: Path) -> None:
    for args in (["tenants", "set", TENANT_ID, "--profile", "nope"],
                 ["mappings", "import", "--profile", "nope", "--gl", gl(tmp_path, "gl.csv", {"400": "G"})],
                 ["profiles", "show", "nope"], ["profiles", "set", "nope", "--interval", "600"]):
        refused = operator.run(*args)
        assert refused.exit_code == 2, refused.output
        assert "no such profile: nope" in refused.stderr
    ok(operator, "profiles", "create", "uk")
    twice = operator.run("profiles", "create", "uk")
    assert twice.exit_code == 2
    assert "exists already" in twice.stderr


def test_a_profile_dry_run_shows_each_tenant_s_bills_and_stores_nothing(operator: Operator, tmp_path: Path) -> None:
    first, second = many_tenants(operator, 2)
    ok(operator, "profiles", "create", "uk")
    ok(operator, "tenants", "set", first, second, "--profile", "uk")
    with operator.ledger.transaction() as session:
        held(session, first, "bill-1", "unmapped_gl")
    dry = json.loads(ok(operator, "mappings", "import", "--profile", "uk", "--dry-run", "--json",
                        "--gl", gl(tmp_path, "gl.csv", {"999": "GL-999"})))
    assert (dry["profile"], dry["stored"], dry["version"]) == ("uk", False, 1)
    by_tenant = {document["tenant_id"]: document for document in dry["tenants"]}
    assert by_tenant[first]["mapped_again"] == 1
    [change] = by_tenant[first]["bills"]
    assert change["invoice_id"] == "bill-1"
    assert not any("999" in why for why in change["now"])  # the account is mapped under the profile's new set
    assert by_tenant[second]["mapped_again"] == 0
    assert json.loads(ok(operator, "mappings", "show", "--profile", "uk"))["version"] == 0
    with operator.ledger.transaction() as session:
        assert session.scalars(select(Bill.state)).one() == BillState.HELD
