"""Peak resident memory of the poll worker's work, phase by phase, at several tenant sizes: what grows with
the tenant's size.

The Xero sandbox and the ledger's set-up run in this process; each phase runs in a child process of its
own (as in a worker's pool process), so its memory is its own and no earlier phase's heap hides it. The
child reports its peak RSS (VmHWM, reset before the phase through /proc/self/clear_refs) and its RSS
after the phase, and `grew`: the peak less the RSS it started the phase with:
1. `start`: imports and services built (what any worker holds before it works);
2. `poll`: the tenant's first poll, every page (map messages counted, not kept: a worker sends them),
   then `poll again`, an idle poll (its retries of held bills and credit notes included), in the same child;
3. `sweep`: the sweeper's look with the map queue drained and every bill's message sent long ago (each
   DISCOVERED bill is asked for again), the look that finds the most, its chunks handed over and marked
   sent as the task does;
4. `sweep, broker lost`: the sweeper after the broker lost its messages (every unfinished bill);
5. `reconcile`: the daily reconcile of the tenant, every bill first made DELIVERED (read back from Xero
   50 at a time, compared with what was sent).
`--tracemalloc` adds the peak of Python's own allocations per phase (slower) and the lines that held most
at that peak.

    .venv/bin/python bench/poll_memory.py [--bills 10000 100000] [--tracemalloc] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import redis
import requests

REPO = Path(__file__).resolve().parents[1]
PG_URL = os.environ.get("CONNECTOR_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("CONNECTOR_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
PHASES = ("start", "poll", "poll again", "sweep", "sweep, broker lost", "reconcile")


def _status() -> dict[str, int]:
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {k: int(fields[k].split()[0]) for k in ("VmRSS", "VmHWM")}


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS (Linux)


def child(tenant_id: str, schema: str, phases: list[str], tracing: bool) -> None:
    """Run these phases in this process and print one JSON line per phase."""
    import tracemalloc

    from sqlalchemy import update

    from connector.domain.states import BillState
    from connector.services import poll, reconcile, sweep
    from connector.services.context import build_services
    from connector.settings import load_settings
    from connector.store.models import Bill, Tenant
    from connector.xero.budget import Limits, LocalLeases, RateBudget
    from connector.xero.client import XeroApi

    settings = load_settings()
    services = build_services(settings, schema=schema, run_migrations=False)
    # Xero's 60 calls a minute would make a reconcile of 100,000 delivered bills (2,000 calls) wait half
    # an hour: what is measured here is memory, so the budget (and the sandbox's) are roomy.
    roomy = RateBudget("memory://", LocalLeases(), Limits(per_minute=10_000_000, per_day=100_000_000,
                                                          app_per_minute=100_000_000))
    services.xero = XeroApi(requests.Session(), settings.xero.api, settings.xero_timeout_seconds, roomy)

    def report(phase: str, started: float, began_mib: float, extra: dict[str, Any]) -> None:
        status = _status()
        line = {"phase": phase, "peak_mib": status["VmHWM"] / 1024, "rss_after_mib": status["VmRSS"] / 1024,
                "grew_mib": status["VmHWM"] / 1024 - began_mib, "seconds": time.perf_counter() - started, **extra}
        if tracing:
            current, peak = tracemalloc.get_traced_memory()
            line |= {"traced_peak_mib": peak / 2**20, "traced_after_mib": current / 2**20}
            tracemalloc.reset_peak()
        print(json.dumps(line), flush=True)

    if "start" in phases:
        report("start", time.perf_counter(), _status()["VmRSS"] / 1024, {})
    if tracing:
        tracemalloc.start(12)

    def phase(name: str, work: Any) -> None:
        _reset_peak()
        if tracing:
            tracemalloc.reset_peak()
        began = _status()["VmRSS"] / 1024
        started = time.perf_counter()
        extra = work()
        report(name, started, began, extra or {})

    sent = [0]
    sender = None
    if os.environ.get("BENCH_SEND"):  # through Celery to the broker, as a worker sends them
        from workers.app import app
        from workers.runtime import send
        sender = send

    def emit(message: Any) -> None:
        sent[0] += 1
        if sender is not None:
            sender(app, message)

    def hand_over(chunk: list[Any]) -> None:  # what the sweep task does with each chunk
        for message in chunk:
            emit(message)
        sweep.mark_sent(services, chunk)

    pages: list[dict[str, float]] = []
    mark_sent = poll._mark_sent

    def after_page(*args: Any) -> None:  # each page of the poll ends here, committed and its messages sent
        mark_sent(*args)
        status = _status()
        page = {"rss_mib": status["VmRSS"] / 1024, "peak_mib": status["VmHWM"] / 1024}
        if tracing:
            current, peak = tracemalloc.get_traced_memory()
            page |= {"traced_mib": current / 2**20, "traced_peak_mib": peak / 2**20}
        pages.append(page)

    poll._mark_sent = after_page  # type: ignore[assignment]

    def first_poll() -> dict[str, Any]:
        sweep.sweep(services)  # the first look records the broker's epoch (a loss, with no bills yet)
        polls = 0
        while True:
            polls += 1
            result = poll.poll_tenant(services, tenant_id, emit)
            if not result.handed_over:
                return {"messages": sent[0], "polls": polls, "pages": pages[:]}

    def poll_again() -> dict[str, Any]:
        sent[0] = 0
        with services.ledger.transaction() as session:
            session.execute(update(Tenant).values(next_poll_at=services.clock(), last_polled_at=None))
        poll.poll_tenant(services, tenant_id, emit)
        return {"messages": sent[0]}

    def drained_sweep() -> dict[str, Any]:
        sent[0] = 0
        sweep.sweep(services, send=hand_over)
        return {"messages": sent[0]}

    def lost_sweep() -> dict[str, Any]:
        import redis
        redis.Redis.from_url(settings.broker_url).flushdb()
        return drained_sweep()

    def reconciled() -> dict[str, Any]:
        sent[0] = 0
        found = reconcile.reconcile(services, tenant_id, emit)
        return {"messages": sent[0], "calls": found.calls, "delivered_checked": found.delivered_checked}

    def set_up(name: str) -> None:  # before the phase's peak is reset: statements only, no rows read
        long_ago = services.clock() - timedelta(days=1)
        with services.ledger.transaction() as session:
            if name in ("sweep", "sweep, broker lost"):
                session.execute(update(Bill).values(map_sent_at=long_ago, state_changed_at=long_ago))
            if name == "reconcile":  # as if every bill was delivered at the version read
                session.execute(update(Bill).values(state=BillState.DELIVERED, mapped_version=Bill.version))

    work = {"poll": first_poll, "poll again": poll_again, "sweep": drained_sweep,
            "sweep, broker lost": lost_sweep, "reconcile": reconciled}
    for name in phases:
        if name in work:
            set_up(name)
            phase(name, work[name])
    if tracing:
        snapshot = tracemalloc.take_snapshot()
        top = [str(s) for s in snapshot.statistics("lineno")[:8]]
        print(json.dumps({"phase": "held at the end", "top": top}), flush=True)
    services.close()


def _process_peaks(pid: int) -> dict[str, float]:
    """VmHWM (MiB) of a worker's main process and of each of its children (the pool)."""
    peaks: dict[str, float] = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
        except OSError:
            continue
        if int(status.parent.name) == pid:
            peaks["main"] = int(fields["VmHWM"].split()[0]) / 1024
        elif fields.get("PPid", "").strip() == str(pid):
            peaks[f"child {status.parent.name}"] = int(fields["VmHWM"].split()[0]) / 1024
    return peaks


def in_worker(env: dict[str, str], tenant_id: str, home: Path) -> list[dict[str, Any]]:
    """The phases through a real `celery worker -Q poll -c 2` (no map worker: its messages wait in Redis)."""
    import redis
    from sqlalchemy import select, update

    from connector.services.context import build_services
    from connector.settings import load_settings
    from connector.store.models import Bill, Tenant
    from tests.support.celery_procs import start_celery, wait_until

    os.environ.update(env)
    broker = redis.Redis.from_url(REDIS_URL)
    broker.flushdb()
    services = build_services(load_settings(env), run_migrations=False)
    worker = start_celery("worker", {**env, "PYTHONPATH": str(REPO)}, home / "logs", queues=("poll",))
    from workers.app import app

    lines: list[dict[str, Any]] = []

    def measure(phase: str, started: float) -> None:
        lines.append({"phase": phase, "seconds": time.perf_counter() - started, "peaks": _process_peaks(
            worker.process.pid)})

    def polled() -> bool:
        with services.ledger.transaction() as session:
            return session.scalar(select(Tenant.last_polled_at)) is not None

    try:
        time.sleep(5)
        measure("start", time.perf_counter())
        app.send_task("connector.sweep")  # the first look records the broker's epoch
        time.sleep(3)
        started = time.perf_counter()
        app.send_task("connector.poll_tenant", args=[tenant_id])
        wait_until(polled, 3600, "the poll", (worker,))
        time.sleep(2)
        measure("poll", started)
        long_ago = services.clock() - timedelta(days=1)
        with services.ledger.transaction() as session:
            session.execute(update(Bill).values(map_sent_at=long_ago, state_changed_at=long_ago))
        broker.delete("map")  # drained: every bill's message was sent long ago and is gone
        for phase in ("sweep", "sweep, broker lost"):
            if phase == "sweep, broker lost":
                broker.flushdb()
            started = time.perf_counter()
            app.send_task("connector.sweep")
            wait_until(lambda: broker.llen("map") > 0, 600, "the sweep's messages", (worker,))
            time.sleep(3)
            measure(phase, started)
            broker.delete("map")
    finally:
        worker.stop()
        services.close()
        broker.flushdb()
    return lines


def run(bills: int, tracing: bool, worker: bool = False) -> list[dict[str, Any]]:
    sys.path.insert(0, str(REPO))
    from connector.crypto import Vault
    from connector.onboarding import add_grant, add_tenant
    from connector.secret import Secret
    from connector.services.context import build_services
    from connector.settings import load_settings, xero_url_environment
    from sandbox.xero import XeroSandbox

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    home = Path(tempfile.mkdtemp(prefix="bench-poll-memory-"))
    try:
        with XeroSandbox(seed=42, tenants=1, bills=bills) as sandbox:
            sandbox.set_limits(minute=10_000_000, day=100_000_000, app_minute=100_000_000)
            redis.Redis.from_url(REDIS_URL).flushdb()  # no rate budget or broker epoch left from a run before
            tenant_id = sandbox.tenant_ids[0]
            consent = sandbox.consent()
            env = {"CONNECTOR_DATABASE_URL": f"{PG_URL}?options=-csearch_path%3D{schema}",
                   "CONNECTOR_FERNET_KEYS": Vault.new_key(), "CONNECTOR_BROKER_URL": REDIS_URL,
                   **xero_url_environment(sandbox.urls), "CONNECTOR_STAGING_DIR": str(home / "staging")}
            services = build_services(load_settings(env), schema=schema)
            grant = add_grant(services.ledger, services.vault, client_id=consent["client_id"],
                              client_secret=Secret(consent["client_secret"]),
                              refresh_token=Secret(consent["refresh_token"]))
            add_tenant(services.ledger, tenant_id=tenant_id, name="bench", short_name="bench", grant_id=grant,
                       sftp_target_id=None)
            services.close()
            if worker:
                return in_worker(env, tenant_id, home)
            output = ""
            for phases in (["start", "poll", "poll again"], ["sweep"], ["sweep, broker lost"], ["reconcile"]):
                args = [sys.executable, __file__, "--child", tenant_id, schema, "--phases", *phases]
                output += subprocess.run(args + (["--tracemalloc"] if tracing else []), check=True,
                                         env={**os.environ, **env, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
                                         text=True).stdout
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bills", type=int, nargs="+", default=[5_000, 10_000, 20_000])
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument("--worker", action="store_true", help="through a real celery worker on the poll queue")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--phases", nargs="+", default=list(PHASES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child, phases=args.phases, tracing=args.tracemalloc)
        return
    load = os.getloadavg()
    results: dict[int, list[dict[str, Any]]] = {}
    for bills in args.bills:
        results[bills] = run(bills, args.tracemalloc, args.worker)
        for line in results[bills]:
            if "peaks" in line:
                peaks = ", ".join(f"{k} {v:.1f}" for k, v in sorted(line["peaks"].items()))
                print(f"{bills:>7,} bills  {line['phase']:<20} peak MiB {peaks}, {line['seconds']:6.1f} s", flush=True)
                continue
            if "top" in line:
                print(f"  {bills:,}: held at the end:", *line["top"], sep="\n    ")
                continue
            traced = f", Python's own peak {line['traced_peak_mib']:6.1f} MiB" if "traced_peak_mib" in line else ""
            extra = {k: v for k, v in line.items() if k in ("messages", "polls", "calls", "delivered_checked")}
            print(f"{bills:>7,} bills  {line['phase']:<20} peak {line['peak_mib']:6.1f} MiB (grew "
                  f"{line['grew_mib']:5.1f}), after {line['rss_after_mib']:6.1f} MiB{traced}, {line['seconds']:6.1f} s "
                  f"{extra or ''}", flush=True)
            pages = line.get("pages") or []
            for n in sorted({0, *range(len(pages) // 4, len(pages), max(len(pages) // 4, 1)), len(pages) - 1}):
                if 0 <= n < len(pages):
                    held = ", ".join(f"{k} {v:.1f}" for k, v in pages[n].items())
                    print(f"{'':>15}after page {n + 1:>3}: {held} (MiB)")
    print(f"(command: .venv/bin/python bench/poll_memory.py --bills {' '.join(map(str, args.bills))}"
          f"{' --tracemalloc' if args.tracemalloc else ''}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
          f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"command": sys.argv, "load": load, "results": results}, indent=2))


if __name__ == "__main__":
    main()
