"""The Accounting endpoints: Invoices, CreditNotes, PurchaseOrders, Contacts, Accounts, TrackingCategories,
Organisation.

Each handler gets an authenticated, rate-limited `ApiCall` for one tenant and returns a Response.
Unpaged Invoices lists carry no line items (`LineItems: []`) and abbreviated contacts; pages and
single reads carry everything. PurchaseOrders are always paged.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from functools import cached_property
from typing import Any
from urllib.parse import quote, unquote

from werkzeug.wrappers import Request, Response

from sandbox.xero import attachments, choices, fields, render
from sandbox.xero.query import (
    Args,
    BadParameter,
    Paging,
    changed_since,
    modified_since,
    ordered,
    page_of,
    paging,
)
from sandbox.xero.responses import envelope, json_response, not_found
from sandbox.xero.store import TenantStore
from sandbox.xero.where import Schema, compile_order, compile_where


@dataclass
class ApiCall:
    """One accounting request after authentication; the handler reports what it served."""

    request: Request
    tenant: TenantStore
    now: datetime
    provider: str
    key: str | None = None
    records_served: int = 0
    sub_key: str | None = None  # an attachment's id or file name under a record
    asked_page_size: int | None = None
    collection: str = ""

    @cached_property
    def args(self) -> Args:
        return Args(self.request.args.items(multi=True))

    @cached_property
    def since(self) -> datetime | None:
        return modified_since(self.request.headers.get("If-Modified-Since"))

    def answer(self, collection: str, items: list[str], pagination: dict[str, int] | None = None) -> Response:
        self.records_served = len(items)
        self.collection = collection
        return json_response(envelope(collection, items, now=self.now, provider=self.provider,
                                      pagination=pagination))


def invoices(call: ApiCall) -> Response:
    contacts = call.tenant.contacts_by_id
    unitdp = 4 if call.args.get("unitdp") == "4" else 2
    if call.key is not None:
        found = call.tenant.find_invoices(call.key)
        if not found:
            return not_found()
        return call.answer("Invoices", [render.invoice(i, contacts, full=True, unitdp=unitdp) for i in found])
    args = call.args
    records = call.tenant.invoices()
    ids = args.guids("IDs")
    if ids is not None:
        records = [r for r in records if r.invoice_id in ids]
    numbers = args.csv("InvoiceNumbers")
    if numbers is not None:
        wanted = set(numbers)
        records = [r for r in records if r.number in wanted]
    contact_ids = args.guids("ContactIDs")
    if contact_ids is not None:
        records = [r for r in records if r.contact_id in contact_ids]
    statuses = args.csv("Statuses")
    if choices.INVOICE_LIST_HIDES_DELETED and statuses is None:
        records = [r for r in records if r.status != "DELETED"]
    if statuses is not None:
        wanted_statuses = {s.upper() for s in statuses}
        records = [r for r in records if r.status in wanted_statuses]
    if args.flag("createdByMyApp"):
        records = []
    term = (args.get("searchTerm") or "").lower()
    if term:
        records = [r for r in records if term in r.number.lower() or term in r.reference.lower()]
    records = _where_and_order(call, records, fields.INVOICE, "Invoice")
    records = changed_since(records, call.since, lambda r: r.updated)
    p = _paging(call, args)
    page, pagination = page_of(records, p)
    full = p.paged and not args.flag("summaryOnly")
    return call.answer("Invoices", [render.invoice(i, contacts, full=full, unitdp=unitdp) for i in page], pagination)


def invoice_attachments(call: ApiCall) -> Response:
    """`Invoices/{id}/Attachments` lists a bill's documents; `.../Attachments/{AttachmentID or FileName}`
    answers one document's bytes with its MIME type (whatever `Accept` asks, as Xero's `ContentType`)."""
    assert call.key is not None
    found = call.tenant.find_invoices(call.key) if _guid_like(call.key) else []
    if not found:
        return not_found()
    return _attachments(call, "Invoices", found[0].invoice_id, found[0].attachments)


def credit_note_attachments(call: ApiCall) -> Response:
    """`CreditNotes/{id}/Attachments` and `.../Attachments/{AttachmentID or FileName}`, as for a bill."""
    assert call.key is not None
    found = call.tenant.find_credit_notes(call.key) if _guid_like(call.key) else []
    if not found:
        return not_found()
    return _attachments(call, "CreditNotes", found[0].credit_note_id, found[0].attachments)


def _attachments(call: ApiCall, collection: str, record_id: str,
                 documents: tuple[attachments.Attachment, ...]) -> Response:
    if call.sub_key is None:
        items = [render.encode({
            "AttachmentID": a.attachment_id, "FileName": a.file_name,
            "Url": f"https://api.xero.com/api.xro/2.0/{collection}/{record_id}/Attachments/"
                   f"{quote(a.file_name, safe='')}",
            "MimeType": a.mime_type, "ContentLength": a.content_length}) for a in documents]
        return call.answer("Attachments", items)
    attachment = call.tenant.attachment(record_id, unquote(call.sub_key), credit_note=collection == "CreditNotes")
    if attachment is None:
        return not_found()
    call.records_served, call.collection = 1, "Attachments"
    return Response(attachments.content(attachment), 200, {"Content-Type": attachment.mime_type})


def _guid_like(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def credit_notes(call: ApiCall) -> Response:
    """Supplier (ACCPAYCREDIT) and sales (ACCRECCREDIT) credit notes with their allocations; filtered,
    ordered and paged as invoices are (line items only on pages and single reads)."""
    contacts = call.tenant.contacts_by_id
    numbers = call.tenant.invoice_numbers()
    unitdp = 4 if call.args.get("unitdp") == "4" else 2
    if call.key is not None:
        found = call.tenant.find_credit_notes(call.key)
        if not found:
            return not_found()
        return call.answer("CreditNotes", [render.credit_note(n, contacts, numbers, full=True, unitdp=unitdp)
                                           for n in found])
    args = call.args
    records = _where_and_order(call, call.tenant.credit_notes(), fields.CREDIT_NOTE, "CreditNote")
    records = changed_since(records, call.since, lambda r: r.updated)
    p = _paging(call, args)
    page, pagination = page_of(records, p)
    return call.answer("CreditNotes", [render.credit_note(n, contacts, numbers, full=p.paged, unitdp=unitdp)
                                       for n in page], pagination)


def purchase_orders(call: ApiCall) -> Response:
    contacts = call.tenant.contacts_by_id
    unitdp = 4 if call.args.get("unitdp") == "4" else 2
    if call.key is not None:
        found = call.tenant.find_purchase_orders(call.key)
        if not found:
            return not_found()
        return call.answer("PurchaseOrders", [render.purchase_order(p, contacts, unitdp=unitdp) for p in found])
    args = call.args
    records = call.tenant.purchase_orders()
    status = args.get("Status")
    if status:
        records = [r for r in records if r.status == status.upper()]
    date_from, date_to = _day(args, "DateFrom"), _day(args, "DateTo")
    if date_from is not None:
        records = [r for r in records if r.day >= date_from]
    if date_to is not None:
        records = [r for r in records if r.day <= date_to]
    order = args.get("order")
    if order:
        records = ordered(records, compile_order(order, fields.PURCHASE_ORDER, "PurchaseOrder"), contacts)
    records = changed_since(records, call.since, lambda r: r.updated)
    page, pagination = page_of(records, _paging(call, args, paged_by_default=True))
    return call.answer("PurchaseOrders", [render.purchase_order(p, contacts, unitdp=unitdp) for p in page],
                       pagination)


def contacts(call: ApiCall) -> Response:
    if call.key is not None:
        found = call.tenant.find_contacts(call.key)
        if not found:
            return not_found()
        return call.answer("Contacts", [render.encode(render.contact(c, full=True)) for c in found])
    args = call.args
    records = list(call.tenant.tenant.contacts)
    ids = args.guids("IDs")
    if not args.flag("includeArchived") and not (ids is not None and choices.CONTACT_IDS_INCLUDE_ARCHIVED):
        records = [c for c in records if c.status != "ARCHIVED"]
    if ids is not None:
        records = [c for c in records if c.contact_id in ids]
    term = (args.get("searchTerm") or "").lower()
    if term:
        records = [c for c in records if any(term in v.lower() for v in (c.name, c.contact_number, c.email))]
    records = _where_and_order(call, records, fields.CONTACT, "Contact")
    records = changed_since(records, call.since, lambda r: r.updated)
    p = _paging(call, args)
    page, pagination = page_of(records, p)
    full = p.paged and not args.flag("summaryOnly")
    return call.answer("Contacts", [render.encode(render.contact(c, full=full)) for c in page], pagination)


def accounts(call: ApiCall) -> Response:
    records = list(call.tenant.tenant.accounts)
    if call.key is not None:
        records = [a for a in records if a.account_id == call.key.lower()]
        if not records:
            return not_found()
    else:
        records = _where_and_order(call, records, fields.ACCOUNT, "Account")
        records = changed_since(records, call.since, lambda r: r.updated)
    return call.answer("Accounts", [render.encode(render.account(a)) for a in records])


def tracking_categories(call: ApiCall) -> Response:
    """No If-Modified-Since here (Xero has none); archived categories and options need includeArchived."""
    include_archived = call.args.flag("includeArchived")
    records = list(call.tenant.tenant.tracking_categories)
    if call.key is not None:
        records = [t for t in records if t.category_id == call.key.lower()]
        if not records:
            return not_found()
    else:
        if not include_archived:
            records = [t for t in records if t.status == "ACTIVE"]
        records = _where_and_order(call, records, fields.TRACKING_CATEGORY, "TrackingCategory")
    items = [render.encode(render.tracking_category(t, include_archived=include_archived or call.key is not None))
             for t in records]
    return call.answer("TrackingCategories", items)


def organisation(call: ApiCall) -> Response:
    return call.answer("Organisations", [render.encode(render.organisation(call.tenant.tenant))])


def _where_and_order(call: ApiCall, records: list[Any], schema: Schema, entity: str) -> list[Any]:
    args = call.args
    ctx = call.tenant.contacts_by_id
    where = args.get("where")
    if where:
        predicate = compile_where(where, schema, entity)
        records = [r for r in records if predicate(r, ctx)]
    order = args.get("order")
    if order:
        records = ordered(records, compile_order(order, schema, entity), ctx)
    return records


def _paging(call: ApiCall, args: Args, *, paged_by_default: bool = False) -> Paging:
    p = paging(args, paged_by_default=paged_by_default)
    call.asked_page_size = p.asked_size
    return p


def _day(args: Args, name: str) -> date | None:
    raw = args.get(name)
    if not raw:
        return None
    try:
        return date.fromisoformat(raw.strip()[:10])
    except ValueError as exc:
        raise BadParameter(f"{name} must be a date (YYYY-MM-DD)") from exc


#: Endpoint name -> handler.
HANDLERS: dict[str, Callable[[ApiCall], Response]] = {
    "Invoices": invoices,
    "PurchaseOrders": purchase_orders,
    "CreditNotes": credit_notes,
    "InvoiceAttachments": invoice_attachments,
    "CreditNoteAttachments": credit_note_attachments,
    "Contacts": contacts,
    "Accounts": accounts,
    "TrackingCategories": tracking_categories,
    "Organisation": organisation,
}

#: Lower-case endpoint name (Xero's routing is case-insensitive) -> its proper name.
ENDPOINTS: dict[str, str] = {name.lower(): name for name in HANDLERS if not name.endswith("Attachments")}
