"""The seeded dataset: byte-identical per seed, every hard case in every tenant, amounts that add up."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import requests

from sandbox.xero import XeroSandbox, money, render
from sandbox.xero.dataset import build_dataset
from sandbox.xero.hardcases import CURATED_BILLS
from sandbox.xero.model import Invoice, PurchaseOrder, Tenant
from sandbox.xero.names import HARD_DESCRIPTIONS, HARD_SUPPLIERS
from sandbox.xero.store import DataStore
from sandbox.xero.updates import apply_update

pytestmark = pytest.mark.sandbox


def _bytes(tenant: Tenant) -> str:
    contacts = {c.contact_id: c for c in tenant.contacts}
    parts = [tenant.tenant_id, render.encode(render.organisation(tenant))]
    parts += [render.invoice(i, contacts, full=True) for i in tenant.invoices]
    parts += [render.purchase_order(p, contacts) for p in tenant.purchase_orders]
    parts += [render.encode(render.contact(c, full=True)) for c in tenant.contacts]
    parts += [render.encode(render.account(a)) for a in tenant.accounts]
    parts += [render.encode(render.tracking_category(t, include_archived=True)) for t in tenant.tracking_categories]
    parts.append(repr(sorted(tenant.answer_key.items())))
    return "\n".join(parts)


def test_same_seed_gives_byte_identical_data() -> None:
    first, again, other = build_dataset(42, 2, 120), build_dataset(42, 2, 120), build_dataset(43, 2, 120)
    assert [_bytes(t) for t in first.tenants] == [_bytes(t) for t in again.tenants]
    assert _bytes(first.tenants[0]) != _bytes(other.tenants[0])
    assert first.tenants[0].tenant_id != first.tenants[1].tenant_id


def test_a_tenant_does_not_depend_on_how_many_there_are() -> None:
    assert _bytes(build_dataset(5, 1, 80).tenants[0]) == _bytes(build_dataset(5, 3, 80).tenants[0])


@pytest.fixture(scope="module")
def small() -> list[Tenant]:
    """Three tenants (NZ, AU, UK profiles) of exactly the curated 25 bills."""
    return build_dataset(11, 3, CURATED_BILLS).tenants


def test_every_tenant_has_every_hard_case(small: list[Tenant]) -> None:
    for tenant in small:
        bills = tenant.bills
        assert len(bills) == CURATED_BILLS
        names = {c.name for c in tenant.contacts}
        assert {s.name for s in HARD_SUPPLIERS} <= names
        assert {c.status for c in tenant.contacts} == {"ACTIVE", "ARCHIVED"}
        merged = [c for c in tenant.contacts if c.merged_to]
        assert len(merged) == 1
        assert tenant.contact(merged[0].merged_to or "").status == "ACTIVE"
        numbers = {b.number for b in bills}
        assert {"PO-0001", "po 0002", "P.O. 0003", "PO0004 / delivery 2", "PO-0005, PO-0006", "PO-9999", "",
                "POS-2231", "PO Box 12", "INV-20931"} <= numbers
        assert {b.status for b in bills} == {"DRAFT", "SUBMITTED", "AUTHORISED", "PAID", "VOIDED", "DELETED"}
        assert {p.status for p in tenant.purchase_orders} == {"DRAFT", "SUBMITTED", "AUTHORISED", "BILLED", "DELETED"}
        assert {b.line_amount_types for b in bills} == {"Exclusive", "Inclusive", "NoTax"}
        assert any(b.currency_code != tenant.organisation.base_currency and b.currency_rate != 1 for b in bills)
        assert any(b.amount_paid and b.status == "AUTHORISED" for b in bills), "a part-paid bill"
        lines = [li for b in bills for li in b.lines]
        assert any(li.account_code is None and li.line_amount == 0 for li in lines), "a heading line"
        assert any(li.account_code is None and li.line_amount for b in bills if b.status == "DRAFT" for li in b.lines)
        assert any(li.account_code == "477" for li in lines), "the archived account is still used"
        assert {t.option_name for li in lines for t in li.tracking} >= {"Marketing (old)", "Central (closed)"}
        descriptions = "\n".join(li.description for li in lines)
        assert all(text in descriptions for text in HARD_DESCRIPTIONS)
        seconds = Counter(b.updated.replace(microsecond=0) for b in bills)
        assert max(seconds.values()) >= 4
        assert sum(1 for i in tenant.invoices if i.type == "ACCREC") >= 3


def test_the_answer_key_is_the_truth(small: list[Tenant]) -> None:
    for tenant in small:
        key = {b.number: tenant.answer_key[b.invoice_id] for b in tenant.bills}
        assert key["po 0002"] == ["PO-0002"]
        assert key["P.O. 0003"] == ["PO-0003"]
        assert key["PO0004 / delivery 2"] == ["PO-0004"]
        assert key["PO-0005, PO-0006"] == ["PO-0005", "PO-0006"]
        for nothing in ("PO-9999", "", "POS-2231", "PO Box 12", "INV-20931", "CT-88812"):
            assert key[nothing] == []
        by_po = {b.number: b for b in tenant.bills}
        assert by_po["PO-0007"].total != tenant.purchase_order("PO-0007").total, "a total that differs from its PO"


def test_generated_bills_mostly_deliverable_and_consistent() -> None:
    tenant = build_dataset(3, 1, 1000).tenants[0]
    codes = {a.code for a in tenant.accounts if a.status == "ACTIVE"}
    pos = {p.number: p for p in tenant.purchase_orders}
    good = 0
    for bill in tenant.bills:
        numbers = tenant.answer_key[bill.invoice_id]
        for number in numbers:
            assert pos[number].contact_id == bill.contact_id
        if bill.status == "AUTHORISED" and numbers and all(li.account_code in codes for li in bill.lines):
            good += 1
    assert good > len(tenant.bills) // 2


@pytest.mark.parametrize("seed", [1, 2])
def test_amounts_add_up_exactly(seed: int) -> None:
    tenant = build_dataset(seed, 1, 600).tenants[0]
    documents: list[Invoice | PurchaseOrder] = [*tenant.invoices, *tenant.purchase_orders]
    for doc in documents:
        for line in doc.lines:
            assert line.line_amount == money.cents(line.quantity * line.unit_amount)
            assert line.line_amount.as_tuple().exponent == -2
            if doc.line_amount_types == "NoTax":
                assert line.tax_amount == 0
        amounts = sum((li.line_amount for li in doc.lines), Decimal(0))
        taxes = sum((li.tax_amount for li in doc.lines), Decimal(0))
        assert doc.total_tax == taxes
        assert doc.total == doc.sub_total + doc.total_tax
        assert (doc.total if doc.line_amount_types == "Inclusive" else doc.sub_total) == amounts
        if isinstance(doc, Invoice) and doc.status not in ("VOIDED", "DELETED"):
            assert doc.amount_due == doc.total - doc.amount_paid - doc.amount_credited


def test_fewer_bills_than_the_curated_set() -> None:
    tenant = build_dataset(9, 1, 5).tenants[0]
    assert [b.number for b in tenant.bills] == ["PO-0001", "po 0002", "P.O. 0003", "PO0004 / delivery 2",
                                                "PO-0005, PO-0006"]
    assert len(build_dataset(9, 1, 0).tenants[0].bills) == 0
    assert len(build_dataset(9, 1, 0).tenants[0].purchase_orders) == 24


def test_updates_are_seeded_too() -> None:
    now = datetime(2026, 7, 1, 12, 0, 0, 250_000, tzinfo=UTC)
    results = []
    for _ in range(2):
        store = DataStore(build_dataset(4, 1, 80))
        tenant_store = next(iter(store.tenants.values()))
        results.append(apply_update(tenant_store, 4, 1, now, 5, 3))
        assert all(i.updated == now for i in tenant_store.invoices() if i.invoice_id in results[-1]["added"])
    assert results[0] == results[1]
    assert len(results[0]["modified"]) == 5
    assert len(results[0]["added"]) == 3


def test_same_seed_serves_the_same_bytes_over_http() -> None:
    bodies = []
    for _ in range(2):
        with XeroSandbox(seed=21, tenants=1, bills=40) as sandbox:
            consent = sandbox.consent()
            token = requests.post(consent["urls"]["token"], auth=(consent["client_id"], consent["client_secret"]),
                                  data={"grant_type": "refresh_token", "refresh_token": consent["refresh_token"]},
                                  timeout=5).json()["access_token"]
            answer = requests.get(f"{consent['urls']['api']}/Invoices", params={"page": 1}, timeout=5, headers={
                "Authorization": f"Bearer {token}", "xero-tenant-id": consent["tenant_ids"][0]})
            bodies.append(answer.text.split('"pagination"', 1)[1])  # after the per-answer Id and DateTimeUTC
    assert bodies[0] == bodies[1]
