"""Many tenants onboarded at once do not poll at once forever: after its first poll (at once, as an operator
expects) each tenant settles into its own slot of its cadence, slots spread evenly over the cadence, and a
tenant keeps its slot from cycle to cycle. A webhook wake still polls the tenant at once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest
from sqlalchemy import event

from connector.onboarding import add_grant
from connector.secret import Secret
from connector.services import poll
from connector.services.context import Services
from connector.services.dispatch import dispatch_due_polls
from connector.services.messages import Message, PollTenant
from connector.services.sweep import settle_broker_epoch
from connector.store.models import Tenant
from connector.store.tenants import add_tenant
from sandbox.xero import XeroSandbox
from tests.support.delivery import Clock
from tests.support.services import services_for_sandbox

TENANTS = 40
CADENCE = 900
TICK = 60  # beat's default tick
TICKS_A_CYCLE = CADENCE // TICK


@pytest.fixture(scope="module")
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=53, tenants=TENANTS, bills=0) as running:
        yield running


@pytest.fixture
def services(sandbox: XeroSandbox, tmp_path: Path) -> Iterator[Services]:
    built = services_for_sandbox(sandbox, tmp_path, "sqlite")
    built.clock = Clock()
    consent = sandbox.consent()
    grant = add_grant(built.ledger, built.vault, client_id=str(consent["client_id"]),
                      client_secret=Secret(str(consent["client_secret"])),
                      refresh_token=Secret(str(consent["refresh_token"])))
    with built.ledger.transaction() as session:  # onboarded together, in one go
        for n, tenant_id in enumerate(sandbox.tenant_ids):
            add_tenant(session, tenant_id=tenant_id, name=f"Org {n}", short_name=f"t{n}", grant_id=grant,
                       sftp_target_id=None, poll_interval_seconds=CADENCE, max_bills_per_file=500)
    yield built
    built.close()


def tick(services: Services) -> list[str]:
    """One beat tick: dispatch the due tenants and run their polls, as the poll workers would."""
    dispatched = dispatch_due_polls(services)
    for message in dispatched:
        assert isinstance(message, PollTenant)
        sent: list[Message] = []
        poll.poll_tenant(services, message.tenant_id, emit=sent.append)
    return [m.tenant_id for m in dispatched if isinstance(m, PollTenant)]


def run_ticks(services: Services, clock: Clock, ticks: int) -> dict[str, list[int]]:
    """Tick `ticks` times a tick apart; for each tenant, the ticks (counted from the first) it was polled at."""
    polled: dict[str, list[int]] = {}
    for number in range(ticks):
        clock.advance(TICK)
        for tenant_id in tick(services):
            polled.setdefault(tenant_id, []).append(number)
    return polled


def next_polls(services: Services) -> dict[str, datetime]:
    with services.ledger.transaction() as session:
        return {t.id: t.next_poll_at for t in session.query(Tenant) if t.next_poll_at is not None}


def test_tenants_onboarded_together_poll_at_once_then_each_in_its_own_slot_spread_over_the_cadence(
    services: Services, sandbox: XeroSandbox,
) -> None:
    clock = services.clock
    assert isinstance(clock, Clock)
    assert sorted(tick(services)) == sorted(sandbox.tenant_ids), "a new tenant's first poll is at once"

    polled = run_ticks(services, clock, TICKS_A_CYCLE * 5 // 2 + 2)  # a first slot lies within 1.5 cadences

    assert sorted(polled) == sorted(sandbox.tenant_ids)
    for tenant_id, ticks in polled.items():
        assert len(ticks) >= 2, f"tenant {tenant_id} polled at ticks {ticks} only"
        assert all(later - earlier == TICKS_A_CYCLE for earlier, later in pairwise(ticks)), (
            f"tenant {tenant_id} does not keep its slot: polled at ticks {ticks}")
    slots = {tenant_id: ticks[0] % TICKS_A_CYCLE for tenant_id, ticks in polled.items()}
    per_tick = Counter(slots.values())
    assert max(per_tick.values()) <= TENANTS // 5, f"polls bunch up in one tick: {sorted(per_tick.items())}"
    thirds = Counter(slot * 3 // TICKS_A_CYCLE for slot in slots.values())
    assert all(TENANTS // 6 <= thirds[part] <= TENANTS // 2 for part in range(3)), (
        f"polls are not spread evenly over the cadence: {sorted(thirds.items())} per third")

    # A webhook's wake still polls the tenant at once, and the tenant goes back to its slot after.
    slots_at = next_polls(services)
    woken = max(slots_at, key=lambda t: slots_at[t])  # its slot is the furthest away
    clock.advance(TICK * 5)
    with services.ledger.transaction() as session:
        session.get_one(Tenant, woken).next_poll_at = clock()  # what a webhook's wake does (store.webhooks)
    assert woken in tick(services), "a woken tenant is polled at the next tick, not at its slot"
    again = next_polls(services)[woken]
    assert again - slots_at[woken] in (timedelta(0), timedelta(seconds=CADENCE)), (
        f"after a wake the tenant's next poll is at {again}, not in its slot ({slots_at[woken]})")


def test_an_idle_poll_spends_no_transaction_on_heartbeats_its_fresh_lease_already_covers(
    services: Services, sandbox: XeroSandbox,
) -> None:
    """An idle poll is our own cost, not Xero's: its lease was just taken, and outlasts both of its Xero
    requests, so it is not renewed before them (a request that might outlive the lease still renews it,
    tests/integration/test_poll_liveness.py). Its whole cost is counted in test_idle_poll_cost.py."""
    tenant_id = sandbox.tenant_ids[0]
    tick(services)  # every tenant's first sync
    commits = [0]

    def count(*_: object) -> None:
        commits[0] += 1

    event.listen(services.ledger.engine, "commit", count)
    try:
        poll.poll_tenant(services, tenant_id, emit=lambda _: None)
    finally:
        event.remove(services.ledger.engine, "commit", count)
    assert commits[0] <= 4, commits[0]


def test_a_tick_claims_every_due_tenant_together_in_one_transaction_whatever_their_number(
    services: Services, sandbox: XeroSandbox,
) -> None:
    """Beat's tick is one task on the poll queue, and no poll it dispatches starts before it has claimed
    them all: ten thousand tenants due together must not be ten thousand transactions. Tenants whose poll
    holds no lease (all of them but a dead poll's) are read and claimed in one transaction of a few
    statements; each is dispatched once, and a second tick finds nothing."""
    settle_broker_epoch(services)  # once per process, before its first tick sends anything (services.sweep)
    statements: list[str] = []
    transactions = [0]

    def seen(*_: object) -> None:
        statements.append("")

    def begun(*_: object) -> None:
        transactions[0] += 1

    event.listen(services.ledger.engine, "before_cursor_execute", seen)
    event.listen(services.ledger.engine, "begin", begun)
    try:
        dispatched = dispatch_due_polls(services)
    finally:
        event.remove(services.ledger.engine, "before_cursor_execute", seen)
        event.remove(services.ledger.engine, "begin", begun)
    assert sorted(m.tenant_id for m in dispatched if isinstance(m, PollTenant)) == sorted(sandbox.tenant_ids)
    assert transactions[0] == 1, transactions[0]
    assert len(statements) <= 2, len(statements)  # the due tenants read, then claimed
    assert dispatch_due_polls(services) == [], "a second tick dispatched a claimed tenant again"
