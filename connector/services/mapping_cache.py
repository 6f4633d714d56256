"""What mapping reads that rarely changes, kept per worker process and checked with one row per bill.

- The mapping set in force is parsed once per process by services.profiles (a stored set never
  changes; its identity is read with each bill, so an import is seen by the very next bill).
- Per tenant, the contacts (as vendors, with what they were merged into) and accounts by code that
  bills asked for, including the ones the ledger does not hold: good while the tenant's
  `reference_version` (moved by every write to its contacts or accounts, store.reference) is the one
  the copy was read under. A bill of a tenant whose reference data changed starts a new copy.
Tracking categories are not read per bill (a map's dimensions are checked when it is imported).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from connector.domain.records import Account, Vendor

MAX_TENANTS = 1_000  # tenants' copies kept at once; the least recently used one is dropped first
MAX_ENTRIES = 50_000  # contacts or accounts held for one tenant before its copy starts again


@dataclass(frozen=True)
class CachedContact:
    vendor: Vendor | None  # None: not held, or held unusable (an unknown vendor until it is fixed)
    merged_to: str | None


@dataclass
class TenantReference:
    """One tenant's contacts and accounts as read under one reference_version."""

    reference_version: int
    contacts: dict[str, CachedContact] = field(default_factory=dict)
    accounts: dict[str, Account | None] = field(default_factory=dict)  # by code; None: no such account


class MappingCache:
    def __init__(self) -> None:
        self._reference: OrderedDict[str, TenantReference] = OrderedDict()

    def reference(self, tenant_id: str, reference_version: int) -> TenantReference:
        kept = self._reference.get(tenant_id)
        if kept is None or kept.reference_version != reference_version or (
                len(kept.contacts) + len(kept.accounts) > MAX_ENTRIES):
            kept = self._reference[tenant_id] = TenantReference(reference_version)
            while len(self._reference) > MAX_TENANTS:
                self._reference.popitem(last=False)
        self._reference.move_to_end(tenant_id)
        return kept

    def clear(self) -> None:
        self._reference.clear()


CACHE = MappingCache()  # one per worker process
