"""Do a bill's lines, tax and totals add up to Xero's own totals? Decimal only, to the cent.

Exclusive: lines are net, Total = SubTotal + TotalTax. Inclusive: lines include their tax, so the lines
sum to Total and SubTotal = Total - TotalTax. NoTax: no tax at all. In every case each line is
quantity x unit amount, rounded half up to the cent (Xero's own rounding).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from connector.domain.reasons import Reason
from connector.domain.records import XeroBill

CENT = Decimal("0.01")


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def check_totals(bill: XeroBill) -> list[Reason]:
    lines = cents(sum((line.line_amount for line in bill.lines), Decimal("0")))
    tax = cents(sum((line.tax_amount for line in bill.lines), Decimal("0")))
    sub_total, total_tax, total = cents(bill.sub_total), cents(bill.total_tax), cents(bill.total)
    checks: list[tuple[str, Decimal, Decimal]] = []
    for line in bill.lines:
        if line.unit_amount and line.quantity:
            checks.append((f"line {line.line_number} amount (quantity x unit amount)",
                           cents(line.quantity * line.unit_amount), cents(line.line_amount)))
    if bill.line_amount_types == "Exclusive":
        checks += [("subtotal (sum of lines)", lines, sub_total), ("total tax (sum of line tax)", tax, total_tax),
                   ("total (subtotal + tax)", sub_total + total_tax, total)]
    elif bill.line_amount_types == "Inclusive":
        checks += [("total (sum of tax-inclusive lines)", lines, total),
                   ("total tax (sum of line tax)", tax, total_tax),
                   ("subtotal (total - tax)", total - total_tax, sub_total)]
    elif bill.line_amount_types == "NoTax":
        checks += [("total tax (no tax)", Decimal("0.00"), total_tax), ("subtotal (sum of lines)", lines, sub_total),
                   ("total (subtotal)", sub_total, total)]
    else:
        return [Reason("money_mismatch", {"what": "line amount types", "expected": "Exclusive, Inclusive or NoTax",
                                          "actual": bill.line_amount_types})]
    return [
        Reason("money_mismatch", {"what": what, "expected": str(expected), "actual": str(actual)})
        for what, expected, actual in checks
        if expected != actual
    ]
