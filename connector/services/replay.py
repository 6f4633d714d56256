"""Operator actions on delivery: replay a bill's file, or re-send one bill Stampli already has.

- A bill whose file is FAILED (or still waiting) is replayed: the batch's stored bytes go again under
  the same name. No new file is made; the look-first step and the commit-point evidence make the replay
  safe to repeat. Like a worker's delivery, it runs under the sftp queue's time limit.
- A bill that was DELIVERED is not sent again unless the operator asks (`resend`): then it alone goes
  in a new file, audited with who asked, so the other bills of its old file are not imported twice.
"""

from __future__ import annotations

from connector.domain.states import BatchState, BillState
from connector.errors import ConnectorError
from connector.services.batch import fill_batch, new_batch, stage_batch, tenant_template
from connector.services.context import Services
from connector.services.deliver import DeliveryReport, deliver_batch, delivery_time_limit, time_limited
from connector.stampli import check
from connector.store import batches as store
from connector.store.audit import record


class ReplayRefused(ConnectorError):
    exit_code = 4


def replay_invoice(services: Services, invoice_id: str, *, actor: str, resend: bool = False,
                   tenant_id: str | None = None) -> DeliveryReport:
    now = services.clock()
    with services.ledger.transaction() as session:
        bills = store.bills_by_invoice_id(session, invoice_id, tenant_id)
        if not bills:
            raise ReplayRefused(f"no bill with Xero InvoiceID {invoice_id} in the ledger")
        if len(bills) > 1:
            raise ReplayRefused(f"InvoiceID {invoice_id} exists in several tenants: name one with --tenant")
        bill = bills[0]
        if bill.batch_id is None:
            raise ReplayRefused(f"bill {invoice_id} was never put in a file (state {bill.state})")
        batch = store.batch(session, bill.batch_id)
        if batch.state == BatchState.STAGED and batch.lease_until is not None and batch.lease_until > now:
            raise ReplayRefused(f"file {batch.name} is being delivered right now; try again in a few minutes")
        if bill.state == BillState.CHANGED_AFTER_DELIVERY:
            if not resend:
                raise ReplayRefused(
                    f"bill {invoice_id} changed in Xero after it was delivered in {batch.name}; Stampli has the old"
                    " version. Pass --resend to map the new version and send it in the next file")
            record(session, bill, BillState.DISCOVERED, reason=f"re-send of the changed bill requested by {actor}",
                   actor=actor)
            return DeliveryReport(batch.id, "REOPENED")  # never sent: the sweeper maps it, then it is batched as usual
        if bill.state == BillState.DELIVERED:
            if not resend:
                raise ReplayRefused(
                    f"bill {invoice_id} was delivered in {batch.name} on {batch.delivered_at:%Y-%m-%d %H:%M} UTC;"
                    " Stampli has it. Pass --resend to send it again in a file of its own")
            tenant = store.tenant(session, bill.tenant_id)
            template = tenant_template(session, tenant)
            problems = check(template, bill.mapping or {})
            if problems:
                raise ReplayRefused(f"bill {invoice_id} cannot be carried by the tenant's template: {problems[0]}")
            resent = new_batch(session, tenant, services.clock, template.extension)
            fill_batch(session, resent, [bill], template, actor=actor,
                       reason=f"re-sent on request (was in {batch.name})")
            batch_id = resent.id
        elif batch.state in (BatchState.FAILED, BatchState.STAGED):
            # An earlier attempt's doubt about its rename is kept: the folder settles it, as in any retry.
            batch.state = BatchState.STAGED
            batch.next_attempt_at = batch.backoff_until = None  # a person asked: now
            batch.abandoned_attempts = 0  # a person asked: a parked file gets its tries afresh, not parked again
            for carried in store.bills_in(session, batch.id):
                if carried.state == BillState.FAILED:
                    record(session, carried, BillState.BATCHED, reason=f"replay requested for {invoice_id}",
                           batch_id=batch.id, file_name=batch.name, actor=actor)
            batch_id = batch.id
        else:
            raise ReplayRefused(f"file {batch.name} is {batch.state}; bill {invoice_id} is {bill.state}")
    stage_batch(services, batch_id)
    with time_limited(delivery_time_limit(services)):  # as in a worker: the lease outlives any delivery
        return deliver_batch(services, batch_id, task_id=f"replay:{actor}")
