"""The admin `update`: change M existing bills and add K new ones, all stamped with the sandbox's now.

This is what a delta sync sees between two polls. Choices are seeded from (seed, tenant, update number)
so a test that runs the same updates in the same order sees the same changes. Edits keep line ids and
recompute totals exactly, as Xero does when a bill is edited.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from sandbox.xero import money
from sandbox.xero.builder import TenantBuilder
from sandbox.xero.dataset import random_lines
from sandbox.xero.masters import PROFILES
from sandbox.xero.model import Invoice, LineItem, Payment
from sandbox.xero.store import TenantStore

EDITABLE = ("DRAFT", "SUBMITTED", "AUTHORISED")


def _reprice(invoice: Invoice, percents: dict[str, Decimal], factor: Decimal) -> Invoice:
    """Raise the first priced line's unit price by `factor` and recompute the document."""
    lines = list(invoice.lines)
    for at, line in enumerate(lines):
        if line.line_amount != 0:
            unit = money.cents(line.unit_amount * factor)
            amount = money.line_amount(line.quantity, unit)
            tax = money.line_tax(amount, percents.get(line.tax_type, Decimal(0)), invoice.line_amount_types)
            lines[at] = dataclasses.replace(line, unit_amount=unit, line_amount=amount, tax_amount=tax)
            break
    return _with_lines(invoice, tuple(lines))


def _with_lines(invoice: Invoice, lines: tuple[LineItem, ...]) -> Invoice:
    sub, tax, total = money.document_totals(((li.line_amount, li.tax_amount) for li in lines),
                                            invoice.line_amount_types)
    return dataclasses.replace(invoice, lines=lines, sub_total=sub, total_tax=tax, total=total,
                               amount_due=total - invoice.amount_paid, cache={})


def _modify(invoice: Invoice, rng: random.Random, percents: dict[str, Decimal], now: datetime,
            new_id: Callable[[], str]) -> tuple[Invoice, str]:
    if invoice.status in ("DRAFT", "SUBMITTED"):
        lines = tuple(
            dataclasses.replace(li, account_code="429") if li.account_code is None and li.line_amount else li
            for li in invoice.lines
        )
        changed = dataclasses.replace(_with_lines(invoice, lines), status="AUTHORISED")
        return changed, "approved"
    roll = rng.random()
    if roll < 0.5:
        return _reprice(invoice, percents, Decimal("1.05")), "amount changed"
    if roll < 0.8:
        payment = Payment(new_id(), now.date(), invoice.amount_due, invoice.currency_rate, "Payment run")
        paid = dataclasses.replace(
            invoice, status="PAID", amount_paid=invoice.total, amount_due=money.ZERO,
            payments=(*invoice.payments, payment), fully_paid_on=now.date(), cache={},
        )
        return paid, "paid"
    return dataclasses.replace(invoice, status="VOIDED", amount_due=money.ZERO, cache={}), "voided"


def apply_update(store: TenantStore, seed: int, update_number: int, now: datetime, modify: int,
                 add: int) -> dict[str, Any]:
    """Modify up to `modify` editable bills and add `add` AUTHORISED bills with a fresh PO each."""
    tenant = store.tenant
    rng = random.Random(f"xero-sandbox/{seed}/{tenant.index}/update/{update_number}")
    profile = PROFILES[tenant.index % len(PROFILES)]
    percents = {rate.tax_type: rate.percent for rate in tenant.tax_rates}
    builder = TenantBuilder(rng, profile, tenant.accounts, tenant.tracking_categories)
    builder.continue_numbering(tenant.purchase_orders, tenant.invoices)

    candidates = [inv for inv in store.invoices() if inv.type == "ACCPAY" and inv.status in EDITABLE]
    modified: list[dict[str, str]] = []
    for invoice in rng.sample(candidates, min(modify, len(candidates))):
        changed, what = _modify(invoice, rng, percents, now, builder.new_id)
        store.replace_invoice(dataclasses.replace(changed, updated=now))
        modified.append({"InvoiceID": invoice.invoice_id, "Change": what})

    suppliers = [c for c in tenant.contacts if c.is_supplier and c.status == "ACTIVE"]
    added: list[str] = []
    for _ in range(add):
        supplier = rng.choice(suppliers)
        specs = random_lines(builder, supplier)
        po = builder.purchase_order(supplier, specs, status="AUTHORISED", day=now.date(), updated=now)
        store.add_purchase_order(po)
        bill = builder.bill(supplier, specs, number=po.number, status="AUTHORISED", day=now.date(),
                            po_numbers=[po.number], updated=now)
        store.add_invoice(bill)
        tenant.answer_key[bill.invoice_id] = [po.number]
        added.append(bill.invoice_id)
    return {"tenant_id": tenant.tenant_id, "modified": modified, "added": added}
