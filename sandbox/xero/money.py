"""Line and document amounts computed the way Xero does, in Decimal, so totals always add up exactly.

Per line: LineAmount = Quantity x UnitAmount rounded to cents; TaxAmount is rounded per line.
Per document: TotalTax = sum of line taxes; Exclusive and NoTax: SubTotal = sum of LineAmounts;
Inclusive: the LineAmounts already hold the tax, so SubTotal = sum(LineAmount) - TotalTax.
In every case Total = SubTotal + TotalTax.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
HUNDRED = Decimal(100)

LINE_AMOUNT_TYPES = ("Exclusive", "Inclusive", "NoTax")


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def line_amount(quantity: Decimal, unit_amount: Decimal) -> Decimal:
    return cents(quantity * unit_amount)


def line_tax(amount: Decimal, percent: Decimal, line_amount_types: str) -> Decimal:
    """Tax on one line; for Inclusive amounts the tax is the part of the amount above the net."""
    if line_amount_types == "NoTax" or percent == 0:
        return ZERO
    if line_amount_types == "Exclusive":
        return cents(amount * percent / HUNDRED)
    if line_amount_types == "Inclusive":
        return cents(amount * percent / (HUNDRED + percent))
    raise ValueError(f"unknown LineAmountTypes {line_amount_types!r}")


def document_totals(
    amounts_and_taxes: Iterable[tuple[Decimal, Decimal]], line_amount_types: str
) -> tuple[Decimal, Decimal, Decimal]:
    """(SubTotal, TotalTax, Total) from each line's (LineAmount, TaxAmount)."""
    amounts = ZERO
    taxes = ZERO
    for amount, tax in amounts_and_taxes:
        amounts += amount
        taxes += tax
    sub_total = amounts - taxes if line_amount_types == "Inclusive" else amounts
    return sub_total, taxes, sub_total + taxes
