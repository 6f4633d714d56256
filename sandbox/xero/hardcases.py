"""The curated hard cases: the first bills and purchase orders of every tenant.

Every tenant starts with the same 25 curated bills (in this order) so that even a 25-bill demo tenant
exercises each case; with fewer bills only the first ones are made. The 24 curated POs (PO-0001 ..
PO-0024) always exist. Generated documents follow.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, time, timedelta
from decimal import Decimal

from sandbox.xero.builder import LineSpec, TenantBuilder
from sandbox.xero.choices import DATASET_END, PO_NUMBER_SEPARATOR
from sandbox.xero.model import Contact, PurchaseOrder
from sandbox.xero.names import HARD_DESCRIPTIONS

#: Number of curated bills at the start of every tenant.
CURATED_BILLS = 25

Tracking = tuple[tuple[str, str], ...]
OPS_NORTH: Tracking = (("Department", "Operations"), ("Region", "North"))
SALES_SOUTH: Tracking = (("Department", "Sales"), ("Region", "South"))
RND: Tracking = (("Department", "R&D"),)
ARCHIVED_OPTIONS: Tracking = (("Department", "Marketing (old)"), ("Region", "Central (closed)"))


def same_second_stamps() -> list[datetime]:
    """Four UpdatedDateUTC values inside one second (two equal to the millisecond)."""
    second = datetime.combine(DATASET_END.date() - timedelta(days=2), time(10, 15, 42), DATASET_END.tzinfo)
    return [second + timedelta(milliseconds=ms) for ms in (103, 457, 457, 999)]


def build_curated(b: TenantBuilder, suppliers: dict[str, Contact], bills: int) -> None:
    """Make the curated POs, then the first `bills` curated bills."""
    s = suppliers
    po: dict[int, PurchaseOrder] = {}

    def make_po(n: int, key: str, status: str, specs: Sequence[LineSpec], days_ago: int,
                lat: str = "Exclusive") -> None:
        po[n] = b.purchase_order(s[key], specs, status=status, day=b.day(days_ago), line_amount_types=lat)

    std: list[LineSpec] = [("Copper pipe 15mm, 3m lengths", "10", "18.40", "473", OPS_NORTH),
           ("Call-out fee", "1", "95.00", "473", OPS_NORTH)]
    make_po(1, "obrien", "AUTHORISED", std, 40)
    make_po(2, "quoted", "AUTHORISED", [("A4 copy paper, 80gsm (box of 5 reams)", "8", "32.50", "461", SALES_SOUTH)],
            39)
    make_po(3, "tokyo", "BILLED", [("Precision calipers", "2", "412.00", "710", RND)], 38)
    make_po(4, "formula", "AUTHORISED", [("Advisory hours", "20", "180.00", "412", RND)], 37)
    make_po(5, "plus", "AUTHORISED", [("Pallet freight Auckland-Wellington", "3", "240.00", "425", OPS_NORTH)], 36)
    make_po(6, "plus", "AUTHORISED", [("Courier satchels", "100", "1.85", "FRT-IN", OPS_NORTH)], 36)
    make_po(7, "minus", "BILLED", [("Steel brackets", "50", "6.20", "473", OPS_NORTH)], 35)
    make_po(8, "at", "AUTHORISED", [("Office deep clean", "4", "310.00", "408", SALES_SOUTH)], 34)
    make_po(9, "muller", "BILLED", [("Ergonomic chairs", "6", "289.00", "710", OPS_NORTH),
                                    ("Shipping", "1", "145.50", "425", OPS_NORTH)], 33)
    make_po(10, "comma", "AUTHORISED", [("Legal review", "5", "264.50", "412", SALES_SOUTH)], 32, "Inclusive")
    make_po(11, "cafe", "AUTHORISED", [("Catering for staff event", "1", "860.00", "420", SALES_SOUTH)], 31, "NoTax")
    make_po(12, "bright", "AUTHORISED", [("Electrical works", "1", "1450.00", "473", OPS_NORTH)], 30)
    make_po(13, "green", "AUTHORISED", [("Grounds maintenance (quarterly)", "1", "1200.00", "473", OPS_NORTH)], 29)
    make_po(14, "harbour", "AUTHORISED", [("Lunch platters", "6", "75.00", "420", SALES_SOUTH)], 28)
    make_po(15, "acme", "BILLED", [("Scaffold hire (old account)", "1", "2300.00", "477", ARCHIVED_OPTIONS)], 340)
    make_po(16, "acme_dup", "BILLED", [("Scaffold planks", "40", "22.00", "477", ARCHIVED_OPTIONS)], 335)
    make_po(17, "bright", "AUTHORISED", [("LED panel lights", "12", "64.00", "473", OPS_NORTH)], 27)
    make_po(18, "green", "AUTHORISED", [("Tree removal", "1", "980.00", "473", OPS_NORTH)], 26)
    make_po(19, "harbour", "AUTHORISED", [("Coffee beans 1kg", "10", "38.00", "420", SALES_SOUTH)], 25)
    make_po(20, "cafe", "AUTHORISED", [("Barista training", "2", "350.00", "420", SALES_SOUTH)], 24)
    make_po(21, "obrien", "DRAFT", [("Hot water cylinder", "1", "1890.00", "473", OPS_NORTH)], 5)
    make_po(22, "muller", "SUBMITTED", [("Filing cabinets", "3", "199.00", "710", OPS_NORTH)], 4)
    make_po(23, "minus", "DELETED", [("Aluminium sheet", "10", "88.00", "473", OPS_NORTH)], 20)
    make_po(24, "acme", "AUTHORISED", [("Safety boots", "15", "129.00", "429", OPS_NORTH)], 3)

    def from_po(n: int, price_factor: str = "1", qty_factor: str = "1") -> list[LineSpec]:
        return [(li.description, str(li.quantity * Decimal(qty_factor)), str(li.unit_amount * Decimal(price_factor)),
                 li.account_code, tuple((t.category_name, t.option_name) for t in li.tracking))
                for li in po[n].lines]

    def num(n: int) -> str:
        return po[n].number

    stamps = same_second_stamps()
    hard_lines: list[LineSpec] = [
        (text, "1", "-15.00" if text.startswith("-15%") else "12.50", "429", OPS_NORTH) for text in HARD_DESCRIPTIONS
    ]
    hard_lines.append(("x" * 1000 + " (a 1,000-character description)", "1", "1.00", "429", ()))
    heading: LineSpec = ("Works completed as per quote Q-2231 (heading line, no account)", "0", "0.00", None, ())

    cases: list[Callable[[], object]] = [
        # 1-4 share one UpdatedDateUTC second; 1 is the plain happy path.
        lambda: b.bill(s["obrien"], from_po(1), number=num(1), status="AUTHORISED", day=b.day(22),
                       po_numbers=[num(1)], updated=stamps[0]),
        lambda: b.bill(s["quoted"], from_po(2), number="po 0002", status="AUTHORISED", day=b.day(21),
                       po_numbers=[num(2)], updated=stamps[1]),
        lambda: b.bill(s["tokyo"], from_po(3), number="P.O. 0003", status="AUTHORISED", day=b.day(21),
                       po_numbers=[num(3)], updated=stamps[2]),
        lambda: b.bill(s["formula"], from_po(4, qty_factor="0.5"), number="PO0004 / delivery 2",
                       status="AUTHORISED", day=b.day(20), po_numbers=[num(4)], updated=stamps[3]),
        lambda: b.bill(s["plus"], from_po(5) + from_po(6), number=PO_NUMBER_SEPARATOR.join([num(5), num(6)]),
                       status="AUTHORISED", day=b.day(20), po_numbers=[num(5), num(6)]),
        lambda: b.bill(s["minus"], from_po(7, price_factor="1.1"), number=num(7), status="AUTHORISED",
                       day=b.day(19), po_numbers=[num(7)]),
        lambda: b.bill(s["at"], from_po(8, qty_factor="0.75"), number=num(8), status="AUTHORISED",
                       day=b.day(19), po_numbers=[num(8)]),
        lambda: b.bill(s["muller"], from_po(9), number=num(9), status="AUTHORISED", day=b.day(18),
                       po_numbers=[num(9)]),
        lambda: b.bill(s["comma"], from_po(10), number=num(10), status="AUTHORISED", day=b.day(18),
                       po_numbers=[num(10)], line_amount_types="Inclusive"),
        lambda: b.bill(s["cafe"], from_po(11), number=num(11), status="AUTHORISED", day=b.day(17),
                       po_numbers=[num(11)], line_amount_types="NoTax"),
        lambda: b.bill(s["bright"], hard_lines, number=num(12), status="AUTHORISED", day=b.day(17),
                       po_numbers=[num(12)]),
        lambda: b.bill(s["green"], [heading, *from_po(13)], number=num(13), status="AUTHORISED",
                       day=b.day(16), po_numbers=[num(13)]),
        lambda: b.bill(s["harbour"], [("Lunch platters (account not chosen yet)", "6", "75.00", None, ())],
                       number=num(14), status="DRAFT", day=b.day(16), po_numbers=[num(14)]),
        lambda: b.bill(s["acme"], from_po(15), number=num(15), status="PAID", day=b.day(330),
                       po_numbers=[num(15)]),
        lambda: b.bill(s["acme_dup"], from_po(16), number=num(16), status="PAID", day=b.day(325),
                       po_numbers=[num(16)]),
        lambda: b.bill(s["contoso"], [("Stationery bundle", "1", "245.90", "461", SALES_SOUTH)],
                       number="CT-88812", status="AUTHORISED", day=b.day(200)),
        lambda: b.bill(s["pacific"], [("Ocean freight, container 20ft", "1", "2150.00", "FRT-IN", OPS_NORTH)],
                       number="PO-9999", status="AUTHORISED", day=b.day(15)),
        lambda: b.bill(s["shenzhen"], [("LED driver boards", "200", "3.45", "310", RND)],
                       number="INV-20931", status="AUTHORISED", day=b.day(15)),
        lambda: b.bill(s["obrien"], [("Emergency call-out", "1", "180.00", "473", OPS_NORTH)],
                       number="", status="AUTHORISED", day=b.day(14)),
        lambda: b.bill(s["quoted"], [("Point-of-sale rolls", "20", "4.10", "461", SALES_SOUTH)],
                       number="POS-2231", status="AUTHORISED", day=b.day(14)),
        lambda: b.bill(s["tokyo"], [("Calibration service", "1", "560.00", "473", RND)],
                       number="PO Box 12", status="AUTHORISED", day=b.day(13)),
        lambda: b.bill(s["bright"], from_po(17), number=num(17), status="SUBMITTED", day=b.day(12),
                       po_numbers=[num(17)]),
        lambda: b.bill(s["green"], from_po(18), number=num(18), status="VOIDED", day=b.day(11),
                       po_numbers=[num(18)]),
        lambda: b.bill(s["harbour"], from_po(19), number=num(19), status="DELETED", day=b.day(10),
                       po_numbers=[num(19)]),
        lambda: b.bill(s["cafe"], from_po(20), number=num(20), status="AUTHORISED", day=b.day(9),
                       po_numbers=[num(20)], paid_fraction=Decimal("0.4")),
    ]
    assert len(cases) == CURATED_BILLS
    for make in cases[:bills]:
        make()
