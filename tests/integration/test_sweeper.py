"""The sweeper asks again only for work whose message can truly be lost, and mapping runs are counted so
a bill that stops its worker every time is held instead of redelivered for ever. A fixed clock, real
PostgreSQL and SQLite, and the broker's real Redis database (its epoch key deleted, or the database flushed,
as a restart without persistence would leave it)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import event, select, text, update

from connector.broker_epoch import FILE_NAME, REDIS_KEY
from connector.domain.states import BillState
from connector.failpoints import FailpointHit
from connector.limits import TIME_LIMITS
from connector.reporting import summarise
from connector.services import batch, dispatch, map, poll
from connector.services import sweep as sweeper
from connector.services.context import Services
from connector.services.holds import release
from connector.services.messages import AssembleBatch, DeliverBatch, MapInvoice, Message, PollTenant
from connector.store.models import Bill, OperationalEvent, utcnow
from connector.store.work import mark_map_sent
from sandbox.xero import XeroSandbox
from tests.support.pipeline import onboard
from tests.support.services import services_for_sandbox
from tests.support.sftp_fixtures import BundledSftp


@pytest.fixture
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=11, tenants=1, bills=40) as running:
        yield running


@pytest.fixture(params=["sqlite", "postgresql"])
def services(request: pytest.FixtureRequest, sandbox: XeroSandbox, redis_url: str,
             tmp_path: Path) -> Iterator[Services]:
    """Services on either database whose broker is the test's own Redis database."""
    schema = request.getfixturevalue("pg_schema") if request.param == "postgresql" else None
    built = services_for_sandbox(sandbox, tmp_path, request.param, schema=schema,
                                 extra_env={"CONNECTOR_BROKER_URL": redis_url})
    yield built
    built.close()


class Clock:
    """The services' clock, moved by the test; starts at the real time (bills are stamped with it)."""

    def __init__(self) -> None:
        self.start = utcnow()
        self.now = self.start

    def __call__(self) -> datetime:
        return self.now

    def at(self, seconds: float) -> None:
        self.now = self.start + timedelta(seconds=seconds)


@pytest.fixture
def clock(services: Services) -> Clock:
    """A fixed clock, and a sweeper that has run before (it knows the broker's epoch)."""
    fixed = Clock()
    services.clock = fixed
    assert sweeper.sweep(services) == []
    return fixed


def polled(services: Services, tenant_id: str) -> list[MapInvoice]:
    """A poll's map messages, not yet handed to any broker."""
    found: list[Message] = []
    poll.poll_tenant(services, tenant_id, emit=found.append)
    maps = [m for m in found if isinstance(m, MapInvoice)]
    assert maps
    return maps


def handed_to_broker(services: Services, messages: list[MapInvoice]) -> None:
    """What a producer records once its page's map messages are with the broker."""
    with services.ledger.transaction() as session:
        mark_map_sent(session, messages[0].tenant_id, [m.invoice_id for m in messages], services.clock())


def never_handed_over(services: Services) -> None:
    """As if the poll's worker died after committing its page, before its map messages reached the broker."""
    with services.ledger.transaction() as session:
        session.execute(update(Bill).values(map_sent_at=None))


def maps_asked_for(services: Services) -> set[str]:
    return {m.invoice_id for m in sweeper.sweep(services) if isinstance(m, MapInvoice)}


def stale(services: Services) -> float:
    return services.settings.sweep_stale_seconds


def bill(services: Services, invoice_id: str) -> Bill:
    with services.ledger.transaction() as session:
        return session.scalars(select(Bill).where(Bill.invoice_id == invoice_id)).one()


def events(services: Services, kind: str) -> list[str]:
    with services.ledger.transaction() as session:
        return list(session.scalars(select(OperationalEvent.message).where(OperationalEvent.kind == kind)))


def queued_in_the_broker(redis_url: str, messages: list[MapInvoice]) -> None:
    """The map queue holds these messages (a backlog): one list entry each, as kombu keeps them."""
    client = redis.Redis.from_url(redis_url)
    client.lpush("map", *[f"map {m.invoice_id}" for m in messages])
    client.close()


def test_a_bill_whose_map_message_is_queued_is_left_alone_however_long_the_queue(
    services: Services, clock: Clock, sandbox: XeroSandbox, bundled_sftp: BundledSftp, redis_url: str,
) -> None:
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    messages = polled(services, tenant_id)
    handed_to_broker(services, messages)
    queued_in_the_broker(redis_url, messages)
    for later in (stale(services) + 60, TIME_LIMITS["map"] + stale(services) + 60, 6 * 3600):
        clock.at(later)
        assert maps_asked_for(services) == set(), f"{later}s after the poll"


def test_a_sent_message_no_worker_started_is_asked_for_again_once_the_map_queue_is_empty(
    services: Services, clock: Clock, sandbox: XeroSandbox, bundled_sftp: BundledSftp, redis_url: str,
) -> None:
    """A worker reserved the message and was killed before it began: Redis keeps it unacknowledged for the
    visibility timeout (hours); an empty queue with the bill still unstarted says the message is gone."""
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    messages = polled(services, tenant_id)
    handed_to_broker(services, messages)
    queued_in_the_broker(redis_url, messages[:1])  # one still waits in the queue
    clock.at(stale(services) + 1)
    assert maps_asked_for(services) == set()  # the queue is not empty: they may all still be coming
    redis.Redis.from_url(redis_url).delete("map")  # the queue drained, the others never started
    assert maps_asked_for(services) == {m.invoice_id for m in messages}


def test_a_bill_whose_map_message_was_never_sent_is_asked_for_once_after_the_stale_window(
    services: Services, clock: Clock, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
) -> None:
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    never_sent = {m.invoice_id for m in polled(services, tenant_id)}
    never_handed_over(services)
    clock.at(stale(services) / 2)
    assert maps_asked_for(services) == set()
    clock.at(stale(services) + 60)
    asked = sweeper.sweep(services)
    assert {m.invoice_id for m in asked if isinstance(m, MapInvoice)} == never_sent
    sweeper.mark_sent(services, asked)  # what the task layer does once it sent them
    clock.at(stale(services) + 120)
    assert maps_asked_for(services) == set()


def test_a_mapping_whose_worker_died_is_asked_for_again_only_after_the_map_time_limit(
    services: Services, clock: Clock, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
    monkeypatch: pytest.MonkeyPatch, redis_url: str,
) -> None:
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    messages = polled(services, tenant_id)
    handed_to_broker(services, messages)
    queued_in_the_broker(redis_url, messages[1:])  # the others wait in a backlog
    victim = messages[0]
    monkeypatch.setenv("CONNECTOR_FAILPOINTS", f"map.decide.{victim.invoice_id}=raise*")
    clock.at(10)
    with pytest.raises(FailpointHit):  # the worker dies after the run was counted, before deciding
        map.map_invoice(services, tenant_id, victim.invoice_id, victim.version)
    assert bill(services, victim.invoice_id).map_runs == 1
    abandoned_after = 10 + TIME_LIMITS["map"] + stale(services)
    clock.at(abandoned_after - 30)
    assert maps_asked_for(services) == set()
    clock.at(abandoned_after + 30)
    asked = sweeper.sweep(services)
    assert asked == [victim]
    sweeper.mark_sent(services, asked)
    clock.at(abandoned_after + 90)
    assert maps_asked_for(services) == set(), "asked for again while its new message is queued"


@pytest.mark.parametrize("loss", ["key deleted", "database flushed"])
def test_everything_unfinished_is_asked_for_again_after_the_broker_lost_its_messages(
    services: Services, clock: Clock, sandbox: XeroSandbox, bundled_sftp: BundledSftp, redis_url: str, loss: str,
) -> None:
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    messages = polled(services, tenant_id)
    handed_to_broker(services, messages)
    for message in messages[:15]:
        map.map_invoice(services, tenant_id, message.invoice_id, message.version)
    staged = [m.batch_id for m in batch.assemble_batches(services, tenant_id) if isinstance(m, DeliverBatch)]
    assert staged
    for message in messages[15:25]:
        map.map_invoice(services, tenant_id, message.invoice_id, message.version)
    assert summarise(services.ledger).by_state[BillState.READY] > 0
    discovered = {m.invoice_id for m in messages[25:]}
    clock.at(10)
    assert sweeper.sweep(services) == [], "fresh, queued work is left alone"

    broker = redis.Redis.from_url(redis_url)
    if loss == "key deleted":
        assert broker.delete(REDIS_KEY) == 1
    else:
        broker.flushdb()
    clock.at(20)
    asked = sweeper.sweep(services)
    assert {m.invoice_id for m in asked if isinstance(m, MapInvoice)} == discovered
    assert AssembleBatch(tenant_id) not in asked, "the last bill mapped again asks for the tenant's one file"
    assert {m.batch_id for m in asked if isinstance(m, DeliverBatch)} == set(staged)
    assert len(events(services, sweeper.sweeps.BROKER_LOST_MESSAGES)) == 1
    sweeper.mark_sent(services, asked)
    clock.at(30)
    assert sweeper.sweep(services) == [], "the loss is handled once"
    assert len(events(services, sweeper.sweeps.BROKER_LOST_MESSAGES)) == 1
    follow_ups = [f for m in asked if isinstance(m, MapInvoice)
                  for f in map.map_invoice(services, tenant_id, m.invoice_id, m.version)]
    assert follow_ups == [AssembleBatch(tenant_id)]


def test_after_a_broker_loss_a_tenant_with_only_ready_bills_left_is_asked_for_its_batch(
    services: Services, clock: Clock, sandbox: XeroSandbox, bundled_sftp: BundledSftp, redis_url: str,
) -> None:
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    messages = polled(services, tenant_id)
    handed_to_broker(services, messages)
    for message in messages:  # the last one's request for the batch is lost with the broker
        map.map_invoice(services, tenant_id, message.invoice_id, message.version)
    assert summarise(services.ledger).by_state[BillState.READY] > 0
    redis.Redis.from_url(redis_url).flushdb()
    clock.at(10)
    assert sweeper.sweep(services) == [AssembleBatch(tenant_id)]


def test_a_wiped_folder_of_the_embedded_broker_counts_as_a_broker_loss(
    sandbox: XeroSandbox, bundled_sftp: BundledSftp, tmp_path: Path,
) -> None:
    services = services_for_sandbox(sandbox, tmp_path, "sqlite")  # filesystem:// broker under tmp_path
    try:
        clock = Clock()
        services.clock = clock
        sweeper.sweep(services)
        tenant_id = onboard(services, sandbox, bundled_sftp.target())
        messages = polled(services, tenant_id)
        handed_to_broker(services, messages)
        clock.at(10)
        assert sweeper.sweep(services) == []
        (services.settings.broker_dir / FILE_NAME).unlink()
        clock.at(20)
        assert maps_asked_for(services) == {m.invoice_id for m in messages}
        assert len(events(services, sweeper.sweeps.BROKER_LOST_MESSAGES)) == 1
    finally:
        services.close()


def crash_mapping(services: Services, message: MapInvoice) -> None:
    with pytest.raises(FailpointHit):
        map.map_invoice(services, message.tenant_id, message.invoice_id, message.version)


def test_a_bill_whose_mapping_stopped_its_worker_three_times_is_held_and_the_batch_still_comes(
    services: Services, clock: Clock, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    poison, *others = polled(services, tenant_id)
    for message in others:
        map.map_invoice(services, tenant_id, message.invoice_id, message.version)
    monkeypatch.setenv("CONNECTOR_FAILPOINTS", f"map.decide.{poison.invoice_id}=raise*")
    for _ in range(3):
        crash_mapping(services, poison)
    assert map.map_invoice(services, tenant_id, poison.invoice_id, poison.version) == [AssembleBatch(tenant_id)]
    held = bill(services, poison.invoice_id)
    assert held.state == BillState.HELD
    assert held.reasons == [{"code": "crashed_worker", "runs": 3}]
    assert held.map_runs == 0
    [event] = events(services, map.BILL_HELD_CRASHED_WORKER)
    assert poison.invoice_id in event
    assert "stopped its worker 3 times" in event
    [(_, _, shown)] = [h for h in summarise(services.ledger).held if h[0] == poison.invoice_id]
    assert "connector holds release" in shown[0]
    assert map.map_invoice(services, tenant_id, poison.invoice_id, poison.version) == [], "never mapped again"
    monkeypatch.delenv("CONNECTOR_FAILPOINTS")  # the bug was fixed and deployed; a person releases the bill
    with services.ledger.transaction() as session:
        release(session, tenant_id, poison.invoice_id, by="ap.ops", why="fixed in the last release")
    released = bill(services, poison.invoice_id)
    assert (released.state, released.map_runs, released.map_sent_at) == (BillState.DISCOVERED, 0, None)
    clock.at(stale(services) + 60)
    assert poison.invoice_id in maps_asked_for(services)  # the sweeper sends it to mapping again
    map.map_invoice(services, tenant_id, poison.invoice_id, poison.version)
    assert bill(services, poison.invoice_id).state != BillState.HELD


def test_a_mapping_that_finishes_starts_the_count_again(
    services: Services, clock: Clock, sandbox: XeroSandbox, bundled_sftp: BundledSftp,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    victim = polled(services, tenant_id)[0]
    monkeypatch.setenv("CONNECTOR_FAILPOINTS", f"map.decide.{victim.invoice_id}=raise*")
    crash_mapping(services, victim)
    crash_mapping(services, victim)
    assert bill(services, victim.invoice_id).map_runs == 2
    monkeypatch.delenv("CONNECTOR_FAILPOINTS")
    map.map_invoice(services, tenant_id, victim.invoice_id, victim.version)
    mapped = bill(services, victim.invoice_id)
    assert mapped.state != BillState.DISCOVERED
    assert mapped.map_runs == 0
    assert {"code": "crashed_worker", "runs": 2} not in mapped.reasons


def test_the_first_sweep_asks_for_all_unfinished_work_as_nobody_knows_what_the_broker_held(
    sandbox: XeroSandbox, bundled_sftp: BundledSftp, tmp_path: Path, redis_url: str,
) -> None:
    services = services_for_sandbox(sandbox, tmp_path, "sqlite", extra_env={"CONNECTOR_BROKER_URL": redis_url})
    try:
        services.clock = Clock()
        tenant_id = onboard(services, sandbox, bundled_sftp.target())
        messages = polled(services, tenant_id)
        handed_to_broker(services, messages)
        assert maps_asked_for(services) == {m.invoice_id for m in messages}
        assert events(services, sweeper.sweeps.BROKER_LOST_MESSAGES) == [], "nothing was known to be lost"
        assert maps_asked_for(services) == set()
    finally:
        services.close()


def test_the_first_dispatch_settles_the_brokers_epoch_so_a_first_sync_is_not_asked_for_twice(
    sandbox: XeroSandbox, bundled_sftp: BundledSftp, tmp_path: Path, redis_url: str,
) -> None:
    """On a fresh deployment the first sweep comes while the first polls' bills wait in the map queue; had
    nobody told the broker's epoch to the ledger before, it took that for a lost broker and sent every
    unfinished bill again (16,000 map tasks for a first sync of 10,000 bills). Beat's first dispatch
    settles the epoch before it sends anything, so only a broker emptied after that counts as a loss."""
    services = services_for_sandbox(sandbox, tmp_path, "sqlite", extra_env={"CONNECTOR_BROKER_URL": redis_url})
    try:
        services.clock = Clock()
        tenant_id = onboard(services, sandbox, bundled_sftp.target())
        assert dispatch.dispatch_due_polls(services) == [PollTenant(tenant_id)]
        messages = polled(services, tenant_id)
        handed_to_broker(services, messages)
        assert maps_asked_for(services) == set(), "the queued bills are not sent twice"
        redis.Redis.from_url(redis_url).delete(REDIS_KEY)  # and a broker emptied since is still seen
        assert maps_asked_for(services) == {m.invoice_id for m in messages}
        assert len(events(services, sweeper.sweeps.BROKER_LOST_MESSAGES)) == 1
    finally:
        services.close()


class ReadsAndSends:
    """The ledger's reads of bills (each statement that reads a bill's InvoiceID) and the chunks handed
    over to be sent, in the order they happened."""

    def __init__(self, services: Services) -> None:
        self.steps: list[tuple[str, str | list[Message]]] = []
        self._engine = services.ledger.engine

    def send(self, chunk: list[Message]) -> None:
        self.steps.append(("send", chunk))

    def _seen(self, _conn: object, _cursor: object, statement: str, *_: object) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "bills.invoice_id" in statement:
            self.steps.append(("read", statement))

    def __enter__(self) -> ReadsAndSends:
        event.listen(self._engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(self._engine, "before_cursor_execute", self._seen)


@pytest.mark.parametrize("unfinished", [0, 1, 4, 5])
@pytest.mark.parametrize("why", ["broker lost", "never sent"])
def test_a_sweep_reads_and_sends_the_bills_it_asks_for_a_chunk_at_a_time(
    services: Services, clock: Clock, sandbox: XeroSandbox, bundled_sftp: BundledSftp, redis_url: str,
    monkeypatch: pytest.MonkeyPatch, unfinished: int, why: str,
) -> None:
    """After a broker loss every unfinished bill is asked for: read a chunk of ledger ids at a time (from
    the first DISCOVERED bill after the last chunk), each chunk handed over before the next is read, so a
    sweep holds a chunk, never the ledger. Across the chunk's edges (none, one, a full chunk, a chunk and
    one) each bill is asked for once."""
    monkeypatch.setattr(sweeper, "SWEEP_CHUNK", 4)
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    messages = polled(services, tenant_id)
    handed_to_broker(services, messages)
    kept = messages[3:3 + unfinished]
    with services.ledger.transaction() as session:  # the others are settled, one way or another
        session.execute(update(Bill).where(Bill.invoice_id.not_in([m.invoice_id for m in kept]))
                        .values(state=BillState.EXCLUDED))
        ids = dict(list(session.execute(select(Bill.invoice_id, Bill.id)).tuples()))
    assert [ids[m.invoice_id] for m in kept] == list(range(ids[kept[0].invoice_id], ids[kept[0].invoice_id]
                                                          + unfinished)) if kept else True, "in a row"
    if why == "broker lost":
        redis.Redis.from_url(redis_url).flushdb()
    else:
        never_handed_over(services)
    clock.at(stale(services) + 60)
    with ReadsAndSends(services) as watched:
        assert sweeper.sweep(services, send=watched.send) == [], "everything went to `send`"
    steps = [step for step, _ in watched.steps]
    assert steps == ["read", "send"] * -(-unfinished // 4), "each chunk read, then sent, then the next read"
    chunks = [[ids[m.invoice_id] for m in chunk] for step, chunk in watched.steps if step == "send"]
    assert all(max(chunk) - min(chunk) < 4 for chunk in chunks), chunks
    assert [m for _, chunk in watched.steps[1::2] for m in chunk] == kept, "each asked for once, in order"


def test_marking_map_messages_sent_finds_the_bills_by_invoice_id_not_by_walking_the_tenants_backlog(
    sandbox: XeroSandbox, bundled_sftp: BundledSftp, tmp_path: Path, pg_schema: str,
) -> None:
    """Each page of a first poll and each chunk of a sweep marks its bills' messages sent. On PostgreSQL
    with no statistics yet (a tenant's first sync), a condition naming the tenant and the state beside the
    InvoiceIDs walked the (tenant, state) index: every DISCOVERED bill of the tenant for each page, a
    first sync quadratic in the tenant's size. The bills are found through (tenant, InvoiceID) instead."""
    services = services_for_sandbox(sandbox, tmp_path, "postgresql", schema=pg_schema)
    try:
        tenant_id = onboard(services, sandbox, bundled_sftp.target())
        messages = polled(services, tenant_id)
        with services.ledger.transaction() as session:  # a first sync of 100,000 bills, no statistics yet
            session.execute(text(
                "INSERT INTO bills (tenant_id, invoice_id, document_type, xero_status, version, state, reasons,"
                " payload, state_changed_at, map_runs, row_version) SELECT :tenant, 'filler-' || n, 'BILL',"
                " 'AUTHORISED', 1, 'DISCOVERED', '[]', '{}', now(), 0, 1 FROM generate_series(1, 100000) AS n"),
                {"tenant": tenant_id})
        marks: list[tuple[str, Any]] = []

        def seen(_conn: object, _cursor: object, statement: str, parameters: Any, *_: object) -> None:
            if statement.lstrip().upper().startswith("UPDATE BILLS SET MAP_SENT_AT"):
                marks.append((statement, parameters))

        event.listen(services.ledger.engine, "before_cursor_execute", seen)
        try:
            sweeper.mark_sent(services, messages)
        finally:
            event.remove(services.ledger.engine, "before_cursor_execute", seen)
        [(statement, parameters)] = marks  # one statement, run for each bill
        parameters = parameters[0] if isinstance(parameters, list) else parameters
        with services.ledger.engine.connect() as connection:
            cursor = connection.connection.cursor()
            cursor.execute(f"EXPLAIN {statement}", parameters)
            plan = "\n".join(row[0] for row in cursor.fetchall())
        assert "uq_bills_tenant_invoice" in plan, plan
        assert "ix_bills_tenant_state" not in plan, plan
        with services.ledger.transaction() as session:
            marked = session.scalars(select(Bill.invoice_id).where(Bill.map_sent_at.is_not(None))).all()
        assert sorted(marked) == sorted(m.invoice_id for m in messages), "these bills marked, and only these"
    finally:
        services.close()


def test_each_chunk_of_a_sweep_is_one_range_of_an_index_whatever_the_ledgers_size(
    sandbox: XeroSandbox, bundled_sftp: BundledSftp, tmp_path: Path, pg_schema: str,
) -> None:
    """A sweep after a broker loss reads every DISCOVERED bill a chunk at a time. With `ORDER BY id LIMIT`
    after the last id, a planner without statistics found them through the (tenant, state) index and
    sorted every DISCOVERED bill after the key for each chunk (180 ms a chunk at 100,000 bills): a sweep
    quadratic in the ledger's size. Each chunk is a probe for the next DISCOVERED id and one bounded range
    of the (state, id) index instead."""
    services = services_for_sandbox(sandbox, tmp_path, "postgresql", schema=pg_schema)
    try:
        tenant_id = onboard(services, sandbox, bundled_sftp.target())
        with services.ledger.transaction() as session:  # a ledger of 100,000 unfinished bills, no statistics yet
            session.execute(text(
                "INSERT INTO bills (tenant_id, invoice_id, document_type, xero_status, version, state, reasons,"
                " payload, state_changed_at, map_runs, row_version) SELECT :tenant, 'filler-' || n, 'BILL',"
                " 'AUTHORISED', 1, 'DISCOVERED', '[]', '{}', now(), 0, 1 FROM generate_series(1, 100000) AS n"),
                {"tenant": tenant_id})
        reads: list[tuple[str, Any]] = []

        def seen(_conn: object, _cursor: object, statement: str, parameters: Any, *_: object) -> None:
            if statement.lstrip().upper().startswith("SELECT") and "FROM bills" in statement:
                reads.append((statement, parameters))

        event.listen(services.ledger.engine, "before_cursor_execute", seen)
        try:
            with services.ledger.transaction() as session:
                chunk, following = sweeper.sweeps.map_work(session, sweeper.sweeps.MapLook(everything=True),
                                                           after=50_000, span=1000)
        finally:
            event.remove(services.ledger.engine, "before_cursor_execute", seen)
        assert [bill_id for bill_id, _ in chunk] == list(range(50_001, 51_001))
        assert following == 51_000
        assert len(reads) == 2, "the probe and the chunk"
        with services.ledger.engine.connect() as connection:
            cursor = connection.connection.cursor()
            for statement, parameters in reads:
                cursor.execute(f"EXPLAIN {statement}", parameters)
                plan = "\n".join(row[0] for row in cursor.fetchall())
                assert "ix_bills_state_id" in plan, plan
                assert "ix_bills_tenant_state" not in plan, plan
    finally:
        services.close()
