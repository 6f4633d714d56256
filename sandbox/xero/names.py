"""Word lists for the generated part of the dataset, and the hard supplier names every tenant carries.

The hard names exist to break CSV/XML writers, spreadsheet imports and naive string handling: quotes,
apostrophes, commas, umlauts, CJK text, emoji and a leading `=`, `+`, `-` or `@` (formula injection).
"""

from __future__ import annotations

from typing import NamedTuple


class SupplierSpec(NamedTuple):
    key: str
    name: str
    status: str = "ACTIVE"
    foreign: bool = False
    merged_into: str | None = None


#: Curated suppliers, addressed by `key` from the hard cases. Every tenant has all of them.
HARD_SUPPLIERS: tuple[SupplierSpec, ...] = (
    SupplierSpec("obrien", "O'Brien & Sons Plumbing"),
    SupplierSpec("quoted", 'The "Quoted" Paper Company'),
    SupplierSpec("muller", "Müller Bürobedarf GmbH", foreign=True),
    SupplierSpec("tokyo", "株式会社東京精密"),
    SupplierSpec("formula", "=SUM(A1:A2) Consulting"),
    SupplierSpec("plus", "+Plus Logistics Ltd"),
    SupplierSpec("minus", "-Minus Metals"),
    SupplierSpec("at", "@Home Cleaning Services"),
    SupplierSpec("comma", "Smith, Jones & Partners"),
    SupplierSpec("cafe", "Café Déjà Vu ☕"),
    SupplierSpec("shenzhen", "深圳市华强电子有限公司", foreign=True),
    SupplierSpec("acme", "Acme Industrial Supply"),
    SupplierSpec("acme_dup", "ACME Industrial Supplies Ltd (duplicate)", "ARCHIVED", merged_into="acme"),
    SupplierSpec("contoso", "Contoso Office Supplies", "ARCHIVED"),
    SupplierSpec("pacific", "Pacific Freight Forwarders", foreign=True),
    SupplierSpec("bright", "Bright Spark Electrical"),
    SupplierSpec("green", "Greenleaf Landscaping"),
    SupplierSpec("harbour", "Harbourside Catering"),
)

CUSTOMERS: tuple[str, ...] = (
    "Basket Case Retail",
    "Bayside Club",
    "City Agency",
    "Marine Systems",
    "Ridgeway University",
    "Hamilton Smith Ltd",
)

SUPPLIER_FIRST: tuple[str, ...] = (
    "Apex", "Summit", "Riverside", "Blue Ridge", "Ironbark", "Kowhai", "Tui", "Atlas", "Beacon",
    "Cobalt", "Delta", "Evergreen", "Falcon", "Granite", "Horizon", "Kestrel", "Lighthouse",
    "Meridian", "Nova", "Orchard", "Pinnacle", "Quarry", "Redwood", "Silverfern", "Totara", "Unity",
    "Vista", "Willow", "Zenith", "Harrier",
)
SUPPLIER_TRADE: tuple[str, ...] = (
    "Supplies", "Engineering", "Logistics", "Print", "Hardware", "IT Services", "Packaging",
    "Electrical", "Cleaning", "Consulting", "Foods", "Timber", "Plumbing", "Security",
)
SUPPLIER_SUFFIX: tuple[str, ...] = ("Ltd", "Limited", "& Co", "Group", "LLP", "")

PRODUCTS: tuple[str, ...] = (
    "A4 copy paper, 80gsm", "Toner cartridge", "Office chairs", "Standing desk", "Laptop stand",
    "Network switch 24-port", "Cat6 cable", "Hi-vis vests", "Safety boots", "Pallet wrap",
    "Cardboard boxes", "Courier charges", "Freight - inbound", "Cleaning service (monthly)",
    "Consulting hours", "Software licence", "Cloud hosting", "Catering for staff event",
    "Electricity", "Plumbing repairs", "Timber - pine 90x45", "Steel brackets", "Printer service",
    "Security monitoring", "Window cleaning", "Forklift hire", "Coffee beans 1kg", "Fuel",
)

QUANTITIES: tuple[str, ...] = ("1", "1", "1", "2", "3", "4", "5", "10", "12", "0.5", "1.5", "2.25")

SUPPLIER_INVOICE_FORMS: tuple[str, ...] = ("INV-{n}", "SI{n}", "{n}", "A/2026/{n}", "Inv {n}")

#: Descriptions that break CSV/XML writers and naive parsers; one curated bill carries all of them.
HARD_DESCRIPTIONS: tuple[str, ...] = (
    "Line one\nLine two\r\nLine three",
    "Tab\tseparated\tvalues",
    "Widgets, assorted, large",
    'He said "ship it", then left',
    "Delivery 🚚📦 on time ✅",
    "=HYPERLINK(\"http://example.invalid\",\"click\")",
    "+61 2 5550 1234 call-out",
    "-15% loyalty adjustment",
    "@channel monthly service",
    "Literal /Date(1700000000000)/ in the text",
    "事務用品 (office supplies)",
    "Back\\slash and <angle> & ampersand",
)
