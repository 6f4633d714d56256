"""`make bench`: the performance figures of one run in one table, each beside a baseline of the same run,
and the same figures as JSON under bench/results/.

- Xero calls for a first sync, an idle cycle and a 5 % delta, beside a naive extractor (bench/xero_calls.py),
  and the same cycles with every master-data kind on beside off (they must be equal);
- mapping one bill in a large tenant beside a small one (bench/map_cost.py): the cost of a bill must not
  depend on the tenant's size;
- map throughput through a real worker beside the empty-task ceiling of the same Celery set-up, the
  messaging floor of a first sync (bills / ceiling) and the worker's peak RSS (bench/map_throughput.py);
- a first sync end to end through one worker per queue, beat and an OpenSSH sshd, first poll to the last
  file committed, beside the messaging floor of the same run (bench/first_sync.py --bills
  `--first-sync-bills`), and every worker's peak RSS in a first sync of `--rss-bills` bills (0 leaves it out);
- idle tenants polled per second through real workers, extrapolated to a 15-minute cycle
  (bench/tenants_per_cycle.py --tenants `--tenants`; 0 leaves it out);
- Xero calls for a first sync, an idle cycle and a delta with the suppliers' documents on beside off
  (bench/attachment_calls.py --bills `--attachment-bills`, short by default; 0 leaves it out).

    .venv/bin/python bench/report.py [--bills 3000] [--small 500] [--sample 200] [--first-sync-bills 1000]
        [--rss-bills 3000] [--tenants 200] [--attachment-bills 300]
    (BENCH_BILLS, BENCH_FIRST_SYNC_BILLS, BENCH_RSS_BILLS, BENCH_TENANTS and BENCH_ATTACHMENT_BILLS set the
    defaults of --bills and the last four)

The defaults finish in minutes on a small machine; the goals' sizes take hours there:
    BENCH_BILLS=10000 BENCH_FIRST_SYNC_BILLS=10000 BENCH_RSS_BILLS=100000 BENCH_TENANTS=10000 make bench
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attachment_calls
import map_throughput
import xero_calls

RESULTS = Path(__file__).resolve().parent / "results"


def map_cost_figures(small: int, large: int, sample: int) -> tuple[float, float]:
    """Median ms a bill in a small and a large tenant, from bench/map_cost.py's printed lines."""
    output = subprocess.run([sys.executable, str(Path(__file__).parent / "map_cost.py"), "--small", str(small),
                             "--large", str(large), "--sample", str(sample)], check=True, capture_output=True,
                            text=True).stdout
    medians = [float(line.split("median")[1].split("ms")[0]) for line in output.splitlines() if "median" in line]
    return medians[0], medians[1]


def script_json(script: str, *args: str) -> dict[str, Any]:
    """Run a bench script in its own process (it sets up its own workers and environment); its --json."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "result.json"
        subprocess.run([sys.executable, str(Path(__file__).parent / script), *args, "--json", str(out)], check=True)
        result: dict[str, Any] = json.loads(out.read_text())
        return result


def _load(values: tuple[float, float, float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bills", type=int, default=int(os.environ.get("BENCH_BILLS", 3_000)))
    parser.add_argument("--small", type=int, default=500)
    parser.add_argument("--sample", type=int, default=200)
    parser.add_argument("--first-sync-bills", type=int, default=int(os.environ.get("BENCH_FIRST_SYNC_BILLS", 1_000)))
    parser.add_argument("--rss-bills", type=int, default=int(os.environ.get("BENCH_RSS_BILLS", 3_000)))
    parser.add_argument("--tenants", type=int, default=int(os.environ.get("BENCH_TENANTS", 200)))
    parser.add_argument("--attachment-bills", type=int, default=int(os.environ.get("BENCH_ATTACHMENT_BILLS", 300)))
    args = parser.parse_args()
    command = (f".venv/bin/python bench/report.py --bills {args.bills} --small {args.small} "
               f"--sample {args.sample} --first-sync-bills {args.first_sync_bills} --rss-bills {args.rss_bills} "
               f"--tenants {args.tenants} --attachment-bills {args.attachment_bills}")
    started = time.perf_counter()
    load_before = os.getloadavg()
    calls = xero_calls.measure(args.bills)
    master_data = xero_calls.measure_master_data(args.bills)
    small_ms, large_ms = map_cost_figures(args.small, args.bills, args.sample)
    throughput = map_throughput.run(args.bills)
    floor = throughput["bills"] / throughput["empty_tasks_per_second"]
    first_sync = script_json("first_sync.py", "--bills", str(args.first_sync_bills)) if args.first_sync_bills else None
    rss_run = script_json("first_sync.py", "--bills", str(args.rss_bills)) if args.rss_bills else None
    tenants = script_json("tenants_per_cycle.py", "--tenants", str(args.tenants)) if args.tenants else None
    documents = attachment_calls.measure(args.attachment_bills) if args.attachment_bills else []
    rows: list[tuple[str, str, str, str]] = [
        (f"Xero calls: {label}", str(ours), f"{theirs} (naive, {limited} 429s)", f"{theirs / max(ours, 1):.1f}x fewer")
        for label, ours, theirs, limited in calls
    ]
    rows += [
        (f"Xero calls, master data on: {label}", str(on), f"{off} (master data off)",
         "same" if on == off else f"{on - off:+d} calls")
        for label, on, off, _records in master_data
    ]
    rows += [
        (f"Xero calls, documents on: {label}", str(sum(on)),
         f"{sum(off)} (off; on: {on[1]} lists, {on[2]} files)",
         "same" if sum(on) == sum(off) else f"{sum(on) - sum(off):+d} calls")
        for label, on, off, _mapped in documents
    ]
    rows += [
        (f"map one bill, tenant of {args.bills:,}", f"{large_ms:.2f} ms",
         f"{small_ms:.2f} ms (tenant of {args.small:,})", f"{large_ms / small_ms:.2f}x"),
        ("map through a worker (c=2)", f"{throughput['map_bills_per_second']:,.0f} bills/s",
         f"{throughput['empty_tasks_per_second']:,.0f} empty tasks/s",
         f"{throughput['map_bills_per_second'] / throughput['empty_tasks_per_second']:.2f} of ceiling"),
        (f"mapping {throughput['bills']:,} bills", f"{throughput['map_seconds']:.1f} s",
         f"{floor:.1f} s messaging floor", f"{throughput['map_seconds'] / floor:.1f}x the floor"),
        (f"poll alone, {throughput['poll_pages']} pages of bills and POs (in process)",
         f"{throughput['poll_seconds']:.1f} s", f"{throughput['poll_seconds'] / throughput['poll_pages']:.2f} s a page",
         ""),
        ("sandbox seed + onboarding + poll (in process)", f"{throughput['seed_and_poll_seconds']:.1f} s", "", ""),
        ("map worker peak RSS", f"{throughput['map_worker_peak_rss_mib']:.0f} MiB", "", ""),
    ]
    if first_sync:
        seconds, floor_seconds = first_sync["first_sync_seconds"], first_sync["messaging_floor_seconds"]
        rows.append((f"first sync of {first_sync['bills']:,}, first poll to last file on SFTP", f"{seconds:.1f} s",
                     f"{floor_seconds:.1f} s messaging floor", f"{seconds / floor_seconds:.1f}x the floor"))
    if rss_run:
        rows += [(f"peak RSS, {role}, first sync of {rss_run['bills']:,}", f"{mib:.0f} MiB", "", "")
                 for role, mib in rss_run["peak_rss_mib"].items()]
    if tenants:
        rows += [
            (f"idle cycle, {tenants['tenants']:,} tenants through the poll worker",
             f"{tenants['idle_cycle_seconds']:.1f} s", f"{tenants['idle_calls_per_tenant']:.2f} Xero calls a tenant",
             f"{tenants['idle_tenants_per_second']:.1f} tenants/s"),
            ("idle tenants per 15-minute cycle (rate x 900 s, extrapolated)",
             f"{tenants['tenants_per_15_min_cycle_extrapolated']:,.0f}", "goal 10,000", ""),
        ]
    load_after = os.getloadavg()
    print(f"Performance, {args.bills:,} bills, one run (command: {command}; make bench)")
    print(f"load average (1, 5, 15 min): {_load(load_before)} before, {_load(load_after)} after "
          f"on {os.cpu_count()} CPUs")
    print(f"{'figure':<62}{'ours':>16}  {'baseline (same run)':<34}{'ratio':>16}")
    for figure, ours, baseline, ratio in rows:
        print(f"{figure:<62}{ours:>16}  {baseline:<34}{ratio:>16}")
    result: dict[str, Any] = {
        "command": command, "at": datetime.now(UTC).isoformat(), "machine": platform.platform(),
        "bills": args.bills, "seconds": time.perf_counter() - started,
        "load_average_before": load_before, "load_average_after": load_after, "cpus": os.cpu_count(),
        "xero_calls": [{"cycle": label, "ours": ours, "naive": theirs, "naive_429s": limited}
                       for label, ours, theirs, limited in calls],
        "xero_calls_master_data": [{"cycle": label, "on": on, "off": off, "records_in_files": records}
                                   for label, on, off, records in master_data],
        "xero_calls_attachments": [{"cycle": label, "bills": args.attachment_bills, "on": {"reads": on[0],
                                    "lists": on[1], "files": on[2], "total": sum(on)}, "off": sum(off),
                                    "mapped": mapped} for label, on, off, mapped in documents],
        "map_cost_ms": {"small_tenant": small_ms, "large_tenant": large_ms, "small_bills": args.small},
        "map_throughput": throughput, "messaging_floor_seconds": floor,
        "first_sync": first_sync, "peak_rss_first_sync": rss_run, "tenants_per_cycle": tenants,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"bench-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"written: {path.relative_to(RESULTS.parent.parent)}")


if __name__ == "__main__":
    main()
