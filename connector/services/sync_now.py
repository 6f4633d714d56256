"""Operator actions take effect now, not at the next sweep: `tenants poll` polls at once (through the
dispatcher, so a poll already running keeps its lease and the rate budget still rules), and a mapping
import, a template change or a release sends the bills it re-opened to be mapped and batched at once.

With a broker, the messages go to the workers; with none (`CONNECTOR_BROKER_URL` unset, nothing
listening), the work runs here, in this process, as a worker would run it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from connector.domain.tenants import TenantStatus
from connector.errors import ActionRefused
from connector.services import batch, deliver, dispatch, map, poll
from connector.services.context import Services
from connector.services.messages import AssembleBatch, DeliverBatch, MapInvoice, Message, PollTenant
from connector.services.sweep import mark_sent
from connector.store.inventory import make_due_now, unsent_map_work

Send = Callable[[Message], None]


def poll_now(services: Services, tenant_id: str) -> list[Message]:
    """Make the tenant due now and claim it as beat's tick would; [] when a poll holds it already."""
    with services.ledger.transaction() as session:
        status = make_due_now(session, tenant_id, services.clock())
    if status != TenantStatus.ACTIVE:
        raise ActionRefused(f"tenant {tenant_id} is {status}: it is not polled (make it ACTIVE first with "
                            f"`connector tenants set {tenant_id} --status ACTIVE`)")
    return dispatch.dispatch_due_polls(services, tenant_id)


def reopened_work(services: Services, tenant_id: str) -> list[Message]:
    """The map messages for the tenant's bills an operator's change just re-opened, and a batch request
    for the bills it made READY."""
    with services.ledger.transaction() as session:
        work = unsent_map_work(session, tenant_id)
    return [*(MapInvoice(tenant_id, invoice_id, version) for invoice_id, version in work), AssembleBatch(tenant_id)]


def send_through_broker(services: Services, messages: list[Message], send: Send) -> None:
    for message in messages:
        send(message)
    mark_sent(services, messages)


def run_here(services: Services, messages: list[Message]) -> Counter[str]:
    """Run the messages and everything they lead to in this process, as the workers would."""
    done: Counter[str] = Counter()
    queue = list(messages)
    while queue:
        message = queue.pop(0)
        match message:
            case PollTenant(tenant_id):
                report = poll.poll_tenant(services, tenant_id, emit=queue.append)
                done["bills changed in Xero"] += report.bills_changed
            case MapInvoice(tenant_id, invoice_id, version):
                queue.extend(map.map_invoice(services, tenant_id, invoice_id, version))
                done["bills mapped"] += 1
            case AssembleBatch(tenant_id, bills, full_files):
                queue.extend(batch.assemble_batches(services, tenant_id, bills=bills, full_files=full_files))
            case DeliverBatch(batch_id):
                with deliver.time_limited(deliver.delivery_time_limit(services)):  # as in a worker
                    outcome = deliver.deliver_batch(services, batch_id, task_id="cli")
                queue.extend(outcome.follow_ups)
                done[f"files {outcome.state}"] += 1
    return done
