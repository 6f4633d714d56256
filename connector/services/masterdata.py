"""Master-data files for Stampli: vendors, GL accounts, dimension values and purchase orders, each kind a
file of its own in the tenant's template for it, through the same exactly-once delivery as bills.

- Made from what the polls and reference reads already stored: never a Xero call of their own.
- Only records new or changed since they were last put in a file (their fingerprint, in the ledger); the
  first file of a kind is full, and `connector masterdata resend --kind K` makes a full one on request.
- A file is a batch like a bill file (stored bytes and sha256, `.part`, rename, replay) whose `kind`
  says what it carries; each record put in it, and its file's end, is audited.
- Order (`domain.masterdata.waits_for`): a cycle makes its master-data files before its bill file, and a
  file is not uploaded while an earlier file it depends on is undelivered; a delivered file asks for the
  files that waited on it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from connector.domain import masterdata as rules
from connector.domain.delivery import BatchState
from connector.domain.masterdata import WAIT_SECONDS, Kind, MasterRecord, waits_for
from connector.domain.rules import UnmappedTracking
from connector.errors import ConnectorError, LedgerContention
from connector.services.context import Services
from connector.services.messages import DeliverBatch, Message
from connector.services.profiles import effective_mapping
from connector.stampli import Template, default_master_template, parse_template, render
from connector.store import batches as batches_store
from connector.store import masterdata as store
from connector.store.db import CONCURRENT_WRITE, Session
from connector.store.models import utcnow

if TYPE_CHECKING:
    from connector.services.deliver import DeliveryReport

log = logging.getLogger(__name__)

MAX_RACES = 5
_RACES: tuple[type[Exception], ...] = (*CONCURRENT_WRITE, store.LostRecordRace)


class MasterDataRefused(ConnectorError):
    exit_code = 4


def kind_template(kind: Kind, text: str | None, tenant_id: str) -> Template:
    """The tenant's template for the kind, or our default for it."""
    if text is None:
        return default_master_template(kind)
    return parse_template(text, origin=f"{kind} template of tenant {tenant_id}")


def records_of(session: Session, tenant_id: str, kind: Kind, sent: dict[str, str]) -> list[MasterRecord]:
    """Every record of the kind Stampli should hold, as the ledger has it now."""
    in_force = effective_mapping(session, tenant_id)  # the tenant's own entries over its profile's
    data, maps = in_force.data, in_force.maps
    if kind is Kind.VENDORS:
        return rules.vendor_records(store.contacts(session, tenant_id), maps, store.purchase_orders(session, tenant_id))
    if kind is Kind.GL_ACCOUNTS:
        return rules.gl_account_records(store.accounts(session, tenant_id), maps)
    if kind is Kind.DIMENSIONS:
        pass_through = data.rules().unmapped_tracking is UnmappedTracking.PASS_THROUGH
        options = store.tracking_options(session, tenant_id)
        records = rules.dimension_records(options, maps, pass_through=pass_through)
        if sent and not store.tracking_unreadable(session, tenant_id):  # a category Xero sent unreadable may
            # still hold options: none is taken for deleted until every category reads well again
            listed = [rules.option_key(o) for o in options]
            records += rules.deleted_dimension_records(store.sent_labels(session, tenant_id, kind), listed)
        return records
    return rules.purchase_order_records(store.purchase_orders(session, tenant_id), maps,
                                        store.vendor_names(session, tenant_id), sent)


def assemble_master_data(services: Services, tenant_id: str, *, kinds: list[Kind] | None = None, full: bool = False,
                         actor: str = "connector", reason: str | None = None,
                         read_from: datetime | None = None,
                         emit: Callable[[Message], None] | None = None) -> list[Message]:
    """One file per kind the tenant sends (or `kinds`) with its new and changed records (every record when
    `full`), in the order of `MASTER_KINDS`, each cut in files of at most the tenant's cap; nothing when
    nothing changed. Returns their deliveries (with `emit`, sends each as soon as its file is staged, and
    returns nothing). Each kind done is marked as covering every record stored before `read_from` (when this
    call began: see `ready_cutoff`), so a full-files ask while the tenant's bills map knows which of them
    it may send (`full_files_cutoff`). Another worker winning a kind's records more than `MAX_RACES` times
    in a row is `LedgerContention` (retryable): the files made before it are sent already with `emit`."""
    read_from = read_from or utcnow()
    messages: list[Message] = []
    send = emit or messages.append
    with services.ledger.transaction() as session:
        chosen = kinds if kinds is not None else store.enabled_kinds(session, tenant_id)
    for kind in rules.MASTER_KINDS:
        if kind not in chosen:
            continue
        done: set[str] = set()  # records put in a file of this kind by this call (a full file in parts)
        races = 0
        while True:
            try:
                _files_of_kind(services, tenant_id, kind, full=full, actor=actor, reason=reason, done=done,
                               send=send)
            except _RACES as exc:
                races += 1  # another worker took the sequence number or the same records: look again
                if races > MAX_RACES:
                    raise LedgerContention(f"tenant {tenant_id}: another assemble won the {kind} records "
                                           f"{races} times in a row") from exc
                continue
            break
        with services.ledger.transaction() as session:
            store.mark_read_from(session, tenant_id, kind, read_from)
    return messages


def ready_cutoff(services: Services, tenant_id: str) -> datetime | None:
    """For a tenant sending master data, the moment its files of this assemble start reading the ledger:
    a bill READY before it had its vendor, POs and accounts stored before it (a poll stores them before
    it asks for the bill's mapping), so they are in these files or earlier ones; a bill READY after it
    waits for the next assemble. None (every READY bill) for a tenant sending none."""
    with services.ledger.transaction() as session:
        return utcnow() if store.enabled_kinds(session, tenant_id) else None


def full_files_cutoff(services: Services, tenant_id: str) -> tuple[bool, datetime | None]:
    """For a full-files ask while the tenant's bills map, which makes no master-data file (reading every
    vendor and PO of the tenant at every ask would cost as much as the tenant): whether the tenant sends
    master data, and if so the moment before which a READY bill may go, the start of the last finished
    master-data assemble of every kind it sends (the poll's at its end and at each hand-over, and each
    last mapping's). Such a bill's vendor, POs and accounts were stored before that assemble read the
    ledger, so they are in its files or earlier ones, which the bill file waits for at delivery. None
    while a kind it sends has had no such assemble: its bills wait."""
    with services.ledger.transaction() as session:
        return store.covered_until(session, tenant_id)


def _files_of_kind(services: Services, tenant_id: str, kind: Kind, *, full: bool, actor: str,
                   reason: str | None, done: set[str], send: Callable[[Message], None]) -> None:
    """The kind's records to send, read and compared with what was sent once, then put in files of at most
    the tenant's cap (`max_bills_per_file`, as bill files), each committed and staged before the next is
    made. Reading the kind's records costs as much as the tenant has, so it is done once per call, not once
    per file (at 6,000 purchase orders that was 2.4 s per file of 500). `done`: the keys already in a file
    of this call; each file's keys are added once it is committed. A twin racing for the same records
    makes a file's claim fail (store.claim_records), and the caller reads the records again."""
    from connector.services.batch import new_batch  # batch.py makes master data first: imported late

    with services.ledger.transaction() as session:
        cap = batches_store.tenant(session, tenant_id).max_bills_per_file
        setting = store.settings(session, tenant_id)[kind]
        template = kind_template(kind, setting.template, tenant_id)
        sent = store.sent_fingerprints(session, tenant_id, kind)
        records = records_of(session, tenant_id, kind, sent)
        chosen = [r for r in (sorted(records, key=lambda r: r.key) if full else rules.delta(records, sent))
                  if r.key not in done]
    while chosen:
        part, chosen = _one_file_of(chosen, template, cap, tenant_id, kind)
        if not part:
            continue
        with services.ledger.transaction() as session:
            tenant = batches_store.tenant(session, tenant_id)
            rendered = render(template, [r.row for r in part])
            batch = new_batch(session, tenant, services.clock, template.extension, kind=kind)
            batch.content = rendered.content
            batch.sha256 = hashlib.sha256(rendered.content).hexdigest()
            batch.bill_count = len(part)
            batch.sidecar = template.sidecar == "sha256"
            store.claim_records(session, batch, part, sent, actor=actor,
                                reason=reason or ("full file" if full or not sent else None))
            log.info("tenant %s: %s file %s holds %s records", tenant_id, kind, batch.name, batch.bill_count)
            batch_id = batch.id
        done.update(r.key for r in part)
        _stage(services, batch_id)
        send(DeliverBatch(batch_id))


def _one_file_of(chosen: list[MasterRecord], template: Template, cap: int, tenant_id: str,
                 kind: Kind) -> tuple[list[MasterRecord], list[MasterRecord]]:
    """The next file's records (at most `cap` the template can carry, in order) and those left after them.
    A record the template cannot carry is named in the log and waits for a change."""
    part: list[MasterRecord] = []
    while chosen and len(part) < cap:
        room = cap - len(part)
        looked, chosen = chosen[:room], chosen[room:]
        rendered = render(template, [r.row for r in looked])
        for key, problem in rendered.problems.items():
            log.warning("tenant %s: %s %s cannot be carried by the template %s: %s; it waits for a change",
                        tenant_id, kind, key, template.name, problem)
        carried = set(rendered.invoice_ids)
        part += [r for r in looked if r.key in carried]
    return part, chosen


def _stage(services: Services, batch_id: int) -> None:
    from connector.services.batch import stage_batch

    stage_batch(services, batch_id)


def resend(services: Services, kind: Kind, tenant_ids: list[str], *, actor: str) -> list[Message]:
    """A full file of the kind for each tenant (whether or not it sends the kind by itself)."""
    messages: list[Message] = []
    for tenant_id in tenant_ids:
        messages += assemble_master_data(services, tenant_id, kinds=[kind], full=True, actor=actor,
                                         reason=f"full file requested by {actor}")
    return messages


# --- order ---------------------------------------------------------------------------------------------------

def files_to_wait_for(session: Session, batch_id: int, now: datetime) -> list[str]:
    """The ordering rule at delivery time: the earlier undelivered files this one waits for (none: go).
    A file that waits is looked at again after `WAIT_SECONDS`, or when the file it waits for is delivered."""
    batch = batches_store.batch(session, batch_id)
    if batch.state != BatchState.STAGED:
        return []
    waiting = waits_for(batch.kind, store.earlier_files(session, batch))
    if not waiting:
        return []
    names = [f"{f.name} ({f.state})" for f in waiting]
    why = f"waits for the earlier master-data file{'s' if len(names) > 1 else ''} {', '.join(names)}"
    if not store.defer(session, batch_id, waits_for=[f.name for f in waiting],
                       until=now + timedelta(seconds=WAIT_SECONDS), why=why):
        return []  # what it waited for was delivered since it was read: go now rather than be put off
    return [f.name for f in waiting]


def released_by(services: Services, batch_id: int) -> list[Message]:
    """After a master-data file is delivered: the tenant's later files that may have waited for it."""
    with services.ledger.transaction() as session:
        batch = batches_store.batch(session, batch_id)
        if batch.kind == Kind.BILLS or batch.state != BatchState.DELIVERED:
            return []
        kind = Kind(batch.kind)
        return [DeliverBatch(i) for i, later in store.staged_after(session, batch) if kind in rules.DEPENDS_ON[later]]


def replay_master_file(services: Services, batch_id: int, *, actor: str) -> DeliveryReport:
    """A FAILED (or waiting) master-data file goes again with its stored bytes under its name, as a bill
    file's replay does (under the sftp queue's time limit); its records are audited BATCHED again."""
    from connector.services.batch import stage_batch
    from connector.services.deliver import deliver_batch, delivery_time_limit, time_limited

    now = services.clock()
    with services.ledger.transaction() as session:
        batch = batches_store.batch(session, batch_id)
        if batch.state == BatchState.DELIVERED:
            raise MasterDataRefused(
                f"file {batch.name} was delivered on {batch.delivered_at:%Y-%m-%d %H:%M} UTC; for a full "
                f"{batch.kind} file again: connector masterdata resend --kind {batch.kind} --tenant {batch.tenant_id}")
        if batch.lease_until is not None and batch.lease_until > now:
            raise MasterDataRefused(f"file {batch.name} is being delivered right now; try again in a few minutes")
        if batch.state == BatchState.FAILED:
            store.record_file_outcome(session, batch, "BATCHED", reason=f"replay requested by {actor}", actor=actor)
        batch.state = BatchState.STAGED
        batch.next_attempt_at = batch.backoff_until = None  # a person asked: now
        batch.abandoned_attempts = 0
    stage_batch(services, batch_id)
    with time_limited(delivery_time_limit(services)):
        return deliver_batch(services, batch_id, task_id=f"replay:{actor}")
