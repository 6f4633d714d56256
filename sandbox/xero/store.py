"""The live, mutable view of the dataset that the API serves: per-tenant indices and replacements.

Readers take a snapshot (a list copy) under the lock, so an admin `update` never tears a page.
"""

from __future__ import annotations

import threading
import uuid

from sandbox.xero.attachments import Attachment
from sandbox.xero.model import Contact, CreditNote, Dataset, Invoice, PurchaseOrder, Tenant


def _is_guid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


class TenantStore:
    """One tenant's records plus lookups by id and number."""

    def __init__(self, tenant: Tenant, lock: threading.RLock) -> None:
        self.tenant = tenant
        self._lock = lock
        self.contacts_by_id: dict[str, Contact] = {c.contact_id: c for c in tenant.contacts}
        self._invoice_at = {inv.invoice_id: i for i, inv in enumerate(tenant.invoices)}
        self._po_at = {po.purchase_order_id: i for i, po in enumerate(tenant.purchase_orders)}
        self._credit_note_at = {cn.credit_note_id: i for i, cn in enumerate(tenant.credit_notes)}

    @property
    def tenant_id(self) -> str:
        return self.tenant.tenant_id

    def invoices(self) -> list[Invoice]:
        with self._lock:
            return list(self.tenant.invoices)

    def purchase_orders(self) -> list[PurchaseOrder]:
        with self._lock:
            return list(self.tenant.purchase_orders)

    def attachment(self, record_id: str, key: str, *, credit_note: bool = False) -> Attachment | None:
        """One of a bill's (or a credit note's) attachments by AttachmentID or by FileName."""
        found: list[Invoice] | list[CreditNote] = []
        if _is_guid(record_id):
            found = self.find_credit_notes(record_id) if credit_note else self.find_invoices(record_id)
        if not found:
            return None
        for attachment in found[0].attachments:
            if attachment.attachment_id == key.lower() or attachment.file_name == key:
                return attachment
        return None

    def credit_notes(self) -> list[CreditNote]:
        with self._lock:
            return list(self.tenant.credit_notes)

    def invoice_numbers(self) -> dict[str, str]:
        with self._lock:
            return {inv.invoice_id: inv.number for inv in self.tenant.invoices}

    def find_credit_notes(self, key: str) -> list[CreditNote]:
        """By CreditNoteID, or every credit note with that CreditNoteNumber."""
        with self._lock:
            if _is_guid(key):
                at = self._credit_note_at.get(str(uuid.UUID(key)))
                return [] if at is None else [self.tenant.credit_notes[at]]
            return [cn for cn in self.tenant.credit_notes if cn.number == key]

    def add_credit_note(self, note: CreditNote) -> None:
        with self._lock:
            self._credit_note_at[note.credit_note_id] = len(self.tenant.credit_notes)
            self.tenant.credit_notes.append(note)

    def replace_credit_note(self, note: CreditNote) -> None:
        with self._lock:
            self.tenant.credit_notes[self._credit_note_at[note.credit_note_id]] = note

    def find_invoices(self, key: str) -> list[Invoice]:
        """By InvoiceID, or every invoice with that InvoiceNumber (bill numbers are not unique)."""
        with self._lock:
            if _is_guid(key):
                at = self._invoice_at.get(str(uuid.UUID(key)))
                return [] if at is None else [self.tenant.invoices[at]]
            return [inv for inv in self.tenant.invoices if inv.number == key]

    def find_purchase_orders(self, key: str) -> list[PurchaseOrder]:
        with self._lock:
            if _is_guid(key):
                at = self._po_at.get(str(uuid.UUID(key)))
                return [] if at is None else [self.tenant.purchase_orders[at]]
            return [po for po in self.tenant.purchase_orders if po.number == key]

    def find_contacts(self, key: str) -> list[Contact]:
        if _is_guid(key):
            found = self.contacts_by_id.get(str(uuid.UUID(key)))
            return [] if found is None else [found]
        return [c for c in self.tenant.contacts if c.contact_number == key and key]

    def replace_invoice(self, invoice: Invoice) -> None:
        with self._lock:
            self.tenant.invoices[self._invoice_at[invoice.invoice_id]] = invoice

    def add_invoice(self, invoice: Invoice) -> None:
        with self._lock:
            self._invoice_at[invoice.invoice_id] = len(self.tenant.invoices)
            self.tenant.invoices.append(invoice)

    def replace_purchase_order(self, po: PurchaseOrder) -> None:
        with self._lock:
            self.tenant.purchase_orders[self._po_at[po.purchase_order_id]] = po

    def add_purchase_order(self, po: PurchaseOrder) -> None:
        with self._lock:
            self._po_at[po.purchase_order_id] = len(self.tenant.purchase_orders)
            self.tenant.purchase_orders.append(po)


class DataStore:
    """All tenants of the current dataset; swapped whole on seed or reset."""

    def __init__(self, dataset: Dataset) -> None:
        self.lock = threading.RLock()
        self.dataset = dataset
        self.tenants = {t.tenant_id: TenantStore(t, self.lock) for t in dataset.tenants}
        self.updates_applied = 0

    def tenant(self, tenant_id: str) -> TenantStore | None:
        return self.tenants.get(tenant_id.strip().lower())

    @property
    def tenant_ids(self) -> list[str]:
        return [t.tenant_id for t in self.dataset.tenants]
