"""Checking Xero's records where they enter, before anything is stored.

Xero's payloads come from many apps and years of data migrations, so one odd record must never stop a
tenant. Each record of a page (bill, purchase order, contact, account, tracking category) is checked for
shape and range: types, finite decimals of a sane size, dates a datetime can hold, text that fits the
ledger's columns (the limits are the column sizes, handed in by the store), and its id. A record passes
as it is, or comes back with every problem found, each naming the record (kind and id, or its position
in the page when the id is unusable) and the field. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Final

from connector.domain.po_numbers import po_key
from connector.domain.reasons import Reason
from connector.errors import RecordProblem
from connector.xero.dates import ms_to_datetime, parse_ms

# Xero's own limits where no column holds the text: a line description or a reference is at most 4,000
# characters in Xero; anything longer did not come from Xero's UI and is not carried to Stampli.
TEXT_LIMIT: Final = 4000
MAX_AMOUNT: Final = Decimal(10) ** 15  # far above any real bill, far below what breaks a column or a file
_MAX_AMOUNT_INT: Final = 10 ** 15
MAX_DECIMAL_PLACES: Final = 10  # Xero keeps 2 (totals), 4 (unit amounts) or 6 (currency rates)
SHOWN_VALUE: Final = 60  # characters of a bad value quoted in a problem, so a 10 MB string stays in Xero
UNUSABLE_ID_PREFIX: Final = "unusable-"  # the stored id of a bill whose own InvoiceID cannot be stored

ColumnLengths = Mapping[str, int]  # "table.column" -> its length (see connector.store.intake)


class RecordKind(StrEnum):
    """The kinds of Xero record the connector reads, by their Xero endpoint."""

    BILL = "Invoices"
    CREDIT_NOTE = "CreditNotes"
    PURCHASE_ORDER = "PurchaseOrders"
    CONTACT = "Contacts"
    ACCOUNT = "Accounts"
    TRACKING_CATEGORY = "TrackingCategories"

    @property
    def label(self) -> str:
        return _LABELS[self]

    @property
    def id_field(self) -> str:
        return _ID_FIELDS[self]


_LABELS = {RecordKind.BILL: "invoice", RecordKind.CREDIT_NOTE: "credit note",
           RecordKind.PURCHASE_ORDER: "purchase order", RecordKind.CONTACT: "contact",
           RecordKind.ACCOUNT: "account", RecordKind.TRACKING_CATEGORY: "tracking category"}
_ID_FIELDS = {RecordKind.BILL: "InvoiceID", RecordKind.CREDIT_NOTE: "CreditNoteID",
              RecordKind.PURCHASE_ORDER: "PurchaseOrderID",
              RecordKind.CONTACT: "ContactID", RecordKind.ACCOUNT: "AccountID",
              RecordKind.TRACKING_CATEGORY: "TrackingCategoryID"}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one record: which record, which field, what."""

    record: str  # "invoice 8c1d…" or "invoice #3 of the page"
    field: str  # "Total", "LineItems[2].Tracking[1].Name", or "" for the record as a whole
    problem: str

    def text(self) -> str:
        where = f"field {self.field!r}: " if self.field else ""
        return f"{self.record}: {where}{self.problem}"

    def reason(self) -> Reason:
        """The `bad_record` reason a bill is held for."""
        return Reason("bad_record", {"problem": self.text(), "field": self.field})


@dataclass(frozen=True)
class Checked:
    """One record of a page after its check: `problems` is empty when it can be used as it is."""

    kind: RecordKind
    position: int  # 1-based, in the page
    record_id: str | None  # its own id when that id is usable (a non-empty string that fits its column)
    data: Any  # the record as Xero sent it (not always an object)
    version_ms: int | None  # UpdatedDateUTC when readable
    problems: tuple[Problem, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def label(self) -> str:
        return _record_label(self.kind, self.record_id, self.position)

    def summary(self) -> str:
        """Every problem, in one line an operator can act on (bounded: each value is quoted short)."""
        return "; ".join(p.text() for p in self.problems)

    def storage_id(self) -> str:
        """The id to store the record under: its own when usable, else one derived from what Xero sent
        (stable, so the same bad record re-read later lands on the same row)."""
        if self.record_id is not None:
            return self.record_id
        raw = self.data.get(self.kind.id_field) if isinstance(self.data, dict) else None
        source = raw if isinstance(raw, str) and raw else json.dumps(storable(self.data), sort_keys=True)
        digest = hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        return UNUSABLE_ID_PREFIX + digest


@dataclass(frozen=True)
class Page:
    """A page of one endpoint after every record was checked."""

    kind: RecordKind
    records: tuple[Checked, ...]  # duplicates of one id removed: the newest (then the last) is kept
    count: int  # records in Xero's answer, duplicates included (decides whether the page was full)
    envelope_problem: str | None = None  # the answer had no list under the endpoint's name
    duplicates: int = 0

    @property
    def usable(self) -> list[dict[str, Any]]:
        """The good records, as Xero sent them: non-finite numbers in fields we do not read are made
        storable by the ledger's JSON writer (storable_json), in the one encoding each record gets."""
        return [c.data for c in self.records if c.ok]

    @property
    def rejected(self) -> list[Checked]:
        return [c for c in self.records if not c.ok]

    @property
    def stamps(self) -> list[int]:
        """One UpdatedDateUTC per record of the answer, for paging: an unreadable stamp counts as the
        page's oldest, so it neither moves the cursor nor makes a full page look short."""
        readable = [c.version_ms for c in self.records if c.version_ms is not None]
        filler = min(readable) if readable else 0
        stamps = [c.version_ms if c.version_ms is not None else filler for c in self.records]
        return stamps + [filler] * (self.count - len(stamps))


def check_page(kind: RecordKind, records: object, lengths: ColumnLengths) -> Page:
    """Check every record under the endpoint's key of an answer (`body.get(kind)`)."""
    if records is None:
        return Page(kind, (), 0, f"Xero's answer has no {kind.value} list")
    if not isinstance(records, list):
        return Page(kind, (), 0, f"Xero's answer has {type(records).__name__} where the {kind.value} list belongs")
    checked = [check_record(kind, data, position, lengths) for position, data in enumerate(records, start=1)]
    kept: dict[str, Checked] = {}
    unnamed: list[Checked] = []
    for item in checked:
        key = item.record_id if item.record_id is not None else None
        if key is None:
            unnamed.append(item)
        elif key not in kept or (item.version_ms or 0) >= (kept[key].version_ms or 0):
            kept[key] = item
    # a record whose id cannot be used is stored under a derived id: two such identical ones are one
    by_storage: dict[str, Checked] = {}
    for item in unnamed:
        by_storage[item.storage_id()] = item
    survivors = sorted([*kept.values(), *by_storage.values()], key=lambda c: c.position)
    return Page(kind, tuple(survivors), len(records), duplicates=len(checked) - len(survivors))


def check_record(kind: RecordKind, data: object, position: int, lengths: ColumnLengths) -> Checked:
    """Check one record of `kind`; `position` (1-based) names it when its id cannot."""
    if not isinstance(data, dict):
        problem = Problem(_record_label(kind, None, position), "", f"is {_kind_of(data)}, not an object")
        return Checked(kind, position, None, data, None, (problem,))
    record_id, id_problem = _record_id(kind, data, lengths)
    fields = _Fields(_record_label(kind, record_id, position), data, lengths)
    if id_problem is not None:
        fields.add(kind.id_field, id_problem)
    _CHECKS[kind](fields)
    return Checked(kind, position, record_id, data, fields.version_ms, tuple(fields.problems))


def storable(value: Any) -> Any:
    """`value` as the ledger's JSON columns can hold it: NaN and infinities (which Python's JSON reader
    accepts, and PostgreSQL refuses) become their text. The same object when nothing needs replacing:
    the common case is found by the C encoder refusing non-finite numbers (a profile of a 10,000-bill poll
    spent 3.5 s walking records that needed nothing), and only a record it refuses is walked."""
    try:
        json.dumps(value, allow_nan=False)
    except (ValueError, TypeError, RecursionError):
        return _storable(value)
    return value


def storable_json(value: Any) -> str:
    """`value` as the JSON text the ledger's JSON columns store (the ledger's serializer, store.db): as
    `json.dumps` writes it, and with non-finite numbers as their text (storable) when it holds any. Each
    record of a page is encoded once, here, when it is stored: a profile of a 5,000-bill poll spent
    about as long encoding every record a first time, only to learn it held no NaN, as storing it."""
    try:
        return json.dumps(value, allow_nan=False)
    except ValueError:
        return json.dumps(_storable(value), allow_nan=False)


def _storable(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, dict):
        changed = {k: _storable(v) for k, v in value.items()}
        return value if all(changed[k] is value[k] for k in value) else changed
    if isinstance(value, list):
        items = [_storable(v) for v in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value


def clip(text: object, limit: int) -> str:
    """Text that fits a column and any database: NUL and lone surrogates replaced, cut to `limit`."""
    cleaned = "".join("\ufffd" if ch == "\x00" or "\ud800" <= ch <= "\udfff" else ch for ch in str(text)[:limit])
    return cleaned[:limit]


def server_time(value: object) -> datetime | None:
    """The answer's DateTimeUTC (Xero's clock), or None when it is missing or unreadable."""
    if not isinstance(value, str):
        return None
    try:
        return ms_to_datetime(parse_ms(value))
    except ValueError:
        return None


def decision_failed(error: Exception, record: str) -> Reason:
    """The `bad_record` reason for a bill whose mapping raised: the field when the error names one."""
    if isinstance(error, RecordProblem):
        return Reason("bad_record", {"problem": str(error), "field": error.field})
    shown = _shown(str(error)) if str(error) else ""
    return Reason("bad_record", {"problem": f"{record}: mapping failed on it: {type(error).__name__}"
                                            + (f": {shown}" if shown else ""), "field": ""})


# --- the checks of each kind ---------------------------------------------------------------------------

class _Fields:
    """Reads fields of one record and collects problems, each naming the record and the field."""

    def __init__(self, record: str, data: dict[str, Any], lengths: ColumnLengths, prefix: str = "") -> None:
        self.record = record
        self.data = data
        self.lengths = lengths
        self.prefix = prefix
        self.problems: list[Problem] = []
        self.version_ms: int | None = None

    def add(self, name: str, problem: str) -> None:
        self.problems.append(Problem(self.record, self.prefix + name, problem))

    def nested(self, name: str, data: dict[str, Any]) -> _Fields:
        inner = _Fields(self.record, data, self.lengths, f"{self.prefix}{name}.")
        inner.problems = self.problems
        return inner

    def text(self, name: str, *, column: str | None = None, required: bool = False) -> str | None:
        value = self.data.get(name)
        if value is None:
            if required:
                self.add(name, "is missing")
            return None
        if not isinstance(value, str):
            self.add(name, f"must be text, got {_kind_of(value)}")
            return None
        if required and not value:
            self.add(name, "is empty")
            return None
        limit = self.lengths[column] if column else TEXT_LIMIT
        if len(value) > limit:
            self.add(name, f"is {len(value):,} characters long, over the {limit} this field may hold "
                           f"({_shown(value)})")
            return None
        bad = _unstorable_character(value)
        if bad is not None:
            self.add(name, f"holds {bad}, which no database column can store ({_shown(value)})")
            return None
        return value

    def flag(self, name: str) -> None:
        value = self.data.get(name)
        if value is not None and not isinstance(value, bool):
            self.add(name, f"must be true or false, got {_kind_of(value)}")

    def money(self, name: str, *, required: bool = False) -> None:
        value = self.data.get(name)
        if value is None:
            if required:
                self.add(name, "is missing")
            return
        problem = _amount_problem(value)
        if problem is not None:
            self.add(name, problem)

    def day(self, name: str) -> None:
        value = self.data.get(name)
        if value in (None, ""):
            return
        self._instant(name, value)

    def stamp(self, name: str, *, required: bool) -> None:
        value = self.data.get(name)
        if value is None:
            if required:
                self.add(name, "is missing")
            return
        stamp = self._instant(name, value)
        if stamp is not None and stamp < 0:
            self.add(name, f"is before 1970 ({_shown(value)}), which no Xero record was changed at")
            stamp = None
        self.version_ms = stamp

    def _instant(self, name: str, value: object) -> int | None:
        if not isinstance(value, str):
            self.add(name, f"must be a Xero date, got {_kind_of(value)}")
            return None
        try:
            return parse_ms(value)
        except ValueError as error:
            self.add(name, f"{error} ({_shown(value)})")
            return None

    def objects(self, name: str) -> list[tuple[int, dict[str, Any]]]:
        """The objects of a list field (absent or null is an empty list); anything else is a problem."""
        value = self.data.get(name)
        if value is None:
            return []
        if not isinstance(value, list):
            self.add(name, f"must be a list, got {_kind_of(value)}")
            return []
        found = []
        for number, item in enumerate(value, start=1):
            if isinstance(item, dict):
                found.append((number, item))
            else:
                self.add(f"{name}[{number}]", f"must be an object, got {_kind_of(item)}")
        return found

    def object(self, name: str, *, required: bool = False) -> dict[str, Any] | None:
        value = self.data.get(name)
        if value is None:
            if required:
                self.add(name, "is missing")
            return None
        if not isinstance(value, dict):
            self.add(name, f"must be an object, got {_kind_of(value)}")
            return None
        return value


def _check_document_head(f: _Fields, number_field: str) -> None:
    """What a bill and a credit note share before their dates: type, status, number, reference, contact."""
    f.text("Type", required=True)
    f.text("Status", column="bills.xero_status", required=True)
    f.text(number_field, column="bills.invoice_number")
    f.text("Reference")
    contact = f.object("Contact", required=True)
    if contact is not None:
        inner = f.nested("Contact", contact)
        inner.text("ContactID", column="contacts.contact_id", required=True)
        inner.text("Name", column="contacts.name")


def _check_document_amounts(f: _Fields) -> None:
    f.text("CurrencyCode")
    f.money("CurrencyRate")
    f.text("LineAmountTypes")
    f.money("SubTotal")
    f.money("TotalTax")
    f.money("Total", required=True)


def _check_bill(f: _Fields) -> None:
    _check_document_head(f, "InvoiceNumber")
    f.day("Date")
    f.day("DueDate")
    _check_document_amounts(f)
    f.stamp("UpdatedDateUTC", required=True)
    _check_lines(f)


def _check_credit_note(f: _Fields) -> None:
    """A credit note is checked as a bill is (its number in place of the bill's), and each allocation
    names the invoice it is applied to, with an amount and a date."""
    _check_document_head(f, "CreditNoteNumber")
    f.day("Date")
    _check_document_amounts(f)
    f.money("RemainingCredit")
    f.stamp("UpdatedDateUTC", required=True)
    _check_lines(f)
    for number, allocation in f.objects("Allocations"):
        inner = f.nested(f"Allocations[{number}]", allocation)
        inner.money("Amount", required=True)
        inner.day("Date")
        invoice = inner.object("Invoice", required=True)
        if invoice is not None:
            applied_to = inner.nested("Invoice", invoice)
            applied_to.text("InvoiceID", column="bills.invoice_id", required=True)
            applied_to.text("InvoiceNumber", column="bills.invoice_number")


def _check_lines(f: _Fields) -> None:
    for number, line in f.objects("LineItems"):
        item = f.nested(f"LineItems[{number}]", line)
        item.text("Description")
        item.money("Quantity")
        item.money("UnitAmount")
        item.money("LineAmount", required=True)
        item.money("TaxAmount")
        item.text("AccountCode", column="accounts.code")
        for index, tracking in item.objects("Tracking"):
            option = item.nested(f"Tracking[{index}]", tracking)
            for name in ("Name", "Option", "TrackingCategoryID", "TrackingOptionID"):
                option.text(name)


def _check_purchase_order(f: _Fields) -> None:
    number = f.text("PurchaseOrderNumber", column="purchase_orders.number", required=True)
    if number is not None:
        key = po_key(number)
        if key is not None and len(key) > f.lengths["purchase_orders.key"]:
            f.add("PurchaseOrderNumber", f"has a number too long to match bills by ({_shown(number)})")
    f.text("Status", column="purchase_orders.status", required=True)
    contact = f.object("Contact")
    if contact is not None:
        f.nested("Contact", contact).text("ContactID", column="purchase_orders.contact_id")
    f.money("Total")
    f.text("CurrencyCode")
    f.day("Date")
    f.stamp("UpdatedDateUTC", required=True)
    for number_in_order, line in f.objects("LineItems"):
        item = f.nested(f"LineItems[{number_in_order}]", line)
        item.text("Description")
        for amount in ("Quantity", "UnitAmount", "LineAmount"):
            item.money(amount)
        item.text("AccountCode", column="accounts.code")


def _check_contact(f: _Fields) -> None:
    f.text("Name", column="contacts.name")
    f.text("ContactStatus", column="contacts.status")
    f.flag("IsSupplier")
    f.text("MergedToContactID", column="contacts.merged_to")
    f.text("TaxNumber")
    f.stamp("UpdatedDateUTC", required=False)


def _check_account(f: _Fields) -> None:
    f.text("Code", column="accounts.code")
    f.text("Name", column="accounts.name")
    f.text("Status", column="accounts.status")
    f.stamp("UpdatedDateUTC", required=False)


def _check_tracking_category(f: _Fields) -> None:
    f.text("Name", column="tracking_categories.name")
    f.text("Status", column="tracking_categories.status")
    for number, option in f.objects("Options"):
        inner = f.nested(f"Options[{number}]", option)
        inner.text("TrackingOptionID")
        inner.text("Name")
        inner.text("Status")


_CHECKS: dict[RecordKind, Callable[[_Fields], None]] = {
    RecordKind.BILL: _check_bill,
    RecordKind.CREDIT_NOTE: _check_credit_note,
    RecordKind.PURCHASE_ORDER: _check_purchase_order,
    RecordKind.CONTACT: _check_contact,
    RecordKind.ACCOUNT: _check_account,
    RecordKind.TRACKING_CATEGORY: _check_tracking_category,
}

_ID_COLUMNS = {RecordKind.BILL: "bills.invoice_id", RecordKind.CREDIT_NOTE: "bills.invoice_id",
               RecordKind.PURCHASE_ORDER: "purchase_orders.purchase_order_id",
               RecordKind.CONTACT: "contacts.contact_id", RecordKind.ACCOUNT: "accounts.account_id",
               RecordKind.TRACKING_CATEGORY: "tracking_categories.category_id"}


def _record_id(kind: RecordKind, data: dict[str, Any], lengths: ColumnLengths) -> tuple[str | None, str | None]:
    """The record's id when it can be stored as it is, else the problem with it."""
    value = data.get(kind.id_field)
    if value is None:
        return None, "is missing"
    if not isinstance(value, str):
        return None, f"must be text, got {_kind_of(value)}"
    if not value.strip():
        return None, "is empty"
    limit = lengths[_ID_COLUMNS[kind]]
    if len(value) > limit:
        return None, f"is {len(value):,} characters long, over the {limit} an id may hold ({_shown(value)})"
    bad = _unstorable_character(value)
    if bad is not None or value.startswith(UNUSABLE_ID_PREFIX):
        return None, f"holds {bad or 'our own prefix for unusable ids'} ({_shown(value)})"
    return value, None


def _record_label(kind: RecordKind, record_id: str | None, position: int) -> str:
    return f"{kind.label} {record_id}" if record_id is not None else f"{kind.label} #{position} of the page"


def _amount_problem(value: object) -> str | None:
    # The common cases first, without a Decimal (a profile of a 10,000-bill poll spent 2.1 s here): an int
    # in range, and a float in range whose shortest text has no exponent and few enough decimal places
    # (the text Decimal(str(value)) would read). Anything else takes the full check below.
    if type(value) is int and -_MAX_AMOUNT_INT < value < _MAX_AMOUNT_INT:
        return None
    if type(value) is float and -_MAX_AMOUNT_INT < value < _MAX_AMOUNT_INT:  # NaN fails both comparisons
        text = repr(value)
        if "e" not in text and "n" not in text and len(text) - text.index(".") - 1 <= MAX_DECIMAL_PLACES:
            return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return f"must be a number, got {_kind_of(value)}"
    if isinstance(value, str) and len(value) > SHOWN_VALUE:
        return f"must be a number, got {len(value):,} characters of text ({_shown(value)})"
    try:
        amount = Decimal(str(value).strip()) if isinstance(value, str) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        return f"must be a number, got {_shown(value)}"
    if not amount.is_finite():
        return f"must be a finite number, got {_shown(value)}"
    if abs(amount) >= MAX_AMOUNT:
        return f"is out of range ({_shown(value)}); amounts must be under {MAX_AMOUNT:,}"
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MAX_DECIMAL_PLACES:
        return f"has more than {MAX_DECIMAL_PLACES} decimal places ({_shown(value)})"
    return None


def _unstorable_character(text: str) -> str | None:
    found = _UNSTORABLE.search(text)  # the first one, as a walk of the text would find it
    if found is None:
        return None
    ch = found.group()
    return "a NUL character" if ch == "\x00" else f"a lone surrogate (U+{ord(ch):04X})"


_UNSTORABLE: Final = re.compile("[\x00\ud800-\udfff]")


def _kind_of(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"text {_shown(value)}"
    if isinstance(value, int | float):
        return f"the number {_shown(value)}"
    return type(value).__name__


def _shown(value: object) -> str:
    """A bad value, quoted short and safe to store: never the whole of a huge string."""
    text = repr(value)
    if len(text) > SHOWN_VALUE:
        text = f"{text[:SHOWN_VALUE]}… ({len(text):,} characters)"
    return clip(text, SHOWN_VALUE * 2)


__all__ = ["Checked", "ColumnLengths", "Page", "Problem", "RecordKind", "check_page", "check_record", "clip",
           "decision_failed", "server_time", "storable",
           "storable_json"]


def is_xero_id(value: object) -> bool:
    """A Xero id (ContactID, InvoiceID...) is a GUID; anything else can never be found by `IDs=`, and Xero
    refuses a whole request that names one."""
    if not isinstance(value, str) or len(value) > 64:
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
