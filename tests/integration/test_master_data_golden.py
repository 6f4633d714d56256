"""The default master-data templates over the sandbox's hard cases, byte for byte: archived and merged
suppliers, names that look like formulas, unicode names, POs in every status, several currencies. The rows
come through the real path (a poll of the sandbox into the ledger, then the rows of each kind), so the
golden files show what a first full file of each kind looks like. Regenerate with UPDATE_GOLDEN=1 and
review the diff."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from connector.config.loader import MappingSetData
from connector.domain.masterdata import MASTER_KINDS, Kind
from connector.services.context import Services
from connector.services.mappings import current, import_mapping_set
from connector.services.masterdata import records_of
from connector.stampli import default_master_template, render
from connector.store import masterdata as store
from sandbox.xero import XeroSandbox
from sandbox.xero.names import HARD_SUPPLIERS
from tests.support.pipeline import onboard, poll_and_map
from tests.support.sftp_fixtures import BundledSftp

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=5, tenants=1, bills=25) as running:
        yield running


def first_files(services: Services, tenant_id: str) -> dict[Kind, bytes]:
    with services.ledger.transaction() as session:
        return {kind: render(default_master_template(kind), [r.row for r in sorted(
            records_of(session, tenant_id, kind, store.sent_fingerprints(session, tenant_id, kind)),
            key=lambda r: r.key)]).content for kind in MASTER_KINDS}


def test_the_default_templates_render_the_hard_cases_exactly_as_the_golden_files(
    services: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    with services.ledger.transaction() as session:
        _, in_force = current(session, tenant_id)
    acme = {c.name: c.contact_id for c in sandbox.dataset.tenant(tenant_id).contacts}["Acme Industrial Supply"]
    whole_categories = [{"xero_category": "Department", "xero_option": "*", "stampli_dimension": "department",
                         "stampli_value": "*"},
                        {"xero_category": "Region", "xero_option": "*", "stampli_dimension": "location",
                         "stampli_value": "*"}]  # archived options too: they are sent ARCHIVED
    import_mapping_set(services.ledger, tenant_id, MappingSetData(
        settings=in_force.settings, gl=in_force.gl, tracking=whole_categories, vendors={acme: "V-ACME"}),
        actor="test")
    poll_and_map(services, tenant_id)
    for kind, content in first_files(services, tenant_id).items():
        golden = GOLDEN / f"masterdata_{kind}.csv"
        if os.environ.get("UPDATE_GOLDEN") == "1":
            golden.write_bytes(content)
        assert golden.exists(), f"{golden} is missing: run the tests once with UPDATE_GOLDEN=1 and commit it"
        assert content == golden.read_bytes(), f"{golden.name} differs: if intended, run with UPDATE_GOLDEN=1"


def _rows(kind: str) -> list[dict[str, str]]:
    text = (GOLDEN / f"masterdata_{kind}.csv").read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_the_golden_files_hold_every_hard_case() -> None:
    vendors = {r["VendorName"].removeprefix("'"): r for r in _rows("vendors")}
    assert {s.name for s in HARD_SUPPLIERS} <= set(vendors)
    acme_dup = next(r for n, r in vendors.items() if "(duplicate)" in n)
    assert (acme_dup["Archived"], acme_dup["Merged"], acme_dup["MergedToVendorID"]) == (
        "Y", "Y", vendors["Acme Industrial Supply"]["XeroVendorID"])
    assert vendors["Contoso Office Supplies"]["Status"] == "ARCHIVED"
    assert (vendors["Acme Industrial Supply"]["VendorCode"], acme_dup["MergedToVendorCode"]) == ("V-ACME", "V-ACME")
    guarded = {r["VendorName"] for r in vendors.values() if r["VendorName"].startswith("'")}
    assert {"'=SUM(A1:A2) Consulting", "'+Plus Logistics Ltd", "'-Minus Metals", "'@Home Cleaning Services"} <= guarded
    assert "株式会社東京精密" in vendors
    text = (GOLDEN / "masterdata_vendors.csv").read_text(encoding="utf-8")
    assert "Bank" not in text
    orders = _rows("purchase_orders")
    statuses = {r["PONumber"]: r["Status"] for r in orders}
    assert set(statuses.values()) == {"AUTHORISED", "BILLED"}  # a first file: no draft, submitted or deleted PO
    assert {"PO-0021", "PO-0022", "PO-0023"}.isdisjoint(statuses)
    assert len({r["Currency"] for r in orders}) > 1
    accounts = _rows("gl_accounts")
    assert {"Y", "N"} == {r["Archived"] for r in accounts}
    assert any(r["GLCode"] for r in accounts)
    dimensions = _rows("dimensions")
    assert {r["Status"] for r in dimensions} == {"ACTIVE", "ARCHIVED"}
