"""Follow-up work a service asks for. Services return these; tasks send them after commit."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PollTenant:
    tenant_id: str


@dataclass(frozen=True)
class MapInvoice:
    tenant_id: str
    invoice_id: str
    version: int


@dataclass(frozen=True)
class AssembleBatch:
    tenant_id: str
    # False: master-data files only. The poll asks so, for master data changed in a cycle with no bill to
    # map; the bills of a cycle are asked for by the last of them to be mapped.
    bills: bool = True
    # True: only files filled to the tenant's cap, asked while its bills are still mapping (services.batch).
    full_files: bool = False


@dataclass(frozen=True)
class DeliverBatch:
    batch_id: int


Message = PollTenant | MapInvoice | AssembleBatch | DeliverBatch
