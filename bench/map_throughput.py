"""Map throughput through real Celery workers, beside the empty-task ceiling of the same set-up, in one run.

A sandbox tenant of `--bills` bills is polled into PostgreSQL (a fresh schema); then one `celery worker`
on the map queue (concurrency 2, Redis broker, the connector's own Celery app) is sent, first, one empty
task per bill (bench/celery_empty.py: the messaging ceiling) and then one `map_invoice` per bill, each
timed from the first send to the last task done. Prints both rates, their ratio and the worker's peak RSS.

    .venv/bin/python bench/map_throughput.py [--bills 10000] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
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


def worker_environment(services: Any, schema: str, home: Path) -> dict[str, str]:
    return {
        "CONNECTOR_DATABASE_URL": f"{map_cost.PG_URL}?options=-csearch_path%3D{schema}",
        "CONNECTOR_BROKER_URL": REDIS_URL,
        "CONNECTOR_FERNET_KEYS": ",".join(k.reveal() for k in services.settings.fernet_keys),
        "CONNECTOR_STAGING_DIR": str(home / "staging"),
        "PYTHONPATH": str(REPO / "bench"),
    }


def run(bills: int) -> dict[str, Any]:
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
    log = (home / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "-Q", "map", "-c", "2",
         "-I", "celery_empty", "-n", f"bench-map-{uuid.uuid4().hex[:6]}@%h", "--without-mingle", "--without-gossip",
         "--loglevel", "WARNING"],
        env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        os.environ.update(worker_environment(services, schema, home))  # the sending side's settings
        from workers.app import app

        time.sleep(3)  # the worker connects and its pool starts
        started = time.perf_counter()
        for m in messages:
            app.send_task("bench.empty", args=[m.tenant_id, m.invoice_id, m.version], queue="map")
        while int(broker.get("bench:empty:done") or 0) < len(messages):
            _alive(worker, home)
            time.sleep(0.05)
        empty_seconds = time.perf_counter() - started

        def left() -> int:
            with services.ledger.transaction() as session:
                return int(session.scalar(select(func.count()).where(Bill.state == BillState.DISCOVERED)) or 0)

        started = time.perf_counter()
        for m in messages:
            app.send_task("connector.map_invoice", args=[m.tenant_id, m.invoice_id, m.version])
        while left():
            _alive(worker, home)
            time.sleep(0.1)
        map_seconds = time.perf_counter() - started
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
    return {"bills": count, "seed_and_poll_seconds": poll_seconds,
            "poll_seconds": map_cost.LAST_POLL["seconds"], "poll_pages": int(map_cost.LAST_POLL["pages"]),
            "empty_tasks_per_second": count / empty_seconds, "empty_seconds": empty_seconds,
            "map_bills_per_second": count / map_seconds, "map_seconds": map_seconds,
            "map_worker_peak_rss_mib": rss}


def _alive(worker: Any, home: Path) -> None:
    if worker.poll() is not None:
        raise SystemExit(f"the worker died:\n{(home / 'worker.log').read_text()[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bills", type=int, default=10_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = run(args.bills)
    print(f"Map throughput through a real worker (concurrency 2, Redis, PostgreSQL), {result['bills']:,} bills "
          f"(command: .venv/bin/python bench/map_throughput.py --bills {args.bills})")
    print(f"  empty tasks (ceiling)  {result['empty_tasks_per_second']:>8,.0f} /s")
    print(f"  map_invoice            {result['map_bills_per_second']:>8,.0f} bills/s "
          f"({result['map_bills_per_second'] / result['empty_tasks_per_second']:.2f} of the ceiling; goal 500/s)")
    print(f"  poll alone             {result['poll_seconds']:>8,.1f} s for {result['poll_pages']} pages of bills "
          "and POs (in process)")
    print(f"  worker peak RSS        {result['map_worker_peak_rss_mib']:>8,.0f} MiB")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
