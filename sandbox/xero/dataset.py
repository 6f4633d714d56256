"""Build the whole sandbox dataset from a seed: tenants, masters, purchase orders, bills, sales invoices.

`bills` is per tenant. The first 25 bills of each tenant are the curated hard cases (see hardcases.py);
the rest are generated: about 80% AUTHORISED, most with an exact, existing PO number of the same
supplier and mapped accounts, the rest spread over variant spellings, two POs, unknown PO numbers,
supplier invoice numbers, traps and every other status. Sales invoices (ACCREC), which the connector
must ignore, are interleaved, about one per ten bills and at least three.
"""

from __future__ import annotations

import dataclasses
import random
import string
import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta
from decimal import Decimal

from sandbox.xero.attachments import CREDIT_NOTE_SHARE, attachments_for
from sandbox.xero.builder import LineSpec, TenantBuilder
from sandbox.xero.choices import DATASET_DAYS, DATASET_END, PO_NUMBER_SEPARATOR
from sandbox.xero.credits import build_credit_notes
from sandbox.xero.hardcases import CURATED_BILLS, build_curated
from sandbox.xero.masters import (
    BILL_ACCOUNT_CODES,
    PROFILES,
    TRACKING,
    CountryProfile,
    build_accounts,
    build_tracking,
)
from sandbox.xero.model import Contact, Dataset, Organisation, Tenant
from sandbox.xero.names import (
    CUSTOMERS,
    HARD_SUPPLIERS,
    PRODUCTS,
    QUANTITIES,
    SUPPLIER_FIRST,
    SUPPLIER_INVOICE_FORMS,
    SUPPLIER_SUFFIX,
    SUPPLIER_TRADE,
)

BILL_STATUSES = (("AUTHORISED", 80), ("PAID", 7), ("DRAFT", 4), ("SUBMITTED", 4), ("VOIDED", 3), ("DELETED", 2))
REFERENCE_KINDS = (("exact", 80), ("variant", 4), ("two", 2), ("unknown", 2), ("supplier", 8), ("trap", 4))
AMOUNT_TYPES = (("Exclusive", 85), ("Inclusive", 10), ("NoTax", 5))
EXTRA_PO_STATUSES = ("DRAFT", "SUBMITTED", "AUTHORISED", "DELETED")


def build_dataset(seed: int, tenants: int, bills: int) -> Dataset:
    if tenants < 1 or bills < 0:
        raise ValueError("need at least one tenant and a non-negative bill count")
    return Dataset(seed, bills, [build_tenant(seed, index, bills) for index in range(tenants)])


def build_tenant(seed: int, index: int, bills: int) -> Tenant:
    rng = random.Random(f"xero-sandbox/{seed}/{index}")

    def new_id() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    profile = PROFILES[index % len(PROFILES)]
    tenant_id = new_id()
    organisation = _organisation(rng, new_id, profile, index)
    set_up = organisation.created + timedelta(days=1)
    accounts = build_accounts(profile, new_id, set_up)
    tracking = build_tracking(new_id)
    b = TenantBuilder(rng, profile, accounts, tracking)

    hard = _hard_suppliers(b)
    generated = _generated_suppliers(b, max(8, min(200, bills // 20)))
    customers = [_contact(b, name, customer=True) for name in CUSTOMERS]

    build_curated(b, hard, min(bills, CURATED_BILLS))
    b.sales_invoice(customers[0], [("Consulting", "10", "150.00", "200", ())], status="AUTHORISED",
                    day=b.day(20), reference="PO-0001")
    b.sales_invoice(customers[1], [("Event tickets", "40", "25.00", "260", ())], status="PAID", day=b.day(18))
    active = generated + [c for c in hard.values() if c.status == "ACTIVE"]
    _generate(b, active, customers, max(0, bills - CURATED_BILLS))
    while sum(1 for i in b.invoices if i.type == "ACCREC") < max(3, bills // 10):
        b.sales_invoice(rng.choice(customers), random_lines(b, rng.choice(customers), sales=True),
                        status="AUTHORISED", day=b.day(rng.randint(1, 30)))

    tenant = Tenant(
        index=index, tenant_id=tenant_id, organisation=organisation, tax_rates=(
            profile.purchase_tax, profile.sales_tax, profile.no_tax),
        accounts=accounts, tracking_categories=tracking,
        contacts=[*hard.values(), *generated, *customers], purchase_orders=b.purchase_orders,
        invoices=b.invoices, answer_key=b.answer_key, connected=DATASET_END,
    )
    tenant.credit_notes = build_credit_notes(seed, tenant)
    attach_documents(seed, tenant)
    return tenant


def _organisation(
    rng: random.Random, new_id: Callable[[], str], profile: CountryProfile, index: int
) -> Organisation:
    suffix = f" {index // len(PROFILES) + 1}" if index >= len(PROFILES) else ""
    return Organisation(
        organisation_id=new_id(), name=profile.org_names[0] + suffix, legal_name=profile.org_names[1] + suffix,
        short_code="!" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(5)),
        version=profile.version, country_code=profile.country_code, base_currency=profile.base_currency,
        timezone=profile.timezone, created=DATASET_END - timedelta(days=DATASET_DAYS + 60),
        tax_number=f"{rng.randrange(100, 999)}-{rng.randrange(100, 999)}-{rng.randrange(100, 999)}",
        line_of_business="Wholesale trade",
    )


def _contact(b: TenantBuilder, name: str, *, customer: bool = False, status: str = "ACTIVE",
             foreign: bool = False, merged_to: str | None = None) -> Contact:
    rng = b.rng
    slug = "".join(ch for ch in name.lower() if ch.isascii() and ch.isalnum())[:12] or "supplier"
    currency = rng.choice(b.profile.foreign_currencies)[0] if foreign else None
    return Contact(
        contact_id=b.new_id(), name=name, status=status, is_supplier=not customer, is_customer=customer,
        updated=b.stamp(b.day(rng.randint(DATASET_DAYS // 2, DATASET_DAYS + 20))),
        email=f"accounts@{slug}.example", account_number=f"{'CUS' if customer else 'SUP'}-{rng.randrange(10000):04d}",
        tax_number=f"{rng.randrange(10, 99)}-{rng.randrange(100000, 999999)}",
        default_currency=currency, merged_to=merged_to,
        purchases_account_code=None if customer else rng.choice(BILL_ACCOUNT_CODES),
        bill_terms_days=rng.choice((7, 14, 20, 30)), city=rng.choice(("Wellington", "Sydney", "London", "Tokyo")),
        country=b.profile.country_code,
    )


def _hard_suppliers(b: TenantBuilder) -> dict[str, Contact]:
    made: dict[str, Contact] = {}
    for spec in HARD_SUPPLIERS:
        merged = made[spec.merged_into].contact_id if spec.merged_into else None
        made[spec.key] = _contact(b, spec.name, status=spec.status, foreign=spec.foreign, merged_to=merged)
    return made


def _generated_suppliers(b: TenantBuilder, count: int) -> list[Contact]:
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < count:
        name = " ".join(p for p in (b.rng.choice(SUPPLIER_FIRST), b.rng.choice(SUPPLIER_TRADE),
                                    b.rng.choice(SUPPLIER_SUFFIX)) if p)
        if name in seen:
            name = f"{name} {len(names) + 2}"
        seen.add(name)
        names.append(name)
    return [_contact(b, name, foreign=b.rng.random() < 0.08) for name in names]


def _pick(rng: random.Random, weighted: Sequence[tuple[str, int]]) -> str:
    return rng.choices([w[0] for w in weighted], weights=[w[1] for w in weighted])[0]


def random_lines(b: TenantBuilder, contact: Contact, *, sales: bool = False) -> list[LineSpec]:
    rng = b.rng
    specs: list[LineSpec] = []
    for _ in range(rng.choice((1, 1, 2, 2, 3, 4))):
        if sales:
            code = "200"
        elif contact.purchases_account_code and rng.random() < 0.7:
            code = contact.purchases_account_code
        else:
            code = rng.choice(BILL_ACCOUNT_CODES)
        tracking: list[tuple[str, str]] = []
        for (category, _status, options), chance in zip(TRACKING, (0.7, 0.5), strict=True):
            if rng.random() < chance:
                tracking.append((category, rng.choice([o for o, s in options if s == "ACTIVE"])))
        specs.append((rng.choice(PRODUCTS), rng.choice(QUANTITIES), f"{rng.randrange(500, 250000) / 100:.2f}",
                      code, tuple(tracking)))
    return specs


def _variant(number: str, rng: random.Random) -> str:
    digits = number.removeprefix("PO-")
    return rng.choice((f"po {digits}", f"P.O. {digits}", f"PO{digits} / delivery 2", f"PO {digits}"))


def _bill_number(kind: str, po_numbers: list[str], i: int, rng: random.Random) -> str:
    """What the bill's InvoiceNumber says, given what it really belongs to."""
    if kind in ("exact", "two"):
        return PO_NUMBER_SEPARATOR.join(po_numbers)
    if kind == "variant":
        return _variant(po_numbers[0], rng)
    if kind == "unknown":
        return f"PO-{90000 + i}"
    if kind == "supplier":
        return rng.choice(SUPPLIER_INVOICE_FORMS).format(n=rng.randrange(1000, 99999))
    return rng.choice(("POS-{n}", "PO Box {n}", "Pos {n}", "TPO-{n}")).format(n=rng.randrange(2, 9999))


def _generate(b: TenantBuilder, suppliers: list[Contact], customers: list[Contact], count: int) -> None:
    rng = b.rng
    for i in range(count):
        days_ago = max(1, min(DATASET_DAYS, DATASET_DAYS - (i * DATASET_DAYS) // max(count, 1) + rng.randint(-3, 3)))
        day = b.day(days_ago)
        supplier = rng.choice(suppliers)
        lat = _pick(rng, AMOUNT_TYPES)
        specs = random_lines(b, supplier)
        kind = _pick(rng, REFERENCE_KINDS)
        po_numbers: list[str] = []
        if kind in ("exact", "variant", "two"):
            for _ in range(2 if kind == "two" else 1):
                po_specs = specs if not po_numbers else random_lines(b, supplier)
                po = b.purchase_order(supplier, po_specs, status=rng.choice(("BILLED", "AUTHORISED")),
                                      day=day - timedelta(days=rng.randint(3, 20)), line_amount_types=lat)
                po_numbers.append(po.number)
                if len(po_numbers) == 2:
                    specs = specs + po_specs
            if rng.random() < 0.1:  # the supplier charged a different price than ordered
                first = specs[0]
                specs = [(first[0], first[1], f"{Decimal(first[2]) * Decimal('1.05'):.2f}", *first[3:]), *specs[1:]]
        number = _bill_number(kind, po_numbers, i, rng)
        status = _pick(rng, BILL_STATUSES)
        partly = Decimal("0.5") if status == "AUTHORISED" and rng.random() < 0.05 else None
        b.bill(supplier, specs, number=number, status=status, day=day, po_numbers=po_numbers,
               line_amount_types=lat, paid_fraction=partly)
        if rng.random() < 0.1:
            other = rng.choice(suppliers)
            b.purchase_order(other, random_lines(b, other), status=rng.choice(EXTRA_PO_STATUSES),
                             day=day)
        if rng.random() < 0.1:
            b.sales_invoice(rng.choice(customers), random_lines(b, rng.choice(customers), sales=True),
                            status=rng.choice(("AUTHORISED", "PAID", "DRAFT")), day=day)


def attach_documents(seed: int, tenant: Tenant) -> None:
    """The suppliers' documents on about a third of the bills and half the supplier credit notes, each kind
    from its own random stream (no other record changes but their HasAttachments)."""
    rng = random.Random(f"xero-sandbox/{seed}/{tenant.index}/attachments")

    def new_id() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    for at, invoice in enumerate(tenant.invoices):
        if invoice.type != "ACCPAY":
            continue
        documents = attachments_for(rng, new_id, invoice.number)
        if documents:
            tenant.invoices[at] = dataclasses.replace(invoice, attachments=documents, cache={})
    # Supplier credit notes from a stream of their own (bills above keep theirs): about half carry the
    # supplier's credit note document, some with a photo or a second scan beside it.
    notes = random.Random(f"xero-sandbox/{seed}/{tenant.index}/credit-note-attachments")

    def note_id() -> str:
        return str(uuid.UUID(int=notes.getrandbits(128), version=4))

    for at, note in enumerate(tenant.credit_notes):
        if note.type != "ACCPAYCREDIT":
            continue
        documents = attachments_for(notes, note_id, note.number, share=CREDIT_NOTE_SHARE)
        if documents:
            tenant.credit_notes[at] = dataclasses.replace(note, attachments=documents, cache={})
