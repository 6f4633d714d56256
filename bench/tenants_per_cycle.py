"""Idle tenants polled per 15-minute cycle through real processes, measured as a rate and extrapolated.

Set up as an operator runs the connector: PostgreSQL (a fresh schema), Redis, one `celery worker` per
queue (poll, map, batch, sftp; concurrency 2 each), one `celery beat` (1 s tick), and the bundled Xero
sandbox holding `--tenants` organisations of `--bills` bills each, all under one grant, at the product's
default cadence (900 s). Every tenant is polled once (its first sync), then all are made due together and
the bench times the idle cycle: from that moment until every tenant's poll has ended
(`tenants.last_polled_at`). The rate (tenants / s) times 900 s is the extrapolated tenants per 15-minute
cycle; it holds as long as the rate stays flat, which the per-tenth timings show. Xero calls per idle
tenant come from the sandbox's own count, and the spread check reads the ledger: after the cycle, how
wide the tenants' next polls (`tenants.next_poll_at`) lie across the 900 s cadence.

    .venv/bin/python bench/tenants_per_cycle.py [--tenants 10000] [--bills 0] [--json PATH]
    (BENCH_TENANTS too)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import map_cost
import psycopg
import redis
from map_throughput import REDIS_URL, peak_rss_mib
from sqlalchemy import func, select, update

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.support, when run as a script

from connector.onboarding import add_grant  # noqa: E402
from connector.secret import Secret  # noqa: E402
from connector.store.models import Tenant  # noqa: E402
from connector.store.tenants import add_tenant  # noqa: E402
from sandbox.xero import XeroSandbox  # noqa: E402
from tests.support.celery_procs import CeleryProcess, start_celery, wait_until  # noqa: E402
from tests.support.pipeline import worker_env  # noqa: E402
from tests.support.services import make_services  # noqa: E402

QUEUES = ("poll", "map", "batch", "sftp")
CYCLE_SECONDS = 900


def api_calls(sandbox: XeroSandbox) -> tuple[int, int]:
    stats = sandbox.stats()
    calls = sum(sum(c.values()) for name, c in stats["calls_by_endpoint"].items() if "/api.xro/" in name)
    return calls, sum(stats["rate_limited"].values())


def run(tenants: int, bills: int) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="bench-tenants-"))
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    broker = redis.Redis.from_url(REDIS_URL)
    broker.flushdb()
    with psycopg.connect(map_cost.PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    processes: list[CeleryProcess] = []
    started = time.perf_counter()
    sandbox = XeroSandbox(seed=42, tenants=tenants, bills=bills)
    sandbox.__enter__()
    services = make_services(map_cost.PG_URL, home, schema=schema)
    try:
        consent = sandbox.consent()  # one user consent to every organisation, as one accountant's grant
        grant = add_grant(services.ledger, services.vault, client_id=str(consent["client_id"]),
                          client_secret=Secret(str(consent["client_secret"])),
                          refresh_token=Secret(str(consent["refresh_token"])))
        later = datetime.now(UTC) + timedelta(days=1)  # not due until the workers are up
        with services.ledger.transaction() as session:
            for n, tenant_id in enumerate(sandbox.tenant_ids):
                add_tenant(session, tenant_id=tenant_id, name=f"Org {n}", short_name=f"t{n}", grant_id=grant,
                           sftp_target_id=None, poll_interval_seconds=CYCLE_SECONDS, max_bills_per_file=500)
            session.execute(update(Tenant).values(next_poll_at=later))
        setup_seconds = time.perf_counter() - started
        env = worker_env(services, f"{map_cost.PG_URL}?options=-csearch_path%3D{schema}", REDIS_URL, sandbox, home)
        for name in ("CONNECTOR_SWEEP_INTERVAL_SECONDS", "CONNECTOR_SWEEP_STALE_SECONDS"):
            env.pop(name)  # the operator's defaults, not the tests' impatient ones
        for queue in QUEUES:
            processes.append(start_celery("worker", env, home / "logs", queues=(queue,)))
        processes.append(start_celery("beat", env, home / "logs"))
        time.sleep(5)  # the workers connect and their pools start

        def cycle() -> tuple[float, int, int, list[float]]:
            """Make every tenant due now; seconds until every poll ended, Xero calls, 429s, and the
            seconds at which each tenth of the tenants had been polled."""
            calls_before, limited_before = api_calls(sandbox)
            with services.ledger.transaction() as session:
                due_at = datetime.now(UTC)
                session.execute(update(Tenant).values(next_poll_at=due_at))
            began = time.perf_counter()
            tenths: list[float] = []

            def done() -> bool:
                with services.ledger.transaction() as session:
                    polled = int(session.scalar(select(func.count()).select_from(Tenant)
                                                .where(Tenant.last_polled_at >= due_at)) or 0)
                while len(tenths) < 10 and polled >= tenants * (len(tenths) + 1) // 10:
                    tenths.append(time.perf_counter() - began)
                return polled >= tenants

            wait_until(done, 7200, "every tenant's poll to end", tuple(processes))
            with services.ledger.transaction() as session:
                last = session.scalar(select(func.max(Tenant.last_polled_at)))
            assert last is not None
            seconds = (last.replace(tzinfo=UTC) - due_at).total_seconds()
            calls_after, limited_after = api_calls(sandbox)
            return seconds, calls_after - calls_before, limited_after - limited_before, tenths

        first_seconds, first_calls, first_429s, _ = cycle()
        idle_seconds, idle_calls, idle_429s, tenths = cycle()
        with services.ledger.transaction() as session:
            low, high = session.execute(select(func.min(Tenant.next_poll_at), func.max(Tenant.next_poll_at))).one()
        rss = {p.role: peak_rss_mib(p.process.pid) for p in processes}
    finally:
        for process in processes:
            process.stop()
        services.close()
        sandbox.__exit__(None, None, None)
        with psycopg.connect(map_cost.PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        broker.flushdb()
        shutil.rmtree(home, ignore_errors=True)
    rate = tenants / idle_seconds
    return {"tenants": tenants, "bills_per_tenant": bills, "setup_seconds": setup_seconds,
            "first_cycle_seconds": first_seconds, "first_cycle_xero_calls": first_calls,
            "first_cycle_429s": first_429s, "idle_cycle_seconds": idle_seconds, "idle_xero_calls": idle_calls,
            "idle_429s": idle_429s, "idle_calls_per_tenant": idle_calls / tenants,
            "idle_tenants_per_second": rate, "tenants_per_15_min_cycle_extrapolated": rate * CYCLE_SECONDS,
            "idle_cycle_tenths_seconds": tenths,
            "next_polls_spread_seconds": (high - low).total_seconds(), "cadence_seconds": CYCLE_SECONDS,
            "peak_rss_mib": rss}


def _stop(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tenants", type=int, default=int(os.environ.get("BENCH_TENANTS", "10000")))
    parser.add_argument("--bills", type=int, default=0, help="bills per tenant (default 0)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _stop)  # a timeout or ^C still stops the workers, sshd and the schema
    load = os.getloadavg()
    r = run(args.tenants, args.bills)
    print(f"Idle tenants per cycle through real workers, {r['tenants']:,} tenants (command: .venv/bin/python "
          f"bench/tenants_per_cycle.py --tenants {args.tenants} --bills {args.bills}; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})")
    print(f"  first cycle (first syncs)    {r['first_cycle_seconds']:>8,.1f} s, "
          f"{r['first_cycle_xero_calls']} Xero calls, {r['first_cycle_429s']} 429s")
    print(f"  idle cycle                   {r['idle_cycle_seconds']:>8,.1f} s, {r['idle_calls_per_tenant']:.2f} Xero "
          f"calls a tenant, {r['idle_429s']} 429s")
    print(f"  rate                         {r['idle_tenants_per_second']:>8,.1f} idle tenants/s -> "
          f"{r['tenants_per_15_min_cycle_extrapolated']:,.0f} per 15-minute cycle (extrapolated; goal 10,000)")
    print("  each tenth done at (s)       " + " ".join(f"{t:.0f}" for t in r["idle_cycle_tenths_seconds"]))
    print(f"  next polls lie within        {r['next_polls_spread_seconds']:>8,.1f} s of the {CYCLE_SECONDS} s cadence")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(r, indent=2, default=str))


if __name__ == "__main__":
    main()
