"""Everything one running sandbox holds, and the operations the Python API and the admin API share."""

from __future__ import annotations

import dataclasses
import threading
from datetime import datetime
from decimal import Decimal
from typing import Any

from sandbox.xero import msdate
from sandbox.xero.clock import SandboxClock
from sandbox.xero.credits import allocate_credit, credit_against, credit_note_builder
from sandbox.xero.dataset import build_dataset
from sandbox.xero.faults import Faults
from sandbox.xero.identity import Identity
from sandbox.xero.model import CreditNote
from sandbox.xero.ratelimit import RateLimiter
from sandbox.xero.stats import Stats
from sandbox.xero.store import DataStore, TenantStore
from sandbox.xero.updates import apply_update
from sandbox.xero.webhooks import WebhookSender

API_PREFIX = "/api.xro/2.0"


class SandboxState:
    def __init__(self, seed: int, tenants: int, bills: int, time_scale: float = 1.0,
                 clock_start: datetime | None = None) -> None:
        self.seed, self.tenant_count, self.bills = seed, tenants, bills
        self.clock = SandboxClock(clock_start, time_scale)
        self.store = DataStore(build_dataset(seed, tenants, bills))
        self.identity = Identity(self.clock, f"seed-{seed}", self._tenant_names)
        self.limiter = RateLimiter(self.clock)
        self.faults = Faults(seed)
        self.stats = Stats()
        self._update_lock = threading.Lock()
        self.webhooks = WebhookSender()  # signed POSTs on every update, once a URL is set

    def _tenant_names(self) -> list[tuple[str, str]]:
        return [(t.tenant_id, t.name) for t in self.store.dataset.tenants]

    # --- data ----------------------------------------------------------------------------------------

    def reseed(self, seed: int | None = None, tenants: int | None = None, bills: int | None = None) -> None:
        """Build a new dataset; grants and tokens are dropped because their tenants may be gone."""
        self.seed = self.seed if seed is None else seed
        self.tenant_count = self.tenant_count if tenants is None else tenants
        self.bills = self.bills if bills is None else bills
        self.store = DataStore(build_dataset(self.seed, self.tenant_count, self.bills))
        self.identity.forget_grants()
        self._clear_runtime()

    def reset(self) -> None:
        """Back to the seeded data with fresh stats, limits and faults; consents and tokens stay valid."""
        self.store = DataStore(build_dataset(self.seed, self.tenant_count, self.bills))
        self._clear_runtime()

    def _clear_runtime(self) -> None:
        self.limiter.reset()
        self.stats.reset()
        self.faults.clear()

    def update(self, tenant_id: str | None = None, modify: int = 0, add: int = 0) -> dict[str, Any]:
        """Modify and add bills in one tenant (default: the first), stamped with the sandbox's now."""
        store = self.store.tenant(tenant_id) if tenant_id else self.store.tenants[self.store.tenant_ids[0]]
        if store is None:
            raise KeyError(f"unknown tenant {tenant_id}")
        with self._update_lock:
            self.store.updates_applied += 1
            now = self.clock.now()
            result = apply_update(store, self.seed, self.store.updates_applied, now, modify, add)
            self.webhooks.changed(result["tenant_id"], "INVOICE", result["added"],
                                  [m["InvoiceID"] for m in result["modified"]], now)
        result["UpdatedDateUTC"] = msdate.timestamp_field(now)
        return result

    def add_credit_note(self, tenant_id: str | None, invoice_id: str, *, fraction: str = "0.25",
                        allocate: bool = True) -> dict[str, Any]:
        """A supplier credit note for part of a bill, allocated to it unless `allocate` is false (the bill
        moves as in Xero: sandbox.xero.credits), stamped with the sandbox's now. Returns its CreditNoteID,
        number, total and UpdatedDateUTC."""
        store = self._tenant_store(tenant_id)
        with self._update_lock:
            self.store.updates_applied += 1
            now = self.clock.now()
            bill = store.find_invoices(invoice_id)[0]
            builder = credit_note_builder(self.seed, store.tenant, f"/{self.store.updates_applied}")
            note, credited = credit_against(builder, bill, store.contacts_by_id[bill.contact_id],
                                            number=f"CN-{len(store.tenant.credit_notes) + 5001}",
                                            fraction=Decimal(fraction), updated=now, allocate=allocate)
            store.add_credit_note(note)
            self.webhooks.changed(store.tenant_id, "CREDITNOTE", [note.credit_note_id], [], now, _data(note))
            if credited is not bill:
                store.replace_invoice(credited)
                self.webhooks.changed(store.tenant_id, "INVOICE", [], [bill.invoice_id], now)
        return {"CreditNoteID": note.credit_note_id, "CreditNoteNumber": note.number, "Total": str(note.total),
                "UpdatedDateUTC": msdate.timestamp_field(now)}

    def allocate_credit_note(self, tenant_id: str | None, credit_note_id: str, invoice_id: str, *,
                             amount: str | None = None) -> dict[str, Any]:
        """Apply `amount` (default: all it can, the smaller of the credit left and the bill's amount due) of
        a credit note to a bill, as Xero's PUT CreditNotes/{id}/Allocations does; both move, stamped now.
        Raises KeyError for an unknown document and ValueError for an allocation Xero refuses."""
        store = self._tenant_store(tenant_id)
        with self._update_lock:
            notes, bills = store.find_credit_notes(credit_note_id), store.find_invoices(invoice_id)
            if not notes or not bills:
                raise KeyError(f"no credit note {credit_note_id}" if not notes else f"no invoice {invoice_id}")
            [note], [bill] = notes, bills
            applied = Decimal(amount) if amount is not None else min(note.remaining_credit, bill.amount_due)
            self.store.updates_applied += 1
            now = self.clock.now()
            builder = credit_note_builder(self.seed, store.tenant, f"/{self.store.updates_applied}")
            note, bill = allocate_credit(note, bill, applied, day=now.date(), at=now, allocation_id=builder.new_id())
            store.replace_credit_note(note)
            store.replace_invoice(bill)
            self.webhooks.changed(store.tenant_id, "CREDITNOTE", [], [note.credit_note_id], now, _data(note))
            self.webhooks.changed(store.tenant_id, "INVOICE", [], [bill.invoice_id], now)
        return {"CreditNoteID": note.credit_note_id, "InvoiceID": bill.invoice_id, "Amount": str(applied),
                "RemainingCredit": str(note.remaining_credit), "AmountDue": str(bill.amount_due),
                "UpdatedDateUTC": msdate.timestamp_field(now)}

    def _tenant_store(self, tenant_id: str | None) -> TenantStore:
        store = self.store.tenant(tenant_id) if tenant_id else self.store.tenants[self.store.tenant_ids[0]]
        if store is None:
            raise KeyError(f"unknown tenant {tenant_id}")
        return store

    def edit_purchase_order(self, tenant_id: str | None, purchase_order_id: str, *, status: str | None = None,
                            delivery_instructions: str | None = None) -> dict[str, Any]:
        """Change a purchase order's status (Xero's own moves: AUTHORISED to BILLED or DELETED...) and/or
        its delivery instructions, stamped with the sandbox's now, as an edit in Xero would be."""
        store = self.store.tenant(tenant_id) if tenant_id else self.store.tenants[self.store.tenant_ids[0]]
        if store is None:
            raise KeyError(f"unknown tenant {tenant_id}")
        with self._update_lock:
            self.store.updates_applied += 1
            now = self.clock.now()
            [po] = store.find_purchase_orders(purchase_order_id)
            changes: dict[str, Any] = {"updated": now, "cache": {}}
            if status is not None:
                changes["status"] = status
            if delivery_instructions is not None:
                changes["delivery_instructions"] = delivery_instructions
            store.replace_purchase_order(dataclasses.replace(po, **changes))  # no webhook: Xero has none for POs
        return {"PurchaseOrderID": po.purchase_order_id, "UpdatedDateUTC": msdate.timestamp_field(now)}

    def answer_key(self, tenant_id: str) -> dict[str, list[str]]:
        store = self.store.tenant(tenant_id)
        if store is None:
            raise KeyError(f"unknown tenant {tenant_id}")
        with self._update_lock:  # an update may be adding keys
            return {k: list(v) for k, v in store.tenant.answer_key.items()}

    # --- credentials -----------------------------------------------------------------------------------

    @staticmethod
    def urls(base_url: str) -> dict[str, str]:
        return {
            "authorize": f"{base_url}/identity/connect/authorize",
            "token": f"{base_url}/connect/token",
            "revocation": f"{base_url}/connect/revocation",
            "connections": f"{base_url}/connections",
            "api": f"{base_url}{API_PREFIX}",
            "admin": f"{base_url}/_sandbox",
        }

    def consent(self, base_url: str, tenant_ids: list[str] | None = None) -> dict[str, Any]:
        grant = self.identity.consent(tenant_ids)
        return {
            "client_id": self.identity.app.client_id,
            "client_secret": self.identity.app.client_secret,
            "refresh_token": grant.refresh_token,
            "tenant_ids": [c.tenant_id for c in grant.connections],
            "scopes": grant.scopes,
            "urls": self.urls(base_url),
        }

    def custom_connection(self, base_url: str, tenant_index: int = 0) -> dict[str, Any]:
        tenant = self.store.dataset.tenants[tenant_index]
        app = self.identity.custom_connection(tenant.tenant_id, tenant.name)
        return {"client_id": app.client_id, "client_secret": app.client_secret, "tenant_id": tenant.tenant_id,
                "urls": self.urls(base_url)}


def _data(note: CreditNote) -> dict[str, dict[str, str]]:
    """What Xero's CREDITNOTE webhook event carries about the credit note beside its id."""
    return {note.credit_note_id: {"Type": note.type, "Status": note.status}}
