"""Typed records parsed from Xero's JSON: Decimal money, UTC dates, and errors that name the field."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from connector.errors import RecordProblem
from connector.xero.dates import parse_date, parse_ms


@dataclass(frozen=True)
class Tracking:
    category: str
    option: str
    category_id: str = ""
    option_id: str = ""


@dataclass(frozen=True)
class LineItem:
    line_number: int
    description: str
    quantity: Decimal
    unit_amount: Decimal
    line_amount: Decimal
    tax_amount: Decimal
    account_code: str | None
    tracking: tuple[Tracking, ...]


@dataclass(frozen=True)
class XeroBill:
    invoice_id: str
    type: str
    status: str
    invoice_number: str
    contact_id: str
    contact_name: str
    issue_date: date | None
    due_date: date | None
    currency: str
    currency_rate: Decimal | None
    line_amount_types: str
    sub_total: Decimal
    total_tax: Decimal
    total: Decimal
    updated_ms: int
    lines: tuple[LineItem, ...]


@dataclass(frozen=True)
class PurchaseOrder:
    purchase_order_id: str
    number: str
    contact_id: str | None
    status: str
    total: Decimal
    currency: str = ""
    issue_date: date | None = None
    lines: tuple[dict[str, str], ...] = ()  # description, quantity, unit and line amounts, account code


@dataclass(frozen=True)
class Vendor:
    """A Xero contact as mapping needs it."""

    contact_id: str
    name: str
    status: str  # ACTIVE | ARCHIVED | GDPRREQUEST
    is_supplier: bool
    merged_to: str | None
    tax_number: str


@dataclass(frozen=True)
class Account:
    code: str
    status: str  # ACTIVE | ARCHIVED | DELETED


class _Reader:
    """Reads fields from one record, raising RecordProblem that names the record and the field."""

    def __init__(self, record: str, data: dict[str, Any]) -> None:
        self.record = record
        self.data = data

    def text(self, name: str, *, required: bool = True, default: str = "") -> str:
        value = self.data.get(name)
        if value is None:
            if required:
                raise RecordProblem(self.record, name, "is missing")
            return default
        if not isinstance(value, str):
            raise RecordProblem(self.record, name, f"must be text, got {type(value).__name__}")
        return value

    def money(self, name: str, *, default: Decimal | None = None) -> Decimal:
        value = self.data.get(name)
        if value is None:
            if default is not None:
                return default
            raise RecordProblem(self.record, name, "is missing")
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise RecordProblem(self.record, name, f"must be a number, got {value!r}")
        try:
            return Decimal(str(value))
        except InvalidOperation:
            raise RecordProblem(self.record, name, f"must be a number, got {value!r}") from None

    def day(self, name: str) -> date | None:
        value = self.data.get(name)
        if value in (None, ""):
            return None
        try:
            return parse_date(str(value))
        except ValueError:
            raise RecordProblem(self.record, name, f"is not a Xero date: {value!r}") from None

    def instant_ms(self, name: str) -> int:
        try:
            return parse_ms(self.text(name))
        except ValueError:
            raise RecordProblem(self.record, name, f"is not a Xero timestamp: {self.data.get(name)!r}") from None


def parse_bill(data: dict[str, Any], *, tenant_id: str, label: str = "invoice") -> XeroBill:
    """Parse one Invoices record; any bad field raises RecordProblem naming tenant, invoice and field.
    (A credit note is parsed as one too, under its own `label`: see domain.credit_notes.)"""
    invoice_id = data.get("InvoiceID")
    if not isinstance(invoice_id, str) or not invoice_id:
        raise RecordProblem(f"tenant {tenant_id} {label} <unknown>", "InvoiceID", "is missing")
    read = _Reader(f"tenant {tenant_id} {label} {invoice_id}", data)
    contact = data.get("Contact") or {}
    if not isinstance(contact, dict) or not contact.get("ContactID"):
        raise RecordProblem(read.record, "Contact.ContactID", "is missing")
    lines = []
    for number, raw in enumerate(data.get("LineItems") or [], start=1):
        line = _Reader(f"{read.record} line {number}", raw)
        tracking = tuple(
            Tracking(category=str(t.get("Name", "")), option=str(t.get("Option", "")),
                     category_id=str(t.get("TrackingCategoryID") or ""), option_id=str(t.get("TrackingOptionID") or ""))
            for t in raw.get("Tracking") or []
        )
        lines.append(
            LineItem(
                line_number=number,
                description=line.text("Description", required=False),
                quantity=line.money("Quantity", default=Decimal("1")),
                unit_amount=line.money("UnitAmount", default=Decimal("0")),
                line_amount=line.money("LineAmount"),
                tax_amount=line.money("TaxAmount", default=Decimal("0")),
                account_code=line.text("AccountCode", required=False) or None,
                tracking=tracking,
            )
        )
    rate = data.get("CurrencyRate")
    return XeroBill(
        invoice_id=invoice_id,
        type=read.text("Type"),
        status=read.text("Status"),
        invoice_number=read.text("InvoiceNumber", required=False),
        contact_id=str(contact["ContactID"]),
        contact_name=str(contact.get("Name", "")),
        issue_date=read.day("Date"),
        due_date=read.day("DueDate"),
        currency=read.text("CurrencyCode", required=False, default=""),
        currency_rate=read.money("CurrencyRate") if rate is not None else None,
        line_amount_types=read.text("LineAmountTypes", required=False, default="Exclusive"),
        sub_total=read.money("SubTotal", default=Decimal("0")),
        total_tax=read.money("TotalTax", default=Decimal("0")),
        total=read.money("Total"),
        updated_ms=read.instant_ms("UpdatedDateUTC"),
        lines=tuple(lines),
    )


def parse_purchase_order(data: dict[str, Any], *, tenant_id: str) -> PurchaseOrder:
    po_id = data.get("PurchaseOrderID")
    if not isinstance(po_id, str) or not po_id:
        raise RecordProblem(f"tenant {tenant_id} purchase order <unknown>", "PurchaseOrderID", "is missing")
    read = _Reader(f"tenant {tenant_id} purchase order {po_id}", data)
    contact = data.get("Contact") or {}
    return PurchaseOrder(
        purchase_order_id=po_id,
        number=read.text("PurchaseOrderNumber"),
        contact_id=str(contact.get("ContactID")) if isinstance(contact, dict) and contact.get("ContactID") else None,
        status=read.text("Status"),
        total=read.money("Total", default=Decimal("0")),
        currency=read.text("CurrencyCode", required=False),
        issue_date=read.day("Date"),
        lines=tuple(
            {"description": str(line.get("Description") or ""), "quantity": str(line.get("Quantity", "")),
             "unit_amount": str(line.get("UnitAmount", "")), "line_amount": str(line.get("LineAmount", "")),
             "account_code": str(line.get("AccountCode") or "")}
            for line in data.get("LineItems") or []
        ),
    )


def parse_vendor(data: dict[str, Any]) -> Vendor:
    """Contacts come from our own store (already checked on the way in), so this is lenient."""
    return Vendor(
        contact_id=str(data.get("ContactID") or ""),
        name=str(data.get("Name") or ""),
        status=str(data.get("ContactStatus") or "ACTIVE"),
        is_supplier=bool(data.get("IsSupplier", True)),
        merged_to=str(data["MergedToContactID"]) if data.get("MergedToContactID") else None,
        tax_number=str(data.get("TaxNumber") or ""),
    )
