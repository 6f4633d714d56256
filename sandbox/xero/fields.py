"""The fields `where` and `order` may name, per entity, with their LINQ types.

Getters read the typed record (not its JSON) so a filter over 10,000 bills stays fast. The second
argument is the tenant's contacts by id, for `Contact.Name` and friends.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from typing import Any

from sandbox.xero.model import Contact
from sandbox.xero.where import Field, Schema, Value


def _schema(*fields: tuple[str, str, Callable[[Any, dict[str, Contact]], Value]]) -> Schema:
    return {name.lower(): Field(name, kind, get) for name, kind, get in fields}


def _day(value: date | None) -> datetime | None:
    return None if value is None else datetime.combine(value, time(), UTC)


def _guid(value: str | None) -> uuid.UUID | None:
    return None if not value else uuid.UUID(value)


def _contact_fields() -> tuple[tuple[str, str, Callable[[Any, dict[str, Contact]], Value]], ...]:
    return (
        ("Contact.ContactID", "guid", lambda r, c: uuid.UUID(r.contact_id)),
        ("Contact.Name", "string", lambda r, c: c[r.contact_id].name),
        ("Contact.ContactNumber", "string", lambda r, c: c[r.contact_id].contact_number),
        ("Contact.ContactStatus", "string", lambda r, c: c[r.contact_id].status),
    )


INVOICE = _schema(
    ("Type", "string", lambda r, c: r.type),
    ("InvoiceID", "guid", lambda r, c: uuid.UUID(r.invoice_id)),
    ("InvoiceNumber", "string", lambda r, c: r.number),
    ("Reference", "string", lambda r, c: r.reference),
    ("Status", "string", lambda r, c: r.status),
    ("LineAmountTypes", "string", lambda r, c: r.line_amount_types),
    ("CurrencyCode", "string", lambda r, c: r.currency_code),
    ("CurrencyRate", "number", lambda r, c: r.currency_rate),
    ("Date", "datetime", lambda r, c: _day(r.day)),
    ("DueDate", "datetime", lambda r, c: _day(r.due_day)),
    ("FullyPaidOnDate", "datetime", lambda r, c: _day(r.fully_paid_on)),
    ("UpdatedDateUTC", "datetime", lambda r, c: r.updated),
    ("SubTotal", "number", lambda r, c: r.sub_total),
    ("TotalTax", "number", lambda r, c: r.total_tax),
    ("Total", "number", lambda r, c: r.total),
    ("AmountDue", "number", lambda r, c: r.amount_due),
    ("AmountPaid", "number", lambda r, c: r.amount_paid),
    ("AmountCredited", "number", lambda r, c: r.amount_credited),
    ("HasAttachments", "bool", lambda r, c: bool(r.attachments)),
    ("IsDiscounted", "bool", lambda r, c: False),
    ("SentToContact", "bool", lambda r, c: False),
    *_contact_fields(),
)

CREDIT_NOTE = _schema(
    ("Type", "string", lambda r, c: r.type),
    ("CreditNoteID", "guid", lambda r, c: uuid.UUID(r.credit_note_id)),
    ("CreditNoteNumber", "string", lambda r, c: r.number),
    ("Reference", "string", lambda r, c: r.reference),
    ("Status", "string", lambda r, c: r.status),
    ("LineAmountTypes", "string", lambda r, c: r.line_amount_types),
    ("CurrencyCode", "string", lambda r, c: r.currency_code),
    ("CurrencyRate", "number", lambda r, c: r.currency_rate),
    ("Date", "datetime", lambda r, c: _day(r.day)),
    ("FullyPaidOnDate", "datetime", lambda r, c: _day(r.fully_paid_on)),
    ("UpdatedDateUTC", "datetime", lambda r, c: r.updated),
    ("SubTotal", "number", lambda r, c: r.sub_total),
    ("TotalTax", "number", lambda r, c: r.total_tax),
    ("Total", "number", lambda r, c: r.total),
    ("RemainingCredit", "number", lambda r, c: r.remaining_credit),
    ("HasAttachments", "bool", lambda r, c: bool(r.attachments)),
    ("SentToContact", "bool", lambda r, c: False),
    *_contact_fields(),
)

PURCHASE_ORDER = _schema(
    ("PurchaseOrderID", "guid", lambda r, c: uuid.UUID(r.purchase_order_id)),
    ("PurchaseOrderNumber", "string", lambda r, c: r.number),
    ("Reference", "string", lambda r, c: r.reference),
    ("Status", "string", lambda r, c: r.status),
    ("CurrencyCode", "string", lambda r, c: r.currency_code),
    ("Date", "datetime", lambda r, c: _day(r.day)),
    ("DeliveryDate", "datetime", lambda r, c: _day(r.delivery_day)),
    ("UpdatedDateUTC", "datetime", lambda r, c: r.updated),
    ("SubTotal", "number", lambda r, c: r.sub_total),
    ("TotalTax", "number", lambda r, c: r.total_tax),
    ("Total", "number", lambda r, c: r.total),
    *_contact_fields(),
)

CONTACT = _schema(
    ("ContactID", "guid", lambda r, c: uuid.UUID(r.contact_id)),
    ("ContactNumber", "string", lambda r, c: r.contact_number),
    ("AccountNumber", "string", lambda r, c: r.account_number),
    ("ContactStatus", "string", lambda r, c: r.status),
    ("Name", "string", lambda r, c: r.name),
    ("EmailAddress", "string", lambda r, c: r.email),
    ("TaxNumber", "string", lambda r, c: r.tax_number),
    ("DefaultCurrency", "string", lambda r, c: r.default_currency),
    ("IsSupplier", "bool", lambda r, c: r.is_supplier),
    ("IsCustomer", "bool", lambda r, c: r.is_customer),
    ("MergedToContactID", "guid", lambda r, c: _guid(r.merged_to)),
    ("UpdatedDateUTC", "datetime", lambda r, c: r.updated),
)

ACCOUNT = _schema(
    ("AccountID", "guid", lambda r, c: uuid.UUID(r.account_id)),
    ("Code", "string", lambda r, c: r.code),
    ("Name", "string", lambda r, c: r.name),
    ("Type", "string", lambda r, c: r.type),
    ("Status", "string", lambda r, c: r.status),
    ("Class", "string", lambda r, c: r.account_class),
    ("TaxType", "string", lambda r, c: r.tax_type),
    ("Description", "string", lambda r, c: r.description),
    ("SystemAccount", "string", lambda r, c: r.system_account or None),
    ("BankAccountNumber", "string", lambda r, c: r.bank_account_number or None),
    ("UpdatedDateUTC", "datetime", lambda r, c: r.updated),
)

TRACKING_CATEGORY = _schema(
    ("TrackingCategoryID", "guid", lambda r, c: uuid.UUID(r.category_id)),
    ("Name", "string", lambda r, c: r.name),
    ("Status", "string", lambda r, c: r.status),
)
