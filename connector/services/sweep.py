"""The sweeper: the database decides what work exists, Redis only carries nudges.

It asks again only for work whose message can truly be lost, never for the whole backlog (a bill whose
message is merely queued is left alone, however long the queue):
- a DISCOVERED bill whose map message was never sent and nobody started mapping, once older than the
  stale window (`CONNECTOR_SWEEP_STALE_SECONDS`);
- a DISCOVERED bill whose mapping started longer ago than the map queue's hard time limit plus the stale
  window, with no message sent since: its worker died, and Redis would hold that message until its
  visibility timeout;
- READY bills in no batch, older than the stale window: one AssembleBatch per tenant;
- STAGED batches under no live lease whose attempt is due;
- and, when the broker lost its messages (its epoch, see connector.broker_epoch, is missing or new),
  every unfinished bill, tenant and batch whatever its age (a tenant whose bills are mapped again gets
  its batch from the last of them, as in a cycle, so its READY bills and the re-mapped go in one file).
The task layer marks the map messages it sent (`mark_sent`), so a bill asked for again is not asked for
on the next sweep too.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Final

from connector.broker_epoch import EpochKey, epoch_key_for
from connector.limits import TIME_LIMITS
from connector.services.context import Services
from connector.services.messages import AssembleBatch, DeliverBatch, MapInvoice, Message
from connector.store import sweeps
from connector.store.db import Session
from connector.store.work import mark_map_sent

log = logging.getLogger(__name__)

MAP_QUEUE: Final = "map"
SWEEP_CHUNK: Final = 1000  # ledger ids whose DISCOVERED bills are read, sent and marked sent at a time
MARK_CHUNK: Final = 1000  # bills per UPDATE when marking messages sent (SQLite caps bound parameters)


def sweep(services: Services, send: Callable[[list[Message]], None] | None = None) -> list[Message]:
    """The messages to send again: the map messages first (read and handed over a chunk of `SWEEP_CHUNK`
    ledger ids at a time, so a sweep after a broker loss holds a chunk, not every unfinished bill of the
    ledger), then the tenants' batches and the files' deliveries. With `send`, each chunk goes to it once
    its read is committed, before the next is read (the task layer sends it and marks it sent) and nothing
    is returned; without, they are all returned."""
    now = services.clock()
    stale = timedelta(seconds=services.settings.sweep_stale_seconds)
    broker = epoch_key_for(services.settings)  # one connection to the broker per sweep
    try:
        lost = broker is not None and broker_lost_messages(services, broker, now)
        drained = broker is not None and not lost and broker.waiting(MAP_QUEUE) == 0
    finally:
        if broker is not None:
            broker.close()
    with services.ledger.transaction() as session:
        if lost:
            look = sweeps.MapLook(everything=True)
            # A tenant with bills to map again gets its batch from the last of them (one file, not two).
            mapping = sweeps.tenants_with_map_work(session)
            tenants = [t for t in sweeps.tenants_with_unbatched_ready(session, changed_before=None)
                       if t not in mapping]
            batches = sweeps.deliverable_batches(session, now, created_before=None)
        else:
            look = sweeps.MapLook(never_sent_before=now - stale,
                                  abandoned_before=now - stale - timedelta(seconds=TIME_LIMITS["map"]),
                                  sent_unstarted_before=now - stale if drained else None)
            tenants = sweeps.tenants_with_unbatched_ready(session, changed_before=now - stale)
            batches = sweeps.deliverable_batches(session, now, created_before=now - stale)
    found: list[Message] = []
    hand_over = send or found.extend
    asked, after = 0, 0
    while True:
        with services.ledger.transaction() as session:
            chunk, following = sweeps.map_work(session, look, after=after, span=SWEEP_CHUNK)
        if chunk:
            hand_over([MapInvoice(*work) for _, work in chunk])
            asked += len(chunk)
        if following is None:
            break
        after = following
    if asked:
        log.info("sweep: %d bills to map asked for again", asked)
    rest: list[Message] = [*(AssembleBatch(t) for t in tenants), *(DeliverBatch(b) for b in batches)]
    if rest:
        hand_over(rest)
    return found


_EPOCH_SETTLED: set[tuple[str, str]] = set()  # (ledger, broker) pairs this process saw agree on an epoch


def settle_broker_epoch(services: Services) -> None:
    """Before the first message of a deployment is dispatched, tell the ledger the broker's epoch. Otherwise
    the first sweep, finding an epoch the ledger never knew, cannot tell a broker that lost its messages
    from one nobody had looked at, and asks again for every unfinished bill while the first polls' map
    messages still wait in the queue (a first sync of 10,000 bills ran 16,000 map tasks). Once the ledger
    remembers an epoch it always will, so each process asks the ledger only until it has seen one."""
    place = (services.settings.database_url, services.settings.broker_url)
    if place in _EPOCH_SETTLED:
        return
    with services.ledger.transaction() as session:
        known = sweeps.newest_broker_epoch(session)
    if known is None:
        key = epoch_key_for(services.settings)
        if key is None:
            return
        try:
            seen = key.read()
            epoch = seen if seen is not None else key.replace(None, uuid.uuid4().hex)
        finally:
            key.close()
        now = services.clock()
        services.ledger.retrying(lambda session: sweeps.record_broker_epoch(session, epoch, now, lost_messages=False))
    _EPOCH_SETTLED.add(place)


def broker_lost_messages(services: Services, key: EpochKey, now: datetime) -> bool:
    """Compare the broker's epoch with the newest the ledger remembers. A missing or different one means
    the broker was emptied: a new epoch is recorded (by one sweeper only: the ledger's row is unique) and
    announced as an operational event. With no epoch remembered at all (the first sweep) nobody can tell
    what the broker held, so that counts as a loss too, recorded without an announcement."""
    seen = key.read()
    with services.ledger.transaction() as session:
        known = sweeps.newest_broker_epoch(session)
        seen_before = seen is not None and sweeps.broker_epoch_known(session, seen)
    if seen is not None and seen == known:
        return False
    # Missing, or one of ours from before (a broker restored from an old snapshot): a new generation.
    # An epoch we never saw is one another sweeper just wrote; recording it settles who announces.
    epoch = key.replace(seen, uuid.uuid4().hex) if seen is None or seen_before else seen
    announce = known is not None

    def remember(session: Session) -> bool:
        return sweeps.record_broker_epoch(session, epoch, now, lost_messages=announce)

    if not services.ledger.retrying(remember):
        return False
    log.warning("broker epoch %s (was %s): asking for all unfinished work again", epoch, known)
    return True


def mark_sent(services: Services, messages: Iterable[Message]) -> None:
    """Record that these map messages were handed to the broker, so the sweeper leaves their bills alone
    while they are queued. Called by the task layer after sending; one UPDATE per tenant."""
    by_tenant: dict[str, list[str]] = {}
    for message in messages:
        if isinstance(message, MapInvoice):
            by_tenant.setdefault(message.tenant_id, []).append(message.invoice_id)
    if not by_tenant:
        return
    now = services.clock()
    with services.ledger.transaction() as session:
        for tenant_id, invoice_ids in by_tenant.items():
            for start in range(0, len(invoice_ids), MARK_CHUNK):
                mark_map_sent(session, tenant_id, invoice_ids[start:start + MARK_CHUNK], now)
