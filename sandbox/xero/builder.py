"""Primitives that make one tenant's records from a seeded random stream: ids, lines, POs and bills.

All randomness flows through one `random.Random` per tenant, seeded from (seed, tenant index), so a
tenant's bytes depend on nothing else. Each bill records which PO(s) it really belongs to.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from sandbox.xero import money
from sandbox.xero.choices import DATASET_END
from sandbox.xero.masters import CountryProfile
from sandbox.xero.model import (
    Account,
    Contact,
    Invoice,
    LineItem,
    LineTracking,
    Payment,
    PurchaseOrder,
    TrackingCategory,
)

QTY = Decimal("0.0001")

#: A line to build: (description, quantity, unit amount, account code or None, tracking pairs).
LineSpec = tuple[str, str, str, str | None, tuple[tuple[str, str], ...]]


class TenantBuilder:
    """Holds a tenant's masters while its documents are made, and numbers the documents."""

    def __init__(
        self,
        rng: random.Random,
        profile: CountryProfile,
        accounts: list[Account],
        tracking: list[TrackingCategory],
    ) -> None:
        self.rng = rng
        self.profile = profile
        self.accounts = {a.code: a for a in accounts}
        self.tracking = {t.name: t for t in tracking}
        self.purchase_orders: list[PurchaseOrder] = []
        self.invoices: list[Invoice] = []
        self.answer_key: dict[str, list[str]] = {}
        self._next_po = 1
        self._next_sales = 1

    def continue_numbering(self, purchase_orders: Sequence[PurchaseOrder], invoices: Sequence[Invoice]) -> None:
        """Number new documents after the existing ones (used when the admin API adds bills)."""
        po_numbers = [int(p.number[3:]) for p in purchase_orders if p.number[3:].isdigit()]
        sales_numbers = [int(i.number[4:]) for i in invoices if i.type == "ACCREC" and i.number[4:].isdigit()]
        self._next_po = max(po_numbers, default=0) + 1
        self._next_sales = max(sales_numbers, default=0) + 1

    def new_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def day(self, days_ago: int) -> date:
        return DATASET_END.date() - timedelta(days=days_ago)

    def stamp(self, day: date, *, max_hours: int = 48) -> datetime:
        """An UpdatedDateUTC some hours after `day` with random milliseconds, never past the dataset end."""
        moment = datetime.combine(day, time(8), DATASET_END.tzinfo) + timedelta(
            seconds=self.rng.randrange(max_hours * 3600), milliseconds=self.rng.randrange(1000)
        )
        return min(moment, DATASET_END - timedelta(minutes=5, milliseconds=self.rng.randrange(1000)))

    def next_po_number(self) -> str:
        number = f"PO-{self._next_po:04d}"
        self._next_po += 1
        return number

    def currency(self, supplier: Contact) -> tuple[str, Decimal]:
        if supplier.default_currency and supplier.default_currency != self.profile.base_currency:
            return supplier.default_currency, dict(self.profile.foreign_currencies)[supplier.default_currency]
        return self.profile.base_currency, Decimal("1.000000")

    def lines(self, specs: Sequence[LineSpec], line_amount_types: str, *, sales: bool = False) -> tuple[LineItem, ...]:
        tax = self.profile.sales_tax if sales else self.profile.purchase_tax
        made = []
        for description, quantity, unit, code, tracking in specs:
            qty, unit_amount = Decimal(quantity).quantize(QTY), money.cents(Decimal(unit))
            amount = money.line_amount(qty, unit_amount)
            priced = code is not None or amount != 0
            tax_type = self.profile.no_tax.tax_type if line_amount_types == "NoTax" or not priced else tax.tax_type
            percent = self.profile.no_tax.percent if tax_type == self.profile.no_tax.tax_type else tax.percent
            account = self.accounts.get(code) if code else None
            made.append(LineItem(
                line_item_id=self.new_id(),
                description=description,
                quantity=qty,
                unit_amount=unit_amount,
                tax_type=tax_type,
                tax_amount=money.line_tax(amount, percent, line_amount_types),
                line_amount=amount,
                account_code=code,
                account_id=account.account_id if account else None,
                tracking=self._tracking(tracking),
            ))
        return tuple(made)

    def purchase_order(
        self,
        supplier: Contact,
        specs: Sequence[LineSpec],
        *,
        status: str,
        day: date,
        line_amount_types: str = "Exclusive",
        updated: datetime | None = None,
    ) -> PurchaseOrder:
        lines = self.lines(specs, line_amount_types)
        sub, tax, total = money.document_totals(((li.line_amount, li.tax_amount) for li in lines), line_amount_types)
        code, rate = self.currency(supplier)
        po = PurchaseOrder(
            purchase_order_id=self.new_id(), number=self.next_po_number(), contact_id=supplier.contact_id,
            day=day, delivery_day=day + timedelta(days=14), status=status,
            line_amount_types=line_amount_types, lines=lines, sub_total=sub, total_tax=tax, total=total,
            currency_code=code, currency_rate=rate, updated=updated or self.stamp(day),
            attention_to="Receiving dock", delivery_address="12 Wharf Road",
            delivery_instructions="Deliver between 8am and 4pm",
        )
        self.purchase_orders.append(po)
        return po

    def bill(
        self,
        supplier: Contact,
        specs: Sequence[LineSpec],
        *,
        number: str,
        status: str,
        day: date,
        po_numbers: Sequence[str] = (),
        line_amount_types: str = "Exclusive",
        updated: datetime | None = None,
        paid_fraction: Decimal | None = None,
    ) -> Invoice:
        """Make a bill; `po_numbers` is the truth for the answer key, whatever `number` says."""
        invoice = self._invoice("ACCPAY", supplier, specs, number, status, day, line_amount_types,
                                updated, paid_fraction)
        self.answer_key[invoice.invoice_id] = list(po_numbers)
        return invoice

    def sales_invoice(self, customer: Contact, specs: Sequence[LineSpec], *, status: str, day: date,
                      reference: str = "") -> Invoice:
        number = f"INV-{self._next_sales:04d}"
        self._next_sales += 1
        return self._invoice("ACCREC", customer, specs, number, status, day, "Exclusive", None, None,
                             reference=reference)

    def _invoice(
        self,
        kind: str,
        contact: Contact,
        specs: Sequence[LineSpec],
        number: str,
        status: str,
        day: date,
        line_amount_types: str,
        updated: datetime | None,
        paid_fraction: Decimal | None,
        reference: str = "",
    ) -> Invoice:
        lines = self.lines(specs, line_amount_types, sales=kind == "ACCREC")
        sub, tax, total = money.document_totals(((li.line_amount, li.tax_amount) for li in lines), line_amount_types)
        code, rate = self.currency(contact) if kind == "ACCPAY" else (self.profile.base_currency, Decimal("1.000000"))
        if status == "PAID":
            paid_fraction = Decimal(1)
        paid = money.cents(total * paid_fraction) if paid_fraction else money.ZERO
        payments: tuple[Payment, ...] = ()
        pay_day = day + timedelta(days=10)
        if paid:
            payments = (Payment(self.new_id(), pay_day, paid, rate, "Payment run"),)
        due = money.ZERO if status in ("VOIDED", "DELETED") else total - paid
        invoice = Invoice(
            invoice_id=self.new_id(), type=kind, number=number, contact_id=contact.contact_id, day=day,
            due_day=day + timedelta(days=contact.bill_terms_days), status=status,
            line_amount_types=line_amount_types, lines=lines, sub_total=sub, total_tax=tax, total=total,
            amount_paid=paid, amount_due=due, currency_code=code, currency_rate=rate,
            updated=updated or self.stamp(pay_day if paid else day), reference=reference,
            payments=payments, fully_paid_on=pay_day if status == "PAID" else None,
        )
        self.invoices.append(invoice)
        return invoice

    def _tracking(self, pairs: tuple[tuple[str, str], ...]) -> tuple[LineTracking, ...]:
        made = []
        for category_name, option_name in pairs:
            category = self.tracking[category_name]
            option = category.option(option_name)
            made.append(LineTracking(category.category_id, category.name, option.option_id, option.name))
        return tuple(made)
