"""A first sync end to end through real processes, beside the messaging floor of the same run, and the peak
RSS of every worker.

Set up as an operator runs the connector: PostgreSQL (a fresh schema), Redis, one `celery worker` per
queue (poll, map, batch, sftp; concurrency 2 each), one `celery beat` (1 s tick), the bundled Xero sandbox
holding one tenant of `--bills` bills, and a throwaway OpenSSH sshd as the Stampli SFTP server (root only).
Files hold the product's default of 500 bills.

1. The floor: one empty task per bill through the map worker (bench/celery_empty.py), first send to last
   done: what Celery alone costs to move one message per bill, so no first sync can be faster.
2. The first sync, on a fresh deployment (beat's first dispatch tells the ledger the broker's epoch, so
   its first sweep asks for no queued bill again): the tenant is made due; from then (the first poll)
   until the last file is committed on the SFTP server (the newest `batches.delivered_at`) is the wall
   time. Every bill must reach a file. A timeline of the sync follows the figures.
3. Peak RSS: the largest VmHWM of each worker's main and pool processes, and of beat, after the sync;
   and, per kind of task, the highest peak a task of that kind raised its process to (bench/task_memory.py
   is loaded into every worker).

    .venv/bin/python bench/first_sync.py [--bills 10000] [--floor-tasks N] [--json PATH]   (BENCH_FIRST_SYNC_BILLS too)
"""

from __future__ import annotations

import argparse
import json
import os
import re
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

from connector.domain.states import BillState  # noqa: E402
from connector.limits import TIME_LIMITS  # noqa: E402
from connector.store.models import Batch, Bill, BillTransition, DeliveryAttempt, Tenant  # noqa: E402
from sandbox.xero import XeroSandbox  # noqa: E402
from tests.support.celery_procs import CeleryProcess, start_celery, wait_until  # noqa: E402
from tests.support.pipeline import invoice_ids_in_files, onboard, worker_env  # noqa: E402
from tests.support.services import make_services  # noqa: E402
from tests.support.sshd import Sshd, SystemUser  # noqa: E402

QUEUES = ("poll", "map", "batch", "sftp")
TERMINAL = (BillState.DELIVERED, BillState.HELD, BillState.EXCLUDED)


def run(bills: int, floor_tasks: int | None = None) -> dict[str, Any]:
    floor_tasks = bills if floor_tasks is None else floor_tasks
    home = Path(tempfile.mkdtemp(prefix="bench-first-sync-"))
    home.chmod(0o755)  # sshd serves the import folder as an unprivileged user
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    broker = redis.Redis.from_url(REDIS_URL)
    broker.flushdb()
    with psycopg.connect(map_cost.PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    user = SystemUser.create()
    processes: list[CeleryProcess] = []
    started = time.perf_counter()
    sandbox = XeroSandbox(seed=42, tenants=1, bills=bills)
    sandbox.__enter__()
    sshd = Sshd(home / "sshd", user).start()
    services = make_services(map_cost.PG_URL, home, schema=schema)
    try:
        (home / "import").mkdir()
        folder = user.own(home / "import")
        tenant_id = onboard(services, sandbox, sshd.target(folder, auth="key"))
        with services.ledger.transaction() as session:  # not due until the workers are up
            session.execute(update(Tenant).values(next_poll_at=datetime.now(UTC) + timedelta(days=1)))
        setup_seconds = time.perf_counter() - started
        env = worker_env(services, f"{map_cost.PG_URL}?options=-csearch_path%3D{schema}", REDIS_URL, sandbox, home)
        for name in ("CONNECTOR_SWEEP_INTERVAL_SECONDS", "CONNECTOR_SWEEP_STALE_SECONDS"):
            env.pop(name)  # the operator's defaults, not the tests' impatient ones
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "bench")])
        env["BENCH_TASK_MEMORY_LOG"] = str(home / "logs" / "task-memory.log")  # which task set each peak
        for queue in QUEUES:
            extra = ("-I", "celery_empty,task_memory") if queue == "map" else ("-I", "task_memory")
            processes.append(start_celery("worker", env, home / "logs", *extra, queues=(queue,)))
        processes.append(start_celery("beat", env, home / "logs"))
        os.environ.update(env)  # the sending side's settings
        from workers.app import app

        time.sleep(5)  # the workers connect and their pools start
        started = time.perf_counter()
        for n in range(floor_tasks):
            app.send_task("bench.empty", args=[tenant_id, str(n), 1], queue="map")
        wait_until(lambda: int(broker.get("bench:empty:done") or 0) >= floor_tasks, 3600, "the empty tasks",
                   tuple(processes))
        floor_seconds = time.perf_counter() - started

        in_xero = len(sandbox.dataset.tenant(tenant_id).bills)

        def settled() -> bool:
            """Every bill of the tenant stored, and none still moving: a long poll reads pages more slowly than
            the workers map them, so the ledger is briefly still between two pages (at 100,000 bills it was
            once taken for the end after 18,000)."""
            with services.ledger.transaction() as session:
                moving = session.scalar(select(func.count()).select_from(Bill).where(Bill.state.not_in(TERMINAL)))
                staged = session.scalar(select(func.count()).select_from(Batch).where(Batch.delivered_at.is_(None)))
                seen = session.scalar(select(func.count()).select_from(Bill).where(Bill.document_type == "BILL"))
            return bool(seen) and seen >= in_xero and moving == 0 and staged == 0

        with services.ledger.transaction() as session:
            first_poll_at = datetime.now(UTC)
            session.execute(update(Tenant).values(next_poll_at=first_poll_at))
        wait_until(settled, 3600, "the first sync to settle", tuple(processes))
        with services.ledger.transaction() as session:
            last_commit = session.scalar(select(func.max(Batch.delivered_at)))
            files = int(session.scalar(select(func.count()).select_from(Batch)) or 0)
            counts = session.execute(select(Bill.state, func.count()).group_by(Bill.state)).all()
        by_state = {str(state): int(n) for state, n in counts}
        assert last_commit is not None
        sync_seconds = (last_commit.replace(tzinfo=UTC) - first_poll_at).total_seconds()
        delivered = len(invoice_ids_in_files(folder))
        timeline = _timeline(services, first_poll_at, home / "logs")
        rss = {p.role: peak_rss_mib(p.process.pid) for p in processes}
        peaks_by_task = _peaks_by_task(home / "logs" / "task-memory.log")
        calls = sum(sum(c.values()) for name, c in sandbox.stats()["calls_by_endpoint"].items() if "/api.xro/" in name)
    finally:
        for process in processes:
            process.stop()
        services.close()
        sshd.stop()
        user.delete()
        sandbox.__exit__(None, None, None)
        if os.environ.get("BENCH_KEEP_SCHEMA"):  # the ledger and the workers' logs left behind, to be read by hand
            print(f"ledger kept in schema {schema}, logs in {home / 'logs'}", file=sys.stderr)
        else:
            with psycopg.connect(map_cost.PG_URL, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
            shutil.rmtree(home, ignore_errors=True)
        broker.flushdb()
    return {"bills": bills, "setup_seconds": setup_seconds, "first_sync_seconds": sync_seconds,
            "messaging_floor_seconds": floor_seconds, "floor_tasks": floor_tasks, "files": files,
            "bills_in_files": delivered,
            "bills_by_state": by_state, "xero_calls": calls, "peak_rss_mib": rss, "peaks_by_task": peaks_by_task,
            "max_worker_peak_rss_mib": max(v for k, v in rss.items() if k.startswith("worker")),
            "timeline": timeline}


TASK_LINE = re.compile(r"^\[(?P<at>[\d-]+ [\d:,]+): INFO/[^\]]*\] Task (?P<task>[\w.]+)\[(?P<id>[^\]]+)\] "
                       r"(?P<what>received|succeeded in (?P<took>[\d.]+)s)")


def _timeline(services: Any, start: datetime, logs: Path) -> list[str]:
    """What happened when, in seconds from the first poll: the poll and assemble tasks (from the workers'
    logs), the first and last bill discovered and mapped (the ledger's audit rows), how many bills were
    mapped by each tenth of the mapping, and each file's making, first delivery attempt and commit; last, per
    kind of task, how many ran and the longest, beside its time limit."""

    def at(moment: datetime | None) -> str:
        return "    -" if moment is None else f"{(moment.replace(tzinfo=UTC) - start).total_seconds():6.1f}"

    lines: list[str] = []
    longest: dict[str, tuple[int, float]] = {}  # task -> (how many ran, the longest run)
    for log in sorted(logs.glob("worker-*.log")):
        received: dict[str, datetime] = {}
        for line in log.read_text(errors="replace").splitlines():
            found = TASK_LINE.match(line)
            if found is None or found["task"] == "bench.empty":
                continue
            moment = datetime.strptime(found["at"], "%Y-%m-%d %H:%M:%S,%f").astimezone(UTC)
            if found["took"] is None:
                received[found["id"]] = moment
            elif moment >= start:
                took = float(found["took"])
                runs, most = longest.get(found["task"], (0, 0.0))
                longest[found["task"]] = (runs + 1, max(most, took))
                if found["task"] != "connector.map_invoice":
                    began = received.get(found["id"])
                    lines.append(f"{at(began)} .. {at(moment)}  {found['task']} ({took:.1f} s)")
    from workers.app import ROUTES  # the sending side's settings are in the environment by now

    summary = [f"{task}: {runs:,} runs, the longest {most:.1f} s (time limit {TIME_LIMITS[ROUTES[task]]} s)"
               for task, (runs, most) in sorted(longest.items()) if task in ROUTES]
    with services.ledger.transaction() as session:
        moves = select(func.min(BillTransition.at), func.max(BillTransition.at), func.count())
        for label, condition in (("bills discovered", BillTransition.to_state == BillState.DISCOVERED),
                                 ("bills mapped", BillTransition.from_state == BillState.DISCOVERED)):
            first, last, n = session.execute(moves.where(condition)).one()
            lines.append(f"{at(first)} .. {at(last)}  {label} ({n:,})")
        mapped = list(session.scalars(select(BillTransition.at).where(
            BillTransition.from_state == BillState.DISCOVERED).order_by(BillTransition.at)))
        if mapped:
            tenths = [at(mapped[min(len(mapped) - 1, len(mapped) * k // 10)]).strip() for k in range(1, 11)]
            lines.append(f"         each tenth of the bills mapped by: {' '.join(tenths)} s")
        attempts = dict(session.execute(select(DeliveryAttempt.batch_id, func.min(DeliveryAttempt.started_at))
                                        .group_by(DeliveryAttempt.batch_id)).all())
        for batch in session.execute(select(Batch.id, Batch.kind, Batch.bill_count, Batch.created_at,
                                            Batch.delivered_at).order_by(Batch.sequence)):
            lines.append(f"{at(batch.created_at)} .. {at(batch.delivered_at)}  file {batch.id} {batch.kind} "
                         f"({batch.bill_count}): made, first delivery attempt at {at(attempts.get(batch.id)).strip()}")
    return [*sorted(lines), *summary]


def _peaks_by_task(log: Path) -> list[str]:
    """The lines of bench/task_memory.py: each task that raised its process's peak, in order."""
    return log.read_text().splitlines() if log.exists() else []


def _stop(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bills", type=int, default=int(os.environ.get("BENCH_FIRST_SYNC_BILLS", "10000")))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--floor-tasks", type=int, help="empty tasks for the messaging floor (default: one a bill)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _stop)  # a timeout or ^C still stops the workers, sshd and the schema
    load = os.getloadavg()
    result = run(args.bills, args.floor_tasks)
    floor = f" --floor-tasks {args.floor_tasks}" if args.floor_tasks else ""
    print(f"First sync end to end through real workers, {result['bills']:,} bills (command: .venv/bin/python "
          f"bench/first_sync.py --bills {args.bills}{floor}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})")
    print(f"  first poll to last file committed {result['first_sync_seconds']:>8,.1f} s "
          f"({result['files']} files, {result['bills_in_files']:,} bills in them, {result['xero_calls']} Xero calls)")
    print(f"  messaging floor ({result['floor_tasks']:,} empty tasks) {result['messaging_floor_seconds']:>8,.1f} s "
          f"({result['first_sync_seconds'] / result['messaging_floor_seconds']:.1f}x the floor; goal 30 s at 10,000)")
    for role, mib in result["peak_rss_mib"].items():
        print(f"  peak RSS {role:<25}{mib:>8,.0f} MiB")
    print("  the highest peak each kind of task raised its process to (bench/task_memory.py):")
    highest: dict[str, str] = {}
    for line in result["peaks_by_task"]:
        task, mib = line.split()[0], float(line.split(" -> ")[1].split()[0])
        if task not in highest or mib > float(highest[task].split(" -> ")[1].split()[0]):
            highest[task] = line
    for line in highest.values():
        print(f"    {line}")
    print("  timeline (s from the first poll):")
    for line in result["timeline"]:
        print(f"    {line}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
