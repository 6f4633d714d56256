"""Master data for Stampli, pure: which records each kind sends, each record's row, its fingerprint, and
the order files must reach the import folder in.

Stampli matches a bill to a PO, offers the vendor and codes the GL account only when it holds those
records, so the connector sends them too, each kind in a file of its own: vendors (Xero suppliers),
GL accounts (the chart of accounts with the mapped Stampli code), dimension values (tracking options
through the tracking map) and purchase orders. Each record's row is what the kind's template reads; its
fingerprint is a stable hash of that row, so only records new or changed since they were last put in a
file are sent again (the delta). Never bank details: a vendor's row has no field for them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Final

from connector.domain.money import cents
from connector.domain.rules import Maps
from connector.xero.dates import parse_date


class Kind(StrEnum):
    """What a batch file carries. Bills are one kind among others: a batch names its kind."""

    BILLS = "bills"
    VENDORS = "vendors"
    GL_ACCOUNTS = "gl_accounts"
    DIMENSIONS = "dimensions"
    PURCHASE_ORDERS = "purchase_orders"


#: The master-data kinds, in the order a cycle makes their files (what others depend on first).
MASTER_KINDS: Final = (Kind.VENDORS, Kind.GL_ACCOUNTS, Kind.DIMENSIONS, Kind.PURCHASE_ORDERS)

#: What must be in Stampli before a file of a kind may be: a bill names its vendor, POs, GL accounts and
#: dimension values; a PO names its vendor, GL accounts and dimension values. A master-data file also waits
#: for the earlier files of its own kind, so an older row (a replayed file) never lands after a newer one.
#: Bill files never wait for each other: a bill is in one file only, and its newer version in a later one.
DEPENDS_ON: Final[Mapping[Kind, frozenset[Kind]]] = {
    Kind.BILLS: frozenset(MASTER_KINDS),
    Kind.VENDORS: frozenset({Kind.VENDORS}),
    Kind.GL_ACCOUNTS: frozenset({Kind.GL_ACCOUNTS}),
    Kind.DIMENSIONS: frozenset({Kind.DIMENSIONS}),
    Kind.PURCHASE_ORDERS: frozenset({Kind.VENDORS, Kind.GL_ACCOUNTS, Kind.DIMENSIONS, Kind.PURCHASE_ORDERS}),
}

#: A file that waits is looked at again after this long (and at once when the file it waits for is
#: delivered: that delivery asks for the files waiting on it).
WAIT_SECONDS: Final = 300.0


@dataclass(frozen=True)
class EarlierFile:
    """A file of the same tenant made before the one about to be delivered."""

    name: str
    kind: Kind
    delivered: bool
    state: str


def waits_for(kind: Kind | str, earlier: Iterable[EarlierFile]) -> list[EarlierFile]:
    """The ordering rule: a file is not uploaded while a file of a kind it depends on, made before it for
    the same tenant, is not delivered. Master data made in a cycle is made before that cycle's bill file,
    so a bill never reaches Stampli ahead of its vendor, PO or GL account; when such a file FAILS, the
    files after it wait (nothing is skipped) until it is replayed and delivered."""
    needs = DEPENDS_ON[Kind(kind)]
    return [f for f in earlier if f.kind in needs and not f.delivered]


@dataclass(frozen=True)
class MasterRecord:
    """One record of a master-data kind: its key (the Xero id), a label for people, and its row."""

    kind: Kind
    key: str
    label: str
    row: dict[str, Any]

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.row)


def fingerprint(row: Mapping[str, Any]) -> str:
    """A stable hash of a row: the same fields and values give the same hash whatever their order."""
    text = json.dumps(row, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def delta(records: Iterable[MasterRecord], sent: Mapping[str, str]) -> list[MasterRecord]:
    """Records new or changed since their fingerprint was last put in a file (`sent`: key → fingerprint),
    in key order so a file is the same however the records were read."""
    return sorted((r for r in records if sent.get(r.key) != r.fingerprint), key=lambda r: r.key)


# --- vendors ----------------------------------------------------------------------------------------------

_ADDRESS_FIELDS = (("line1", "AddressLine1"), ("line2", "AddressLine2"), ("line3", "AddressLine3"),
                   ("line4", "AddressLine4"), ("city", "City"), ("region", "Region"),
                   ("postal_code", "PostalCode"), ("country", "Country"), ("attention_to", "AttentionTo"))


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None or isinstance(value, dict | list) else str(value)


def _address(contact: Mapping[str, Any], kind: str) -> dict[str, str]:
    found = next((a for a in contact.get("Addresses") or [] if isinstance(a, dict) and a.get("AddressType") == kind),
                 {})
    return {ours: _text(found.get(theirs)) for ours, theirs in _ADDRESS_FIELDS}


def _phone(contact: Mapping[str, Any]) -> str:
    found = next((p for p in contact.get("Phones") or [] if isinstance(p, dict) and p.get("PhoneType") == "DEFAULT"),
                 {})
    return " ".join(t for t in (_text(found.get("PhoneCountryCode")), _text(found.get("PhoneAreaCode")),
                                _text(found.get("PhoneNumber"))) if t)


def is_vendor(contact: Mapping[str, Any]) -> bool:
    """A supplier, or a contact merged into another (sent marked, so Stampli can retire the duplicate)."""
    return bool(contact.get("IsSupplier")) or bool(contact.get("MergedToContactID"))


def vendor_record(contact: Mapping[str, Any], maps: Maps) -> MasterRecord:
    """A vendor's row from a Xero contact. Bank details (BankAccountDetails, BatchPayments) are never read."""
    contact_id = _text(contact.get("ContactID"))
    status = _text(contact.get("ContactStatus")) or "ACTIVE"
    merged_to = _text(contact.get("MergedToContactID"))
    name = _text(contact.get("Name"))
    row: dict[str, Any] = {
        "vendor_id": contact_id,
        "name": name,
        "vendor_code": maps.vendors.get(contact_id, ""),
        "status": status,
        "archived": status != "ACTIVE",
        "merged": bool(merged_to),
        "merged_to": merged_to,
        "merged_to_code": maps.vendors.get(merged_to, "") if merged_to else "",
        "tax_number": _text(contact.get("TaxNumber")),
        "currency": _text(contact.get("DefaultCurrency")),
        "email": _text(contact.get("EmailAddress")),
        "phone": _phone(contact),
        "postal_address": _address(contact, "POBOX"),
        "street_address": _address(contact, "STREET"),
    }
    return MasterRecord(Kind.VENDORS, contact_id, name, row)


def vendor_records(contacts: Iterable[Mapping[str, Any]], maps: Maps,
                   orders: Iterable[Mapping[str, Any]] = ()) -> list[MasterRecord]:
    """The suppliers, and every contact a PO Stampli gets names (Xero marks a contact a supplier only with
    its first bill, and a new vendor's PO comes first): from the contact the ledger holds, else from what
    the PO says of it (id and name; the row fills in when the contact is read)."""
    held = {_text(c.get("ContactID")): c for c in contacts if _text(c.get("ContactID"))}
    records = {key: vendor_record(c, maps) for key, c in held.items() if is_vendor(c)}
    for order in sorted(orders, key=lambda o: _text(o.get("PurchaseOrderID"))):
        contact = order.get("Contact") if isinstance(order.get("Contact"), dict) else {}
        assert isinstance(contact, dict)
        key = _text(contact.get("ContactID"))
        if not key or key in records or _text(order.get("Status")) in NOT_YET_SENT_STATUSES:
            continue
        records[key] = vendor_record(held.get(key) or {"ContactID": key, "Name": contact.get("Name")}, maps)
    return list(records.values())


# --- GL accounts ------------------------------------------------------------------------------------------

def gl_account_record(account: Mapping[str, Any], maps: Maps) -> MasterRecord:
    """An account's row: code, name, type, class, status and the Stampli GL code the map gives (bank
    account numbers are never read)."""
    code = _text(account.get("Code"))
    account_id, name = _text(account.get("AccountID")), _text(account.get("Name"))
    status = _text(account.get("Status")) or "ACTIVE"
    row: dict[str, Any] = {
        "account_id": account_id,
        "code": code,
        "name": name,
        "type": _text(account.get("Type")),
        "class": _text(account.get("Class")),
        "status": status,
        "archived": status != "ACTIVE",
        "tax_type": _text(account.get("TaxType")),
        "description": _text(account.get("Description")),
        "gl_code": maps.gl.get(code, ""),
    }
    return MasterRecord(Kind.GL_ACCOUNTS, account_id, f"{code} {name}".strip(), row)


def gl_account_records(accounts: Iterable[Mapping[str, Any]], maps: Maps) -> list[MasterRecord]:
    """Accounts with a code (a bill line names its account by code; one without cannot be coded)."""
    return [gl_account_record(a, maps) for a in accounts if _text(a.get("Code")) and _text(a.get("AccountID"))]


# --- dimension values -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrackingOption:
    category_id: str
    category: str
    category_status: str
    option_id: str
    option: str
    status: str


def dimension_records(options: Iterable[TrackingOption], maps: Maps, *, pass_through: bool = False
                      ) -> list[MasterRecord]:
    """One row per tracking option the tracking map gives a Stampli dimension (or, with the tenant's
    `unmapped_tracking: pass_through`, every option, under its category's name). An option or category
    archived in Xero is sent ARCHIVED: bills already in Stampli may use it."""
    records = []
    for option in options:
        mapped = maps.tracking.get((option.category, option.option)) or maps.tracking.get((option.category, "*"))
        if mapped is not None:
            dimension, value = mapped[0], option.option if mapped[1] == "*" else mapped[1]
        elif pass_through:
            dimension, value = option.category, option.option
        else:
            continue
        archived = option.status != "ACTIVE" or option.category_status != "ACTIVE"
        deleted = "DELETED" in (option.status, option.category_status)
        row: dict[str, Any] = {
            "dimension": dimension,
            "value": value,
            "category_id": option.category_id,
            "category": option.category,
            "option_id": option.option_id,
            "option": option.option,
            "status": "DELETED" if deleted else "ARCHIVED" if archived else "ACTIVE",
            "archived": archived,
        }
        records.append(MasterRecord(Kind.DIMENSIONS, option_key(option), f"{dimension}={value}", row))
    return records


def option_key(option: TrackingOption) -> str:
    """A dimension value's key: its Xero tracking option id."""
    return option.option_id or f"{option.category_id}/{option.option}"


def deleted_dimension_records(sent_labels: Mapping[str, str], listed: Iterable[str]) -> list[MasterRecord]:
    """Dimension values sent before whose tracking option Xero lists no more (`listed`: the keys of every
    option it lists, mapped or not, archived too): deleted in Xero, alone or with its category. Each is
    sent DELETED, once: its row is made only from what the ledger kept of it (the key and its label
    `dimension=value`), so it is the same row at every later look."""
    present = set(listed)
    records = []
    for key, label in sent_labels.items():
        if key in present:
            continue
        dimension, _, value = label.partition("=")
        row: dict[str, Any] = {"dimension": dimension, "value": value, "category_id": "", "category": "",
                               "option_id": key, "option": "", "status": "DELETED", "archived": True}
        records.append(MasterRecord(Kind.DIMENSIONS, key, label, row))
    return records


# --- purchase orders --------------------------------------------------------------------------------------

#: PO statuses that are not yet (or never were) an order for Stampli to match: sent only as a change of
#: status of a PO already sent (an AUTHORISED PO deleted later is sent again, DELETED).
NOT_YET_SENT_STATUSES: Final = frozenset({"DRAFT", "SUBMITTED", "DELETED"})


def _amount(value: Any) -> str:
    if value is None or value == "" or isinstance(value, bool):
        return ""
    try:
        return str(cents(Decimal(str(value))))
    except InvalidOperation:
        return ""


def _quantity(value: Any) -> str:
    if value is None or value == "" or isinstance(value, bool):
        return ""
    try:
        return str(Decimal(str(value)))
    except InvalidOperation:
        return ""


def _day(value: Any) -> str:
    if not isinstance(value, str) or not value:
        return ""
    try:
        return parse_date(value).isoformat()
    except ValueError:
        return ""


def _po_line(number: int, line: Mapping[str, Any], maps: Maps) -> dict[str, Any]:
    tracking = [{"category": _text(t.get("Name")), "option": _text(t.get("Option"))}
                for t in line.get("Tracking") or [] if isinstance(t, dict)]
    dimensions: dict[str, str] = {}
    for t in tracking:
        mapped = maps.tracking.get((t["category"], t["option"])) or maps.tracking.get((t["category"], "*"))
        if mapped is not None:
            dimensions[mapped[0]] = t["option"] if mapped[1] == "*" else mapped[1]
    code = _text(line.get("AccountCode"))
    return {
        "line_number": number,
        "description": _text(line.get("Description")),
        "item_code": _text(line.get("ItemCode")),
        "quantity": _quantity(line.get("Quantity")),
        "unit_amount": _quantity(line.get("UnitAmount")),
        "line_amount": _amount(line.get("LineAmount")),
        "tax_amount": _amount(line.get("TaxAmount")),
        "account_code": code,
        "gl_code": maps.gl.get(code, "") if code else "",
        "tracking": tracking,
        "dimensions": dimensions,
    }


def purchase_order_record(order: Mapping[str, Any], maps: Maps, vendor_names: Mapping[str, str]) -> MasterRecord:
    """A PO's row: header, lines with account codes, Stampli GL codes and dimensions, amounts, status."""
    contact = order.get("Contact") if isinstance(order.get("Contact"), dict) else {}
    assert isinstance(contact, dict)
    vendor_id = _text(contact.get("ContactID"))
    status = _text(order.get("Status"))
    rate = order.get("CurrencyRate")
    po_id, number = _text(order.get("PurchaseOrderID")), _text(order.get("PurchaseOrderNumber"))
    row: dict[str, Any] = {
        "purchase_order_id": po_id,
        "number": number,
        "reference": _text(order.get("Reference")),
        "vendor_id": vendor_id,
        "vendor_name": vendor_names.get(vendor_id) or _text(contact.get("Name")),
        "vendor_code": maps.vendors.get(vendor_id, ""),
        "date": _day(order.get("DateString") or order.get("Date")),
        "delivery_date": _day(order.get("DeliveryDateString") or order.get("DeliveryDate")),
        "status": status,
        "open": status == "AUTHORISED",
        "currency": _text(order.get("CurrencyCode")),
        "currency_rate": _quantity(rate) if rate is not None else "",
        "line_amount_types": _text(order.get("LineAmountTypes")),
        "sub_total": _amount(order.get("SubTotal")),
        "total_tax": _amount(order.get("TotalTax")),
        "total": _amount(order.get("Total")),
        "lines": [_po_line(n, line, maps) for n, line in enumerate(order.get("LineItems") or [], start=1)
                  if isinstance(line, dict)],
    }
    return MasterRecord(Kind.PURCHASE_ORDERS, po_id, number, row)


def purchase_order_records(orders: Iterable[Mapping[str, Any]], maps: Maps, vendor_names: Mapping[str, str],
                           sent: Mapping[str, str]) -> list[MasterRecord]:
    """Every PO Stampli should hold: those past DRAFT and SUBMITTED that are not DELETED, and any PO
    already sent whatever its status now (billed, deleted: Stampli learns the new status)."""
    return [purchase_order_record(o, maps, vendor_names) for o in orders
            if _text(o.get("PurchaseOrderID"))
            and (_text(o.get("Status")) not in NOT_YET_SENT_STATUSES or _text(o.get("PurchaseOrderID")) in sent)]
