"""What a template column can read: the catalogue of sources in a bill record, one place for all of them.

A column's `source` is a dotted path into the record the mapping stage produces. Naming every path here
lets a template with a typo (`totl`) or a mismatched format (a date pattern on a text field) fail when it
is loaded, with the file and the field, instead of producing a wrong file at delivery time. Which columns
carry the Xero InvoiceID, the PO context, the GL code, each dimension and the hold flag is simply which
source they read: `invoice_id`, `po_numbers` / `po.<n>.*`, `line.gl_code`, `line.dimensions.<name>`,
`flagged`.
"""

from __future__ import annotations

import difflib
import enum
import re
from dataclasses import dataclass


class Kind(enum.Enum):
    """What a value is in the record, which decides the formats a column may apply to it."""

    TEXT = "text"        # kept byte-exact
    DATE = "date"        # ISO YYYY-MM-DD text; `format.date` re-formats it
    DECIMAL = "decimal"  # exact decimal text such as "115.00"; `format.decimal` rounds it half-up
    BOOL = "bool"        # JSON true/false; `format.true_false` names the two words
    INT = "int"          # a whole number, e.g. the line number


@dataclass(frozen=True)
class Source:
    pattern: str  # dotted; `<n>` is a list index from 0, `<name>` any key the tenant's mapping chose
    kind: Kind
    many: bool    # a list in the record: the column needs `format.join`
    meaning: str


#: Fields of the bill (one value per bill).
HEADER_SOURCES: tuple[Source, ...] = (
    Source("invoice_id", Kind.TEXT, False, "Xero InvoiceID (CreditNoteID for a credit note): the key that makes "
                                          "a re-sent bill recognisable"),
    Source("document_type", Kind.TEXT, False, "bill or supplier credit note, in the template's words "
                                             "(credit_notes: bill_word, credit_note_word)"),
    Source("invoice_number", Kind.TEXT, False, "the supplier's invoice number as entered in Xero"),
    Source("vendor_id", Kind.TEXT, False, "Xero ContactID of the supplier (after merges)"),
    Source("vendor_name", Kind.TEXT, False, "supplier name in Xero"),
    Source("vendor_code", Kind.TEXT, False, "the customer's Stampli vendor id, when the vendor map gives one"),
    Source("invoice_date", Kind.DATE, False, "bill date"),
    Source("due_date", Kind.DATE, False, "due date"),
    Source("currency", Kind.TEXT, False, "ISO 4217 currency code"),
    Source("currency_rate", Kind.DECIMAL, False, "Xero's rate to the base currency"),
    Source("line_amount_types", Kind.TEXT, False, "Exclusive, Inclusive or NoTax"),
    Source("sub_total", Kind.DECIMAL, False, "total before tax"),
    Source("total_tax", Kind.DECIMAL, False, "tax total"),
    Source("total", Kind.DECIMAL, False, "bill total"),
    Source("po_numbers", Kind.TEXT, True, "PO context: numbers of the matched purchase orders"),
    Source("po_ids", Kind.TEXT, True, "PO context: Xero PurchaseOrderIDs of the matched purchase orders"),
    Source("po.<n>.number", Kind.TEXT, False, "PO context: number of the n-th matched purchase order"),
    Source("po.<n>.id", Kind.TEXT, False, "PO context: Xero PurchaseOrderID of the n-th purchase order"),
    Source("po.<n>.date", Kind.DATE, False, "PO context: date of the n-th purchase order"),
    Source("po.<n>.total", Kind.DECIMAL, False, "PO context: total of the n-th purchase order"),
    Source("applied_to_invoice_ids", Kind.TEXT, True, "credit note: Xero InvoiceIDs of the bills it is allocated to"),
    Source("applied_to_invoice_numbers", Kind.TEXT, True, "credit note: numbers of the bills it is allocated to"),
    Source("applied_amounts", Kind.DECIMAL, True, "credit note: the amount applied to each of those bills"),
    Source("allocations.<n>.invoice_id", Kind.TEXT, False, "credit note: InvoiceID of its n-th allocation"),
    Source("allocations.<n>.invoice_number", Kind.TEXT, False, "credit note: bill number of its n-th allocation"),
    Source("allocations.<n>.amount", Kind.DECIMAL, False, "credit note: amount of its n-th allocation"),
    Source("allocations.<n>.date", Kind.DATE, False, "credit note: date of its n-th allocation"),
    Source("reference", Kind.TEXT, False, "credit note: its Reference in Xero"),
    Source("documents", Kind.TEXT, True, "the supplier's documents sent with the bill: their names relative to the "
                                        "data file (in the batch's ZIP, or in its folder: documents: {layout})"),
    Source("flagged", Kind.BOOL, False, "hold flag: true when the bill is delivered flagged for review"),
    Source("flags", Kind.TEXT, True, "why the bill is flagged, one text per reason"),
    Source("released", Kind.BOOL, False, "true when a person released the bill from a hold (not on hold)"),
    Source("release_note", Kind.TEXT, False, "who released the bill, why, and what had held it"),
)

#: Fields of one bill line, written `line.<pattern>` in a template.
LINE_SOURCES: tuple[Source, ...] = (
    Source("line_number", Kind.INT, False, "1-based position of the line in the Xero bill"),
    Source("description", Kind.TEXT, False, "line description"),
    Source("quantity", Kind.DECIMAL, False, "quantity"),
    Source("unit_amount", Kind.DECIMAL, False, "unit price"),
    Source("line_amount", Kind.DECIMAL, False, "line amount"),
    Source("tax_amount", Kind.DECIMAL, False, "line tax"),
    Source("account_code", Kind.TEXT, False, "Xero account code"),
    Source("gl_code", Kind.TEXT, False, "the Stampli GL code the GL map gives for the account"),
    Source("tracking.<n>.category", Kind.TEXT, False, "Xero tracking category name (n = 0 or 1)"),
    Source("tracking.<n>.option", Kind.TEXT, False, "Xero tracking option name (n = 0 or 1)"),
    Source("tracking_option.<category>", Kind.TEXT, False,
           "the line's option in the Xero tracking category so named, wherever it sits on the line"),
    Source("dimensions.<name>", Kind.TEXT, False, "Stampli dimension value, e.g. line.dimensions.cost_center"),
)

LINE_PREFIX = "line."

#: Which record a template renders: bills, or one master-data kind (the values of `record:` in a template).
BILL_RECORD = "bills"

_ADDRESS_PARTS = ("line1", "line2", "line3", "line4", "city", "region", "postal_code", "country", "attention_to")

#: Master data: the fields of each kind's row (connector.domain.masterdata builds the rows).
VENDOR_SOURCES: tuple[Source, ...] = (
    Source("vendor_id", Kind.TEXT, False, "Xero ContactID: the key of the vendor"),
    Source("name", Kind.TEXT, False, "vendor name in Xero"),
    Source("vendor_code", Kind.TEXT, False, "the customer's Stampli vendor id, when the vendor map gives one"),
    Source("status", Kind.TEXT, False, "ACTIVE, ARCHIVED or GDPRREQUEST, as Xero says"),
    Source("archived", Kind.BOOL, False, "true unless the contact is ACTIVE"),
    Source("merged", Kind.BOOL, False, "true when Xero merged this contact into another"),
    Source("merged_to", Kind.TEXT, False, "the ContactID it was merged into"),
    Source("merged_to_code", Kind.TEXT, False, "the Stampli vendor code of the contact it was merged into"),
    Source("tax_number", Kind.TEXT, False, "tax number (ABN, VAT, EIN...)"),
    Source("currency", Kind.TEXT, False, "the vendor's default currency"),
    Source("email", Kind.TEXT, False, "email address"),
    Source("phone", Kind.TEXT, False, "default phone: country, area and number"),
    *(Source(f"{address}.{part}", Kind.TEXT, False, f"{what} address: {part.replace('_', ' ')}")
      for address, what in (("postal_address", "postal (POBOX)"), ("street_address", "street"))
      for part in _ADDRESS_PARTS),
)

GL_ACCOUNT_SOURCES: tuple[Source, ...] = (
    Source("account_id", Kind.TEXT, False, "Xero AccountID: the key of the account"),
    Source("code", Kind.TEXT, False, "Xero account code (what a bill line names)"),
    Source("name", Kind.TEXT, False, "account name"),
    Source("type", Kind.TEXT, False, "Xero account type (EXPENSE, DIRECTCOSTS, CURRLIAB...)"),
    Source("class", Kind.TEXT, False, "Xero account class (ASSET, EXPENSE, LIABILITY...)"),
    Source("status", Kind.TEXT, False, "ACTIVE or ARCHIVED"),
    Source("archived", Kind.BOOL, False, "true unless the account is ACTIVE"),
    Source("tax_type", Kind.TEXT, False, "Xero default tax type"),
    Source("description", Kind.TEXT, False, "account description"),
    Source("gl_code", Kind.TEXT, False, "the Stampli GL code the GL map gives for the account"),
)

DIMENSION_SOURCES: tuple[Source, ...] = (
    Source("dimension", Kind.TEXT, False, "Stampli dimension name, from the tracking map"),
    Source("value", Kind.TEXT, False, "Stampli dimension value, from the tracking map"),
    Source("category_id", Kind.TEXT, False, "Xero TrackingCategoryID"),
    Source("category", Kind.TEXT, False, "Xero tracking category name"),
    Source("option_id", Kind.TEXT, False, "Xero TrackingOptionID: the key of the value"),
    Source("option", Kind.TEXT, False, "Xero tracking option name"),
    Source("status", Kind.TEXT, False, "ACTIVE, or ARCHIVED when the option or its category is"),
    Source("archived", Kind.BOOL, False, "true when the option or its category is archived"),
)

PURCHASE_ORDER_SOURCES: tuple[Source, ...] = (
    Source("purchase_order_id", Kind.TEXT, False, "Xero PurchaseOrderID: the key of the PO"),
    Source("number", Kind.TEXT, False, "PO number"),
    Source("reference", Kind.TEXT, False, "PO reference"),
    Source("vendor_id", Kind.TEXT, False, "Xero ContactID of the supplier"),
    Source("vendor_name", Kind.TEXT, False, "supplier name"),
    Source("vendor_code", Kind.TEXT, False, "the customer's Stampli vendor id, when the vendor map gives one"),
    Source("date", Kind.DATE, False, "PO date"),
    Source("delivery_date", Kind.DATE, False, "delivery date"),
    Source("status", Kind.TEXT, False, "AUTHORISED, BILLED, DELETED... as Xero says"),
    Source("open", Kind.BOOL, False, "true while the PO is AUTHORISED (billable, not yet billed)"),
    Source("currency", Kind.TEXT, False, "ISO 4217 currency code"),
    Source("currency_rate", Kind.DECIMAL, False, "Xero's rate to the base currency"),
    Source("line_amount_types", Kind.TEXT, False, "Exclusive, Inclusive or NoTax"),
    Source("sub_total", Kind.DECIMAL, False, "total before tax"),
    Source("total_tax", Kind.DECIMAL, False, "tax total"),
    Source("total", Kind.DECIMAL, False, "PO total"),
)

PURCHASE_ORDER_LINE_SOURCES: tuple[Source, ...] = (
    Source("line_number", Kind.INT, False, "1-based position of the line in the PO"),
    Source("description", Kind.TEXT, False, "line description"),
    Source("item_code", Kind.TEXT, False, "Xero item code"),
    Source("quantity", Kind.DECIMAL, False, "quantity"),
    Source("unit_amount", Kind.DECIMAL, False, "unit price"),
    Source("line_amount", Kind.DECIMAL, False, "line amount"),
    Source("tax_amount", Kind.DECIMAL, False, "line tax"),
    Source("account_code", Kind.TEXT, False, "Xero account code"),
    Source("gl_code", Kind.TEXT, False, "the Stampli GL code the GL map gives for the account"),
    Source("tracking_option.<category>", Kind.TEXT, False,
           "the line's option in the Xero tracking category so named, wherever it sits on the line"),
    Source("dimensions.<name>", Kind.TEXT, False, "Stampli dimension value, e.g. line.dimensions.department"),
)

#: Per record: its header sources, its line sources, and the field that keys a record in a file.
CATALOGUES: dict[str, tuple[tuple[Source, ...], tuple[Source, ...], str]] = {
    BILL_RECORD: (HEADER_SOURCES, LINE_SOURCES, "invoice_id"),
    "vendors": (VENDOR_SOURCES, (), "vendor_id"),
    "gl_accounts": (GL_ACCOUNT_SOURCES, (), "account_id"),
    "dimensions": (DIMENSION_SOURCES, (), "option_id"),
    "purchase_orders": (PURCHASE_ORDER_SOURCES, PURCHASE_ORDER_LINE_SOURCES, "purchase_order_id"),
}


@dataclass(frozen=True)
class Lookup:
    """A path step into a list of objects: the first whose `field` equals `value` (a tracking category)."""

    field: str
    value: str


Segment = str | int | Lookup


@dataclass(frozen=True)
class Resolved:
    """A template's `source` understood: which catalogue entry, and the path to walk in the record."""

    source: Source
    on_line: bool                  # read from a line (`line.` prefix), not from the bill
    path: tuple[Segment, ...]      # dict keys and list indexes


_INDEX = re.compile(r"0|[1-9]\d{0,3}")


def _match(pattern: str, segments: list[str]) -> tuple[Segment, ...] | None:
    parts = pattern.split(".")
    if len(parts) != len(segments):
        return None
    path: list[Segment] = []
    for part, segment in zip(parts, segments, strict=True):
        if part == "<n>" and _INDEX.fullmatch(segment):
            path.append(int(segment))
        elif (part == "<name>" and segment) or part == segment:
            path.append(segment)
        else:
            return None
    return tuple(path)


_BY_CATEGORY = "tracking_option."


def resolve(source: str, record: str = BILL_RECORD) -> Resolved | None:
    """The catalogue entry and record path for a dotted source of this record (bills, or a master-data
    kind), or None when no entry matches."""
    header_sources, line_sources, _key = CATALOGUES[record]
    on_line = source.startswith(LINE_PREFIX)
    category = source.removeprefix(LINE_PREFIX).removeprefix(_BY_CATEGORY) if on_line else ""
    if on_line and source.startswith(LINE_PREFIX + _BY_CATEGORY) and category.strip():
        # a category name may hold dots and spaces: everything after the prefix is the name
        entry = next((s for s in line_sources if s.pattern.startswith(_BY_CATEGORY)), None)
        if entry is None:
            return None
        return Resolved(entry, True, ("tracking", Lookup("category", category), "option"))
    segments = source.removeprefix(LINE_PREFIX).split(".") if on_line else source.split(".")
    for entry in line_sources if on_line else header_sources:
        path = _match(entry.pattern, segments)
        if path is not None:
            return Resolved(entry, on_line, path)
    return None


def resolve_any(source: str) -> Resolved | None:
    """The source in the bills' catalogue, else in the first master-data kind's that has it."""
    for record in CATALOGUES:
        found = resolve(source, record)
        if found is not None:
            return found
    return None


def suggest(source: str, record: str = BILL_RECORD) -> str:
    """A 'did you mean' hint for an unknown source, or the empty string."""
    header_sources, line_sources, _key = CATALOGUES[record]
    known = [s.pattern for s in header_sources] + [LINE_PREFIX + s.pattern for s in line_sources]
    close = difflib.get_close_matches(source, known, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""
