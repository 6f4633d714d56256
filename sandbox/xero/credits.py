"""Supplier and sales credit notes of one tenant, with their allocations to invoices.

Made after the rest of the tenant from their own random stream (seeded from the seed, the tenant index
and "credit-notes"), so adding them changed no other record of the dataset. About one supplier credit
note per 25 bills (at least four): half are returns against an AUTHORISED bill of the same supplier,
allocated to it (in part, or whole, which makes the credit PAID as Xero does), the rest unallocated
price corrections, drafts and voided ones; two sales credit notes (ACCRECCREDIT), which the connector
must ignore. A credit note's lines are a part of its bill's first line, on the same account, tracking,
currency and amount type, so it maps like its bill.

An allocation moves both documents as Xero does (`allocate`): the credit's RemainingCredit falls (PAID at
zero), the bill's AmountDue falls and its AmountCredited rises by the amount, the bill lists the credit
in its CreditNotes, both get a new UpdatedDateUTC, and a bill credited in full is PAID. Xero refuses
more than the credit has left or the bill still owes, and a credit of another supplier or currency.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal

from sandbox.xero import money
from sandbox.xero.builder import LineSpec, TenantBuilder
from sandbox.xero.masters import PROFILES
from sandbox.xero.model import Allocation, AppliedCredit, Contact, CreditNote, Invoice, Tenant

KINDS = (("allocated", 50), ("unallocated", 30), ("draft", 10), ("voided", 10))
FRACTIONS = (Decimal("0.1"), Decimal("0.25"), Decimal("0.5"), Decimal("1"))


def credit_note_builder(seed: int, tenant: Tenant, salt: str = "") -> TenantBuilder:
    """A builder on the credit notes' own random stream, over the tenant's masters."""
    rng = random.Random(f"xero-sandbox/{seed}/{tenant.index}/credit-notes{salt}")
    return TenantBuilder(rng, PROFILES[tenant.index % len(PROFILES)], tenant.accounts, tenant.tracking_categories)


def build_credit_notes(seed: int, tenant: Tenant) -> list[CreditNote]:
    """The tenant's credit notes; the bills they are allocated to are replaced in `tenant.invoices` by the
    bills as the allocations left them."""
    b = credit_note_builder(seed, tenant)
    rng = b.rng
    bills = [i for i in tenant.invoices if i.type == "ACCPAY" and i.status == "AUTHORISED" and i.lines
             and any(li.line_amount > 0 for li in i.lines)]
    suppliers = [c for c in tenant.contacts if c.is_supplier and c.status == "ACTIVE" and not c.merged_to]
    customers = [c for c in tenant.contacts if c.is_customer]
    contacts = {c.contact_id: c for c in tenant.contacts}
    credited: dict[str, Invoice] = {}  # bills as the allocations so far left them
    made: list[CreditNote] = []
    wanted = max(4, len(tenant.bills) // 25)
    for n in range(wanted):
        kind = rng.choices([k for k, _ in KINDS], weights=[w for _, w in KINDS])[0] if n >= 2 else (
            "allocated", "unallocated")[n]
        bill = rng.choice(bills) if bills else None
        if kind == "allocated" and bill is not None:
            note, after = credit_against(b, credited.get(bill.invoice_id, bill), contacts[bill.contact_id],
                                         number=f"CN-{1001 + n}", fraction=rng.choice(FRACTIONS))
            credited[bill.invoice_id] = after
            made.append(note)
            continue
        supplier = contacts[bill.contact_id] if bill is not None else rng.choice(suppliers)
        status = {"draft": "DRAFT", "voided": "VOIDED"}.get(kind, "AUTHORISED")
        correction: list[LineSpec] = [("Price correction", "1", "25.00", "400", ())]
        specs = _part_of(bill, Decimal("0.2")) if bill is not None else correction
        made.append(_credit(b, "ACCPAYCREDIT", supplier, specs, number=f"CN-{1001 + n}", status=status,
                            day=(bill.day if bill else b.day(30)) + timedelta(days=rng.randint(1, 9)),
                            line_amount_types=bill.line_amount_types if bill else "Exclusive",
                            reference="Price correction", currency=(bill.currency_code, bill.currency_rate)
                            if bill else None))
    for n, customer in enumerate(customers[:2]):
        made.append(_credit(b, "ACCRECCREDIT", customer, [("Refund of overcharge", "1", "40.00", "200", ())],
                            number=f"CN-{9001 + n}", status="AUTHORISED", day=b.day(15 + n), reference="Refund"))
    tenant.invoices[:] = [credited.get(i.invoice_id, i) for i in tenant.invoices]
    return made


def credit_against(b: TenantBuilder, bill: Invoice, supplier: Contact, *, number: str, fraction: Decimal,
                   updated: datetime | None = None, allocate: bool = True) -> tuple[CreditNote, Invoice]:
    """A return against `bill`: part of its first line, allocated to it (unless `allocate` is false, or
    the bill owes nothing more). Returns the credit note and the bill as the allocation left it."""
    day = bill.day + timedelta(days=b.rng.randint(1, 9))
    note = _credit(b, "ACCPAYCREDIT", supplier, _part_of(bill, fraction), number=number, status="AUTHORISED",
                   day=day, line_amount_types=bill.line_amount_types, reference=f"Return against {bill.number}",
                   currency=(bill.currency_code, bill.currency_rate), updated=updated)
    if not allocate:
        return note, bill
    applied = min(note.total, bill.amount_due)
    if b.rng.random() < 0.3:  # part of the credit is kept for a later bill
        applied = money.cents(applied / 2)
    allocation_id = b.new_id()
    if applied <= 0:  # nothing left to credit (an earlier credit settled the bill): kept for a later one
        return note, bill
    return allocate_credit(note, bill, applied, day=day, at=note.updated, allocation_id=allocation_id)


def allocate_credit(note: CreditNote, bill: Invoice, amount: Decimal, *, day: date, at: datetime,
                    allocation_id: str) -> tuple[CreditNote, Invoice]:
    """Apply `amount` of `note` to `bill` as Xero does; returns both as they now stand (stamped `at`).
    Raises ValueError for what Xero refuses (naming why)."""
    if note.status != "AUTHORISED" or bill.status != "AUTHORISED":
        raise ValueError(f"only AUTHORISED documents take allocations (credit {note.status}, bill {bill.status})")
    if (note.type, bill.type) not in (("ACCPAYCREDIT", "ACCPAY"), ("ACCRECCREDIT", "ACCREC")):
        raise ValueError(f"a {note.type} credit note cannot be allocated to an {bill.type} invoice")
    if note.contact_id != bill.contact_id or note.currency_code != bill.currency_code:
        raise ValueError("the credit note and the invoice must have the same contact and currency")
    if not 0 < amount <= min(note.remaining_credit, bill.amount_due):
        raise ValueError(f"amount {amount} must be above 0 and at most the credit left ({note.remaining_credit}) "
                         f"and the amount due ({bill.amount_due})")
    amount = money.cents(amount)
    remaining, due = note.remaining_credit - amount, bill.amount_due - amount
    note = _replace(note, allocations=(*note.allocations, Allocation(allocation_id, bill.invoice_id, amount, day)),
                    remaining_credit=remaining, status="PAID" if remaining == 0 else note.status,
                    fully_paid_on=day if remaining == 0 else note.fully_paid_on, updated=max(note.updated, at))
    bill = replace(bill, credits=(*bill.credits, AppliedCredit(note.credit_note_id, note.number, amount, day,
                                                               note.total)),
                   amount_due=due, status="PAID" if due == 0 else bill.status,
                   fully_paid_on=day if due == 0 else bill.fully_paid_on, updated=max(bill.updated, at), cache={})
    return note, bill


def _part_of(bill: Invoice, fraction: Decimal) -> list[LineSpec]:
    line = next(li for li in bill.lines if li.line_amount > 0)
    quantity = line.quantity if fraction == 1 else Decimal("1")
    unit = line.unit_amount if fraction == 1 else money.cents(line.line_amount * fraction)
    tracking = tuple((t.category_name, t.option_name) for t in line.tracking)
    return [(f"Return: {line.description}", str(quantity), str(unit), line.account_code, tracking)]


def _credit(b: TenantBuilder, kind: str, contact: Contact, specs: list[LineSpec], *, number: str, status: str,
            day: date, line_amount_types: str = "Exclusive", reference: str = "",
            currency: tuple[str, Decimal] | None = None, updated: datetime | None = None) -> CreditNote:
    lines = b.lines(specs, line_amount_types, sales=kind == "ACCRECCREDIT")
    sub, tax, total = money.document_totals(((li.line_amount, li.tax_amount) for li in lines), line_amount_types)
    code, rate = currency or (b.profile.base_currency, Decimal("1.000000"))
    return CreditNote(
        credit_note_id=b.new_id(), type=kind, number=number, contact_id=contact.contact_id, day=day, status=status,
        line_amount_types=line_amount_types, lines=lines, sub_total=sub, total_tax=tax, total=total,
        remaining_credit=money.ZERO if status in ("VOIDED", "DELETED") else total, currency_code=code,
        currency_rate=rate, updated=updated or b.stamp(day), reference=reference,
    )


def _replace(note: CreditNote, **changes: object) -> CreditNote:
    return replace(note, **changes, cache={})  # type: ignore[arg-type]
