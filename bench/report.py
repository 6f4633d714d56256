"""`make bench`: the performance figures of one run in one table, each beside a baseline of the same run,
and the same figures as JSON under bench/results/.

- Xero calls for a first sync, an idle cycle and a 5 % delta, beside a naive extractor (bench/xero_calls.py),
  and the same cycles with every master-data kind on beside off (they must be equal);
- mapping one bill in a large tenant beside a small one (bench/map_cost.py): the cost of a bill must not
  depend on the tenant's size;
- map throughput through a real worker beside the empty-task ceiling of the same Celery set-up, the
  messaging floor of a first sync (bills / ceiling) and the worker's peak RSS (bench/map_throughput.py).

    .venv/bin/python bench/report.py [--bills 10000] [--small 1000] [--sample 300]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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


def _load(values: tuple[float, float, float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bills", type=int, default=10_000)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--sample", type=int, default=300)
    args = parser.parse_args()
    command = (f".venv/bin/python bench/report.py --bills {args.bills} --small {args.small} "
               f"--sample {args.sample}")
    started = time.perf_counter()
    load_before = os.getloadavg()
    calls = xero_calls.measure(args.bills)
    master_data = xero_calls.measure_master_data(args.bills)
    small_ms, large_ms = map_cost_figures(args.small, args.bills, args.sample)
    throughput = map_throughput.run(args.bills)
    floor = throughput["bills"] / throughput["empty_tasks_per_second"]
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
        "map_cost_ms": {"small_tenant": small_ms, "large_tenant": large_ms, "small_bills": args.small},
        "map_throughput": throughput, "messaging_floor_seconds": floor,
        "not_measured": ["first sync end to end with batch and SFTP delivery", "peak RSS at 100,000 bills",
                         "tenants per cycle"],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"bench-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"written: {path.relative_to(RESULTS.parent.parent)}")


if __name__ == "__main__":
    main()
