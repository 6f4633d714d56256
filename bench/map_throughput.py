"""Map throughput through real Celery workers, beside the empty-task ceiling of the same set-up, in one run.

A sandbox tenant of `--bills` bills is polled into PostgreSQL (a fresh schema); then one `celery worker`
on the map queue (concurrency 2 unless `--concurrency`, Redis broker, the connector's own Celery app) is
sent, first, one empty task per bill (bench/celery_empty.py: the messaging ceiling) and then one
`map_invoice` per bill, each timed from the first send to the last task done. Prints both rates, their
ratio, the CPU each phase cost per task in the worker's main process, its pool processes and its
PostgreSQL backends (CPU time is less sensitive to a busy machine than a rate), and the worker's peak
RSS. `--profile` runs cProfile in each pool process from its first map task on (bench/worker_profile.py)
and prints the top entries
(BENCH_PROFILE_SORT=tottime|cumulative, BENCH_PROFILE_FILTER=<regex>).

    .venv/bin/python bench/map_throughput.py [--bills 10000] [--concurrency 2] [--prefetch-multiplier N]
        [--json PATH] [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import map_cost
import psycopg
import redis
from sqlalchemy import func, select

from connector.domain.states import BillState
from connector.store.models import Bill

REDIS_URL = os.environ.get("CONNECTOR_BENCH_REDIS_URL", "redis://127.0.0.1:6379/6")
REPO = Path(__file__).resolve().parents[1]


def peak_rss_mib(pid: int) -> float:
    """The largest VmHWM among the process and its children (Celery's pool processes)."""
    peak = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        if int(status.parent.name) == pid or fields.get("PPid", "").strip() == str(pid):
            peak = max(peak, int(fields.get("VmHWM", "0 kB").split()[0]))
    return peak / 1024


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU of these processes so far (a process gone is counted as nothing)."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def children_of(pid: int) -> list[int]:
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        if f"\nPPid:\t{pid}\n" in text:
            found.append(int(status.parent.name))
    return found


def pg_backends(application_name: str) -> list[int]:
    with psycopg.connect(map_cost.PG_URL, autocommit=True) as conn:
        return [row[0] for row in conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                                               (application_name,))]


class CpuMeter:
    """CPU spent by the worker's main process, its pool processes and its PostgreSQL backends in one phase."""

    def __init__(self, worker_pid: int, application_name: str) -> None:
        self.worker_pid, self.application_name = worker_pid, application_name

    def _now(self) -> dict[str, float]:
        return {"main": cpu_seconds([self.worker_pid]), "pool": cpu_seconds(children_of(self.worker_pid)),
                "postgres": cpu_seconds(pg_backends(self.application_name))}

    def start(self) -> None:
        self._started = self._now()

    def per_task_ms(self, tasks: int) -> dict[str, float]:
        now = self._now()
        return {part: (now[part] - self._started[part]) * 1000 / tasks for part in now}


def worker_environment(services: Any, schema: str, home: Path) -> dict[str, str]:
    return {
        "CONNECTOR_DATABASE_URL": f"{map_cost.PG_URL}?options=-csearch_path%3D{schema}"
                                  f"&application_name={schema}",
        "CONNECTOR_BROKER_URL": REDIS_URL,
        "CONNECTOR_FERNET_KEYS": ",".join(k.reveal() for k in services.settings.fernet_keys),
        "CONNECTOR_STAGING_DIR": str(home / "staging"),
        "PYTHONPATH": str(REPO / "bench"),
    }


def run(bills: int, profile: bool = False, concurrency: int = 2, prefetch: int | None = None) -> dict[str, Any]:
    import subprocess
    import sys

    home = Path(tempfile.mkdtemp(prefix="bench-map-throughput-"))
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    broker = redis.Redis.from_url(REDIS_URL)
    broker.flushdb()
    with psycopg.connect(map_cost.PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    started = time.perf_counter()
    services, messages, sandbox = map_cost.polled(bills, schema, home)
    poll_seconds = time.perf_counter() - started  # sandbox seeding, onboarding and the in-process poll
    env = {**os.environ, **worker_environment(services, schema, home)}
    if profile:
        (home / "profile").mkdir()
        env["BENCH_PROFILE_DIR"] = str(home / "profile")
    log = (home / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "-Q", "map", "-c", str(concurrency),
         *(["--prefetch-multiplier", str(prefetch)] if prefetch else []),
         "-I", "celery_empty,worker_profile", "-n", f"bench-map-{uuid.uuid4().hex[:6]}@%h", "--without-mingle",
         "--without-gossip", "--loglevel", "WARNING"],
        env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        os.environ.update(worker_environment(services, schema, home))  # the sending side's settings
        from workers.app import app

        time.sleep(3)  # the worker connects and its pool starts
        meter = CpuMeter(worker.pid, schema)
        meter.start()
        started = time.perf_counter()
        for m in messages:
            app.send_task("bench.empty", args=[m.tenant_id, m.invoice_id, m.version], queue="map")
        while int(broker.get("bench:empty:done") or 0) < len(messages):
            _alive(worker, home)
            time.sleep(0.05)
        empty_seconds = time.perf_counter() - started
        empty_cpu = meter.per_task_ms(len(messages))

        def left() -> int:
            with services.ledger.transaction() as session:
                return int(session.scalar(select(func.count()).where(Bill.state == BillState.DISCOVERED)) or 0)

        meter.start()
        started = time.perf_counter()
        for m in messages:
            app.send_task("connector.map_invoice", args=[m.tenant_id, m.invoice_id, m.version])
        while left():
            _alive(worker, home)
            time.sleep(0.1)
        map_seconds = time.perf_counter() - started
        map_cpu = meter.per_task_ms(len(messages))
        rss = peak_rss_mib(worker.pid)
    finally:
        os.killpg(worker.pid, 15)
        worker.wait(timeout=60)
        services.close()
        sandbox.__exit__(None, None, None)
        with psycopg.connect(map_cost.PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        broker.flushdb()
    count = len(messages)
    return {"bills": count, "concurrency": concurrency, "prefetch_multiplier": prefetch,
            "seed_and_poll_seconds": poll_seconds,
            "poll_seconds": map_cost.LAST_POLL["seconds"], "poll_pages": int(map_cost.LAST_POLL["pages"]),
            "empty_tasks_per_second": count / empty_seconds, "empty_seconds": empty_seconds,
            "map_bills_per_second": count / map_seconds, "map_seconds": map_seconds,
            "map_worker_peak_rss_mib": rss, "empty_cpu_ms_per_task": empty_cpu, "map_cpu_ms_per_task": map_cpu,
            "load_average": os.getloadavg(), "profile_dir": str(home / "profile") if profile else None}


def _alive(worker: Any, home: Path) -> None:
    if worker.poll() is not None:
        raise SystemExit(f"the worker died:\n{(home / 'worker.log').read_text()[-3000:]}")


def _print_profile(directory: Path) -> None:
    files = sorted(directory.glob("*.prof"))
    if not files:
        print("  (no profile written: fewer map tasks per pool process than worker_profile.DUMP_EVERY)")
        return
    stats = pstats.Stats(*map(str, files))
    stats.sort_stats(os.environ.get("BENCH_PROFILE_SORT", "tottime"))
    stats.print_stats(os.environ.get("BENCH_PROFILE_FILTER", ""), 60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bills", type=int, default=10_000)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--concurrency", type=int, default=2, help="the map worker's pool processes (default 2)")
    parser.add_argument("--prefetch-multiplier", type=int, help="the map worker's, as its command line would set it "
                        "(default: the app's setting, workers.app)")
    args = parser.parse_args()
    result = run(args.bills, args.profile, args.concurrency, args.prefetch_multiplier)
    print(f"Map throughput through a real worker (concurrency {args.concurrency}, Redis, PostgreSQL), "
          f"{result['bills']:,} bills (command: .venv/bin/python bench/map_throughput.py --bills {args.bills} "
          f"--concurrency {args.concurrency}"
          f"{f' --prefetch-multiplier {args.prefetch_multiplier}' if args.prefetch_multiplier else ''})")
    print(f"  empty tasks (ceiling)  {result['empty_tasks_per_second']:>8,.0f} /s")
    print(f"  map_invoice            {result['map_bills_per_second']:>8,.0f} bills/s "
          f"({result['map_bills_per_second'] / result['empty_tasks_per_second']:.2f} of the ceiling; goal 500/s)")
    print(f"  poll alone             {result['poll_seconds']:>8,.1f} s for {result['poll_pages']} pages of bills "
          "and POs (in process)")
    for label, key in (("empty task", "empty_cpu_ms_per_task"), ("map_invoice", "map_cpu_ms_per_task")):
        cpu = result[key]
        print(f"  CPU a {label:<12} {sum(cpu.values()):>6.2f} ms: worker main {cpu['main']:.2f}, "
              f"pool {cpu['pool']:.2f}, postgres {cpu['postgres']:.2f}")
    print(f"  load average           {result['load_average'][0]:>8.2f} (at the end)")
    print(f"  worker peak RSS        {result['map_worker_peak_rss_mib']:>8,.0f} MiB")
    if args.profile:
        _print_profile(Path(result["profile_dir"]))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
