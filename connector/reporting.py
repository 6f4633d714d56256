"""What an operator asks the ledger: counts by state, held bills with reasons, delivered files."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import func, select

from connector.domain.reasons import render
from connector.domain.states import IN_FLIGHT, BatchState, BillState
from connector.store.db import Ledger
from connector.store.models import Batch, Bill, Tenant, XeroGrant, utcnow
from connector.store.polls import parked_polls


@dataclass
class Summary:
    by_state: Counter[str] = field(default_factory=Counter)
    held: list[tuple[str, str, list[str]]] = field(default_factory=list)  # invoice id, number, reasons
    excluded: list[tuple[str, str, list[str]]] = field(default_factory=list)
    files: list[tuple[str, int, str]] = field(default_factory=list)  # name, bills, state
    staged_batches: int = 0
    attention: list[str] = field(default_factory=list)  # grants and tenants a person must look at

    @property
    def seen(self) -> int:
        return sum(self.by_state.values())

    @property
    def settled(self) -> bool:
        """Nothing is moving by itself any more: every bill waits for Xero or a person, or is delivered."""
        moving = sum(self.by_state[s] for s in IN_FLIGHT)
        return self.seen > 0 and moving == 0 and self.staged_batches == 0


def summarise(ledger: Ledger, tenant_id: str | None = None) -> Summary:
    summary = Summary()
    with ledger.transaction() as session:
        query = select(Bill.state, func.count()).group_by(Bill.state)
        if tenant_id:
            query = query.where(Bill.tenant_id == tenant_id)
        summary.by_state.update({state: count for state, count in session.execute(query).tuples()})
        bills = select(Bill).where(Bill.state.in_([BillState.HELD, BillState.EXCLUDED])).order_by(Bill.id)
        if tenant_id:
            bills = bills.where(Bill.tenant_id == tenant_id)
        for bill in session.scalars(bills):
            entry = (bill.invoice_id, bill.invoice_number or "", [render(r) for r in bill.reasons])
            (summary.held if bill.state == BillState.HELD else summary.excluded).append(entry)
        batches = select(Batch.name, Batch.bill_count, Batch.state).order_by(Batch.tenant_id, Batch.sequence)
        if tenant_id:
            batches = batches.where(Batch.tenant_id == tenant_id)
        summary.files = [(n, c, s) for n, c, s in session.execute(batches).tuples()]
        summary.staged_batches = sum(1 for _, _, s in summary.files if s == BatchState.STAGED)
        for grant_id, status in session.execute(select(XeroGrant.id, XeroGrant.status).where(
                XeroGrant.status != "ACTIVE")).tuples():
            summary.attention.append(f"grant {grant_id} {status}: re-authorise with `connector auth connect "
                                     f"--grant {grant_id}`")
        failed = select(Batch.name, Batch.last_error).where(Batch.state == BatchState.FAILED)
        if tenant_id:
            failed = failed.where(Batch.tenant_id == tenant_id)
        for name, error in session.execute(failed).tuples():
            summary.attention.append(f"file {name} FAILED: {error} (fix, then `make replay INVOICE=<a bill in it>`)")
        for parked_tenant, reason in parked_polls(session, tenant_id):
            summary.attention.append(f"tenant {parked_tenant} polls parked: {reason} (look at the worker logs,"
                                     " then clear with `connector tenants set ID --status ACTIVE`)")
        tenants = session.execute(select(Tenant.id, Tenant.status, Tenant.parked_until)).tuples()
        for tenant_id, status, parked in tenants:
            if status != "ACTIVE":
                summary.attention.append(f"tenant {tenant_id} {status}")
            elif parked is not None and parked > utcnow():
                summary.attention.append(f"tenant {tenant_id} parked until {parked.isoformat()} (Xero day limit)")
    return summary
