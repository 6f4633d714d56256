"""Records to Xero's JSON: field names, `/Date()/` values, helper strings and fixed-scale decimals.

Amounts are written as JSON numbers with Xero's scale (`30.00`, Quantity `1.0000`, CurrencyRate
`1.000000`), never through float. Invoices and purchase orders are encoded once per form and cached on
the record, so a 1,000-record page is a string join.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

from sandbox.xero import choices, msdate
from sandbox.xero.model import (
    Account,
    Contact,
    CreditNote,
    Invoice,
    LineItem,
    Organisation,
    PurchaseOrder,
    Tenant,
    TrackingCategory,
)

_MARK = "\x00"
_NUMBER = re.compile(r'"\\u0000(-?[0-9.]+(?:E[-+]?[0-9]+)?)\\u0000"')
QTY = Decimal("0.0001")
UNIT4 = Decimal("0.0001")
UNIT2 = Decimal("0.01")
RATE = Decimal("0.000001")


def _default(value: object) -> str:
    if isinstance(value, Decimal):
        return f"{_MARK}{value}{_MARK}"
    raise TypeError(f"cannot encode {type(value).__name__}")


def encode(document: Any) -> str:
    """JSON text with Decimals written as plain numbers at their own scale."""
    text = json.dumps(document, default=_default, ensure_ascii=False, separators=(",", ":"))
    return _NUMBER.sub(r"\1", text) if "\\u0000" in text else text


def _line(line: LineItem, unitdp: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "LineItemID": line.line_item_id,
        "Description": line.description,
        "Quantity": line.quantity.quantize(QTY),
        "UnitAmount": line.unit_amount.quantize(UNIT4 if unitdp == 4 else UNIT2),
    }
    if line.item_code:
        out["ItemCode"] = line.item_code
    if line.account_code is not None:
        out["AccountCode"] = line.account_code
    if line.account_id is not None:
        out["AccountID"] = line.account_id
    out.update({
        "TaxType": line.tax_type,
        "TaxAmount": line.tax_amount,
        "LineAmount": line.line_amount,
        "Tracking": [
            {"Name": t.category_name, "Option": t.option_name, "TrackingCategoryID": t.category_id,
             "TrackingOptionID": t.option_id}
            for t in line.tracking
        ],
    })
    return out


def contact_ref(contact: Contact, full: bool) -> dict[str, Any]:
    """The contact as embedded in an invoice or PO: abbreviated in unpaged lists."""
    ref: dict[str, Any] = {"ContactID": contact.contact_id, "Name": contact.name}
    if full:
        ref.update({
            "ContactStatus": contact.status, "EmailAddress": contact.email, "Addresses": [], "Phones": [],
            "ContactGroups": [], "ContactPersons": [], "IsSupplier": contact.is_supplier,
            "IsCustomer": contact.is_customer,
        })
    ref["HasValidationErrors"] = False
    return ref


def invoice(inv: Invoice, tenant_contacts: dict[str, Contact], *, full: bool, unitdp: int = 2) -> str:
    """Encoded invoice; `full` adds line items and the full contact (paged lists and single reads)."""
    key = (full, unitdp)
    cached = inv.cache.get(key)
    if cached is not None:
        return str(cached)
    doc: dict[str, Any] = {"Type": inv.type, "InvoiceID": inv.invoice_id, "InvoiceNumber": inv.number}
    if inv.type == "ACCREC":
        doc["Reference"] = inv.reference
    doc.update({
        "Payments": [
            {"PaymentID": p.payment_id, "Date": msdate.date_field(p.day), "Amount": p.amount,
             "Reference": p.reference, "CurrencyRate": p.currency_rate.quantize(RATE), "HasAccount": False,
             "HasValidationErrors": False}
            for p in inv.payments
        ],
        "CreditNotes": [
            {"CreditNoteID": c.credit_note_id, "CreditNoteNumber": c.number, "AppliedAmount": c.amount,
             "Date": msdate.date_field(c.day), "DateString": msdate.date_string(c.day), "Total": c.total,
             "LineItems": [], "HasErrors": False}
            for c in inv.credits
        ],
        "Prepayments": [], "Overpayments": [],
        "AmountDue": inv.amount_due, "AmountPaid": inv.amount_paid, "AmountCredited": inv.amount_credited,
        "CurrencyRate": inv.currency_rate.quantize(RATE),
        "IsDiscounted": False, "HasAttachments": bool(inv.attachments), "HasErrors": False,
        "Contact": contact_ref(tenant_contacts[inv.contact_id], full),
        "DateString": msdate.date_string(inv.day), "Date": msdate.date_field(inv.day),
        "DueDateString": msdate.date_string(inv.due_day), "DueDate": msdate.date_field(inv.due_day),
        "Status": inv.status, "LineAmountTypes": inv.line_amount_types,
        "LineItems": [_line(li, unitdp) for li in inv.lines] if full else [],
        "SubTotal": inv.sub_total, "TotalTax": inv.total_tax, "Total": inv.total,
        "UpdatedDateUTC": msdate.timestamp_field(inv.updated),
        "UpdatedDateUTCString": msdate.utc_string(inv.updated),
        "CurrencyCode": inv.currency_code,
    })
    if not full and not choices.UNPAGED_INVOICES_SEND_EMPTY_LINE_ITEMS:
        del doc["LineItems"]
    if inv.fully_paid_on is not None:
        doc["FullyPaidOnDate"] = msdate.date_field(inv.fully_paid_on)
    text = encode(doc)
    inv.cache[key] = text
    return text


def credit_note(note: CreditNote, tenant_contacts: dict[str, Contact], invoice_numbers: dict[str, str], *,
                full: bool, unitdp: int = 2) -> str:
    """Encoded credit note with its allocations (each naming the invoice it is applied to); `full` adds
    line items and the full contact (paged lists and single reads), as for invoices."""
    key = (full, unitdp)
    cached = note.cache.get(key)
    if cached is not None:
        return str(cached)
    doc: dict[str, Any] = {
        "CreditNoteID": note.credit_note_id, "CreditNoteNumber": note.number, "Payments": [],
        "Type": note.type, "Reference": note.reference, "RemainingCredit": note.remaining_credit,
        "Allocations": [
            {"AllocationID": a.allocation_id, "Amount": a.amount, "Date": msdate.date_field(a.day),
             "Invoice": {"InvoiceID": a.invoice_id, "InvoiceNumber": invoice_numbers.get(a.invoice_id, ""),
                         "Payments": [], "CreditNotes": [], "Prepayments": [], "Overpayments": [],
                         "HasErrors": False, "IsDiscounted": False, "LineItems": []},
             "IsDeleted": False}
            for a in note.allocations
        ],
        "HasAttachments": bool(note.attachments), "HasErrors": False,
        "Contact": contact_ref(tenant_contacts[note.contact_id], full),
        "DateString": msdate.date_string(note.day), "Date": msdate.date_field(note.day),
        "Status": note.status, "LineAmountTypes": note.line_amount_types,
        "LineItems": [_line(li, unitdp) for li in note.lines] if full else [],
        "SubTotal": note.sub_total, "TotalTax": note.total_tax, "Total": note.total,
        "UpdatedDateUTC": msdate.timestamp_field(note.updated),
        "UpdatedDateUTCString": msdate.utc_string(note.updated),
        "CurrencyCode": note.currency_code, "CurrencyRate": note.currency_rate.quantize(RATE),
    }
    if note.fully_paid_on is not None:
        doc["FullyPaidOnDate"] = msdate.date_field(note.fully_paid_on)
    text = encode(doc)
    note.cache[key] = text
    return text


def purchase_order(po: PurchaseOrder, tenant_contacts: dict[str, Contact], *, unitdp: int = 2) -> str:
    cached = po.cache.get(unitdp)
    if cached is not None:
        return str(cached)
    doc = {
        "PurchaseOrderID": po.purchase_order_id, "PurchaseOrderNumber": po.number,
        "DateString": msdate.date_string(po.day), "Date": msdate.date_field(po.day),
        "DeliveryDateString": msdate.date_string(po.delivery_day), "DeliveryDate": msdate.date_field(po.delivery_day),
        "DeliveryAddress": po.delivery_address, "AttentionTo": po.attention_to, "Telephone": "",
        "DeliveryInstructions": po.delivery_instructions, "HasErrors": False, "IsDiscounted": False,
        "Reference": po.reference, "Type": "PURCHASEORDER", "CurrencyRate": po.currency_rate.quantize(RATE),
        "CurrencyCode": po.currency_code, "Contact": contact_ref(tenant_contacts[po.contact_id], True),
        "Status": po.status, "LineAmountTypes": po.line_amount_types,
        "LineItems": [_line(li, unitdp) for li in po.lines],
        "SubTotal": po.sub_total, "TotalTax": po.total_tax, "Total": po.total,
        "UpdatedDateUTC": msdate.timestamp_field(po.updated), "HasAttachments": False,
    }
    text = encode(doc)
    po.cache[unitdp] = text
    return text


def contact(c: Contact, *, full: bool) -> dict[str, Any]:
    """A contact record; fields Xero sends only when paging or reading one contact need `full`."""
    doc: dict[str, Any] = {
        "ContactID": c.contact_id, "ContactStatus": c.status, "Name": c.name,
        "AccountNumber": c.account_number, "EmailAddress": c.email, "BankAccountDetails": "",
        "TaxNumber": c.tax_number,
        "Addresses": [
            {"AddressType": "STREET", "City": c.city, "Region": "", "PostalCode": "", "Country": c.country},
            {"AddressType": "POBOX", "City": "", "Region": "", "PostalCode": "", "Country": ""},
        ],
        "Phones": [{"PhoneType": "DEFAULT", "PhoneNumber": "", "PhoneAreaCode": "", "PhoneCountryCode": ""}],
        "UpdatedDateUTC": msdate.timestamp_field(c.updated), "ContactGroups": [],
        "IsSupplier": c.is_supplier, "IsCustomer": c.is_customer,
    }
    if c.contact_number:
        doc["ContactNumber"] = c.contact_number
    if c.default_currency:
        doc["DefaultCurrency"] = c.default_currency
    if c.purchases_account_code:
        doc["PurchasesDefaultAccountCode"] = c.purchases_account_code
    doc.update({"ContactPersons": [], "HasAttachments": False, "HasValidationErrors": False})
    if full:
        if c.merged_to:
            doc["MergedToContactID"] = c.merged_to
        doc["PurchasesDefaultLineAmountType"] = "EXCLUSIVE"
        doc["SalesDefaultLineAmountType"] = "EXCLUSIVE"
        doc["PaymentTerms"] = {"Bills": {"Day": c.bill_terms_days, "Type": "DAYSAFTERBILLDATE"}}
    return doc


def account(a: Account) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "AccountID": a.account_id, "Code": a.code, "Name": a.name, "Status": a.status, "Type": a.type,
        "TaxType": a.tax_type, "Description": a.description, "Class": a.account_class,
        "EnablePaymentsToAccount": False, "ShowInExpenseClaims": a.account_class == "EXPENSE",
        "BankAccountType": "BANK" if a.type == "BANK" else "", "ReportingCode": "",
        "HasAttachments": False, "UpdatedDateUTC": msdate.timestamp_field(a.updated), "AddToWatchlist": False,
    }
    if a.system_account:
        doc["SystemAccount"] = a.system_account
    if a.bank_account_number:
        doc["BankAccountNumber"] = a.bank_account_number
    return doc


def tracking_category(t: TrackingCategory, *, include_archived: bool) -> dict[str, Any]:
    options = [o for o in t.options if include_archived or o.status == "ACTIVE"]
    return {
        "Name": t.name, "Status": t.status, "TrackingCategoryID": t.category_id,
        "Options": [
            {"TrackingOptionID": o.option_id, "Name": o.name, "Status": o.status, "HasValidationErrors": False,
             "IsDeleted": o.status == "DELETED", "IsArchived": o.status == "ARCHIVED",
             "IsActive": o.status == "ACTIVE"}
            for o in options
        ],
    }


_FISCAL = {"NZ": ("INVOICE", "TWOMONTHS"), "AU": ("ACCRUALS", "QUARTERLY1"), "GB": ("ACCRUAL", "QUARTERLY1")}


def organisation(tenant: Tenant) -> dict[str, Any]:
    o: Organisation = tenant.organisation
    basis, period = _FISCAL.get(o.country_code, ("ACCRUAL", "QUARTERLY1"))
    return {
        "APIKey": "", "Name": o.name, "LegalName": o.legal_name, "PaysTax": True, "Version": o.version,
        "OrganisationType": "COMPANY", "BaseCurrency": o.base_currency, "CountryCode": o.country_code,
        "IsDemoCompany": False, "OrganisationStatus": "ACTIVE", "TaxNumber": o.tax_number,
        "FinancialYearEndDay": 31, "FinancialYearEndMonth": 3, "SalesTaxBasis": basis, "SalesTaxPeriod": period,
        "DefaultSalesTax": "Tax Exclusive", "DefaultPurchasesTax": "Tax Exclusive",
        "CreatedDateUTC": msdate.timestamp_field(o.created), "OrganisationEntityType": "COMPANY",
        "Timezone": o.timezone, "ShortCode": o.short_code, "OrganisationID": o.organisation_id,
        "Edition": "BUSINESS", "Class": "PREMIUM", "LineOfBusiness": o.line_of_business,
        "Addresses": [], "Phones": [], "ExternalLinks": [], "PaymentTerms": {},
    }
