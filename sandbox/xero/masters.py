"""Settings and master data of a sandbox organisation: country profile, chart of accounts, tracking.

The chart mixes numeric and alphanumeric codes and keeps one ARCHIVED account (`477`) that old bills
still use; each tracking category has one ARCHIVED option that old bills still use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sandbox.xero.model import Account, TaxRate, TrackingCategory, TrackingOption


@dataclass(frozen=True)
class CountryProfile:
    """What differs between organisations in different countries."""

    country_code: str
    version: str
    base_currency: str
    timezone: str
    purchase_tax: TaxRate
    sales_tax: TaxRate
    no_tax: TaxRate
    foreign_currencies: tuple[tuple[str, Decimal], ...]  # (code, units of it per unit of base)
    org_names: tuple[str, str]


PROFILES: tuple[CountryProfile, ...] = (
    CountryProfile(
        "NZ", "NZ", "NZD", "NEWZEALANDSTANDARDTIME",
        TaxRate("INPUT2", "GST on Expenses", Decimal("15.00")),
        TaxRate("OUTPUT2", "GST on Income", Decimal("15.00")),
        TaxRate("NONE", "No GST", Decimal("0.00")),
        (("EUR", Decimal("0.547300")), ("USD", Decimal("0.593100")), ("GBP", Decimal("0.468200"))),
        ("Harbour Lights Trading", "Harbour Lights Trading Limited"),
    ),
    CountryProfile(
        "AU", "AU", "AUD", "AUSEASTERNSTANDARDTIME",
        TaxRate("INPUT", "GST on Expenses", Decimal("10.00")),
        TaxRate("OUTPUT", "GST on Income", Decimal("10.00")),
        TaxRate("EXEMPTEXPENSES", "GST Free Expenses", Decimal("0.00")),
        (("EUR", Decimal("0.604500")), ("USD", Decimal("0.655200")), ("NZD", Decimal("1.104700"))),
        ("Southern Cross Supplies", "Southern Cross Supplies Pty Ltd"),
    ),
    CountryProfile(
        "GB", "UK", "GBP", "GMTSTANDARDTIME",
        TaxRate("INPUT2", "20% (VAT on Expenses)", Decimal("20.00")),
        TaxRate("OUTPUT2", "20% (VAT on Income)", Decimal("20.00")),
        TaxRate("NONE", "No VAT", Decimal("0.00")),
        (("EUR", Decimal("1.168900")), ("USD", Decimal("1.266700")), ("AUD", Decimal("1.932800"))),
        ("Thames Valley Fabrication", "Thames Valley Fabrication Ltd"),
    ),
)

#: (code, name, Type, Class, status, system account). Purchases use the profile's purchase tax.
CHART: tuple[tuple[str, str, str, str, str, str], ...] = (
    ("090", "Business Bank Account", "BANK", "ASSET", "ACTIVE", ""),
    ("200", "Sales", "REVENUE", "REVENUE", "ACTIVE", ""),
    ("260", "Other Revenue", "OTHERINCOME", "REVENUE", "ACTIVE", ""),
    ("300", "Purchases", "DIRECTCOSTS", "EXPENSE", "ACTIVE", ""),
    ("310", "Cost of Goods Sold", "DIRECTCOSTS", "EXPENSE", "ACTIVE", ""),
    ("400", "Advertising", "EXPENSE", "EXPENSE", "ACTIVE", ""),
    ("404", "Bank Fees", "EXPENSE", "EXPENSE", "ACTIVE", ""),
    ("408", "Cleaning", "EXPENSE", "EXPENSE", "ACTIVE", ""),
    ("412", "Consulting & Accounting", "EXPENSE", "EXPENSE", "ACTIVE", ""),
    ("420", "Entertainment", "EXPENSE", "EXPENSE", "ACTIVE", ""),
    ("425", "Freight & Courier", "EXPENSE", "EXPENSE", "ACTIVE", ""),
    ("429", "General Expenses", "EXPENSE", "EXPENSE", "ACTIVE", ""),
    ("433", "Insurance", "EXPENSE", "EXPENSE", "ACTIVE", ""),
    ("445", "Light, Power, Heating", "EXPENSE", "EXPENSE", "ACTIVE", ""),
    ("449", "Motor Vehicle Expenses", "EXPENSE", "EXPENSE", "ACTIVE", ""),
    ("453", "Office Expenses", "EXPENSE", "EXPENSE", "ACTIVE", ""),
    ("461", "Printing & Stationery", "EXPENSE", "EXPENSE", "ACTIVE", ""),
    ("469", "Rent", "OVERHEADS", "EXPENSE", "ACTIVE", ""),
    ("473", "Repairs and Maintenance", "EXPENSE", "EXPENSE", "ACTIVE", ""),
    ("477", "Equipment Hire (old)", "EXPENSE", "EXPENSE", "ARCHIVED", ""),
    ("485", "Subscriptions", "EXPENSE", "EXPENSE", "ACTIVE", ""),
    ("489", "Telephone & Internet", "EXPENSE", "EXPENSE", "ACTIVE", ""),
    ("493", "Travel - National", "EXPENSE", "EXPENSE", "ACTIVE", ""),
    ("610", "Accounts Receivable", "CURRENT", "ASSET", "ACTIVE", "DEBTORS"),
    ("710", "Office Equipment", "FIXED", "ASSET", "ACTIVE", ""),
    ("800", "Accounts Payable", "CURRLIAB", "LIABILITY", "ACTIVE", "CREDITORS"),
    ("820", "Sales Tax", "CURRLIAB", "LIABILITY", "ACTIVE", "GST"),
    ("SW-SAAS", "Software Subscriptions", "EXPENSE", "EXPENSE", "ACTIVE", ""),
    ("FRT-IN", "Freight Inbound", "DIRECTCOSTS", "EXPENSE", "ACTIVE", ""),
    ("MKT01", "Marketing Events", "EXPENSE", "EXPENSE", "ACTIVE", ""),
)

#: Codes that generated bill lines draw from (all ACTIVE).
BILL_ACCOUNT_CODES: tuple[str, ...] = (
    "300", "310", "400", "408", "412", "425", "429", "433", "445", "449", "453", "461", "469", "473",
    "485", "489", "493", "710", "SW-SAAS", "FRT-IN", "MKT01",
)
ARCHIVED_ACCOUNT_CODE = "477"

#: (category, status, [(option, status), ...]).
TRACKING: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    ("Department", "ACTIVE", (
        ("Sales", "ACTIVE"), ("Operations", "ACTIVE"), ("R&D", "ACTIVE"), ("Finance", "ACTIVE"),
        ("Marketing (old)", "ARCHIVED"),
    )),
    ("Region", "ACTIVE", (
        ("North", "ACTIVE"), ("South", "ACTIVE"), ("East", "ACTIVE"), ("West", "ACTIVE"),
        ("Central (closed)", "ARCHIVED"),
    )),
)


def build_accounts(profile: CountryProfile, new_id: Callable[[], str], updated: datetime) -> list[Account]:
    accounts = []
    for code, name, kind, account_class, status, system in CHART:
        if account_class == "EXPENSE":
            tax_type = profile.no_tax.tax_type if code == "404" else profile.purchase_tax.tax_type
        elif account_class == "REVENUE":
            tax_type = profile.sales_tax.tax_type
        else:
            tax_type = profile.no_tax.tax_type
        accounts.append(Account(
            account_id=new_id(), code=code, name=name, type=kind, status=status, tax_type=tax_type,
            account_class=account_class, updated=updated, system_account=system,
            description=f"{name} ({profile.base_currency})" if kind != "BANK" else "",
            bank_account_number="12-3456-7890123-00" if kind == "BANK" else "",
        ))
    return accounts


def build_tracking(new_id: Callable[[], str]) -> list[TrackingCategory]:
    return [
        TrackingCategory(new_id(), name, status, tuple(TrackingOption(new_id(), o, s) for o, s in options))
        for name, status, options in TRACKING
    ]
