"""Money adds up to Xero's own totals, to the cent, for any lines, in all three LineAmountTypes."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from connector.domain.money import check_totals
from connector.domain.records import parse_bill

AMOUNTS = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("99999.99"), places=2)
QUANTITIES = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("500"), places=4)
RATES = st.sampled_from([Decimal("0"), Decimal("0.10"), Decimal("0.15"), Decimal("0.20"), Decimal("0.125")])
KINDS = st.sampled_from(["Exclusive", "Inclusive", "NoTax"])


def cents(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def bill_from(kind: str, lines: list[tuple[Decimal, Decimal, Decimal]]) -> dict[str, Any]:
    """A bill built the way Xero builds one: line = quantity x unit, tax per line, totals from lines."""
    items, line_total, tax_total = [], Decimal("0"), Decimal("0")
    for quantity, unit, rate in lines:
        amount = cents(quantity * unit)
        if kind == "NoTax":
            tax = Decimal("0")
        elif kind == "Exclusive":
            tax = cents(amount * rate)
        else:
            tax = cents(amount - amount / (1 + rate))
        items.append({"Quantity": str(quantity), "UnitAmount": str(unit), "LineAmount": str(amount),
                      "TaxAmount": str(tax), "AccountCode": "400"})
        line_total, tax_total = line_total + amount, tax_total + tax
    if kind == "Inclusive":
        total, sub_total = line_total, line_total - tax_total
    else:
        sub_total, total = line_total, line_total + tax_total
    return {"InvoiceID": "i", "Type": "ACCPAY", "Status": "AUTHORISED", "Contact": {"ContactID": "c"},
            "UpdatedDateUTC": "/Date(0+0000)/", "LineAmountTypes": kind, "LineItems": items,
            "SubTotal": str(sub_total), "TotalTax": str(tax_total), "Total": str(total)}


LINES = st.lists(st.tuples(QUANTITIES, AMOUNTS, RATES), min_size=1, max_size=8)


@given(KINDS, LINES)
def test_a_bill_that_adds_up_raises_nothing(kind: str, lines: list[tuple[Decimal, Decimal, Decimal]]) -> None:
    assert check_totals(parse_bill(bill_from(kind, lines), tenant_id="t")) == []


@given(KINDS, LINES, st.sampled_from(["SubTotal", "TotalTax", "Total"]), st.sampled_from(["0.01", "-0.01", "1"]))
def test_a_cent_off_anywhere_is_caught(kind: str, lines: list[tuple[Decimal, Decimal, Decimal]], field: str,
                                       delta: str) -> None:
    bill = bill_from(kind, lines)
    bill[field] = str(Decimal(bill[field]) + Decimal(delta))
    reasons = check_totals(parse_bill(bill, tenant_id="t"))
    assert reasons
    assert all(r.code == "money_mismatch" for r in reasons)
