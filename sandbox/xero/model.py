"""Typed records of one sandbox organisation: what the generator builds and the renderer serves.

Records are frozen; a change (the admin `update`) replaces a record with a new one, which also drops
its cached JSON. Amounts are Decimals with two places; dates are `date`, timestamps UTC `datetime`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sandbox.xero.attachments import Attachment


@dataclass(frozen=True, slots=True)
class TaxRate:
    tax_type: str
    name: str
    percent: Decimal


@dataclass(frozen=True, slots=True)
class Account:
    account_id: str
    code: str
    name: str
    type: str
    status: str
    tax_type: str
    account_class: str
    updated: datetime
    description: str = ""
    system_account: str = ""
    bank_account_number: str = ""


@dataclass(frozen=True, slots=True)
class TrackingOption:
    option_id: str
    name: str
    status: str


@dataclass(frozen=True, slots=True)
class TrackingCategory:
    category_id: str
    name: str
    status: str
    options: tuple[TrackingOption, ...]

    def option(self, name: str) -> TrackingOption:
        return next(o for o in self.options if o.name == name)


@dataclass(frozen=True, slots=True)
class Contact:
    contact_id: str
    name: str
    status: str
    is_supplier: bool
    is_customer: bool
    updated: datetime
    email: str = ""
    contact_number: str = ""
    account_number: str = ""
    tax_number: str = ""
    default_currency: str | None = None
    merged_to: str | None = None
    purchases_account_code: str | None = None
    bill_terms_days: int = 30
    city: str = ""
    country: str = ""


@dataclass(frozen=True, slots=True)
class LineTracking:
    category_id: str
    category_name: str
    option_id: str
    option_name: str


@dataclass(frozen=True, slots=True)
class LineItem:
    line_item_id: str
    description: str
    quantity: Decimal
    unit_amount: Decimal
    tax_type: str
    tax_amount: Decimal
    line_amount: Decimal
    account_code: str | None = None
    account_id: str | None = None
    item_code: str | None = None
    tracking: tuple[LineTracking, ...] = ()


@dataclass(frozen=True, slots=True)
class Payment:
    payment_id: str
    day: date
    amount: Decimal
    currency_rate: Decimal
    reference: str


@dataclass(frozen=True, slots=True)
class AppliedCredit:
    """A credit note as the invoice it is applied to lists it (Xero's `Invoice.CreditNotes`)."""

    credit_note_id: str
    number: str
    amount: Decimal  # applied to this invoice (AppliedAmount)
    day: date  # of the allocation
    total: Decimal  # the credit note's total


@dataclass(frozen=True, slots=True)
class Invoice:
    """A bill (`ACCPAY`) or a sales invoice (`ACCREC`)."""

    invoice_id: str
    type: str
    number: str
    contact_id: str
    day: date
    due_day: date
    status: str
    line_amount_types: str
    lines: tuple[LineItem, ...]
    sub_total: Decimal
    total_tax: Decimal
    total: Decimal
    amount_paid: Decimal
    amount_due: Decimal
    currency_code: str
    currency_rate: Decimal
    updated: datetime
    reference: str = ""
    payments: tuple[Payment, ...] = ()
    fully_paid_on: date | None = None
    attachments: tuple[Attachment, ...] = ()  # the supplier's documents (sandbox.xero.attachments)
    credits: tuple[AppliedCredit, ...] = ()  # credit notes applied to it (sandbox.xero.credits.allocate)
    cache: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False, hash=False)

    @property
    def amount_credited(self) -> Decimal:
        """Xero's AmountCredited: the credit notes applied (the sandbox makes no pre- or overpayments)."""
        return sum((c.amount for c in self.credits), Decimal("0.00"))


@dataclass(frozen=True, slots=True)
class Allocation:
    """Part of a credit note applied to an invoice (a bill for ACCPAYCREDIT)."""

    allocation_id: str
    invoice_id: str
    amount: Decimal
    day: date


@dataclass(frozen=True, slots=True)
class CreditNote:
    """A supplier credit note (`ACCPAYCREDIT`) or a sales one (`ACCRECCREDIT`), with its allocations."""

    credit_note_id: str
    type: str
    number: str
    contact_id: str
    day: date
    status: str
    line_amount_types: str
    lines: tuple[LineItem, ...]
    sub_total: Decimal
    total_tax: Decimal
    total: Decimal
    remaining_credit: Decimal
    currency_code: str
    currency_rate: Decimal
    updated: datetime
    reference: str = ""
    allocations: tuple[Allocation, ...] = ()
    fully_paid_on: date | None = None
    attachments: tuple[Attachment, ...] = ()  # the supplier's credit note document (sandbox.xero.attachments)
    cache: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False, hash=False)


@dataclass(frozen=True, slots=True)
class PurchaseOrder:
    purchase_order_id: str
    number: str
    contact_id: str
    day: date
    delivery_day: date
    status: str
    line_amount_types: str
    lines: tuple[LineItem, ...]
    sub_total: Decimal
    total_tax: Decimal
    total: Decimal
    currency_code: str
    currency_rate: Decimal
    updated: datetime
    reference: str = ""
    attention_to: str = ""
    delivery_address: str = ""
    delivery_instructions: str = ""
    cache: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False, hash=False)


@dataclass(frozen=True, slots=True)
class Organisation:
    organisation_id: str
    name: str
    legal_name: str
    short_code: str
    version: str
    country_code: str
    base_currency: str
    timezone: str
    created: datetime
    tax_number: str
    line_of_business: str


@dataclass(slots=True)
class Tenant:
    """One organisation: its settings, masters and documents, plus the PO answer key for its bills."""

    index: int
    tenant_id: str
    organisation: Organisation
    tax_rates: tuple[TaxRate, ...]
    accounts: list[Account]
    tracking_categories: list[TrackingCategory]
    contacts: list[Contact]
    purchase_orders: list[PurchaseOrder]
    invoices: list[Invoice]
    answer_key: dict[str, list[str]]
    connected: datetime
    credit_notes: list[CreditNote] = field(default_factory=list)

    @property
    def bills(self) -> list[Invoice]:
        return [i for i in self.invoices if i.type == "ACCPAY"]

    @property
    def name(self) -> str:
        return self.organisation.name

    def account(self, code: str) -> Account:
        return next(a for a in self.accounts if a.code == code)

    def contact(self, contact_id: str) -> Contact:
        return next(c for c in self.contacts if c.contact_id == contact_id)

    def tracking_category(self, name: str) -> TrackingCategory:
        return next(t for t in self.tracking_categories if t.name == name)

    def purchase_order(self, number: str) -> PurchaseOrder:
        return next(p for p in self.purchase_orders if p.number == number)


@dataclass(slots=True)
class Dataset:
    """Everything one seed builds; `tenants[i]` depends only on (seed, i, bills)."""

    seed: int
    bills_per_tenant: int
    tenants: list[Tenant]

    def tenant(self, tenant_id: str) -> Tenant:
        for tenant in self.tenants:
            if tenant.tenant_id == tenant_id:
                return tenant
        raise KeyError(tenant_id)
