"""Xero sandbox speed: seeding, and serving pages of bills over loopback HTTP.

Seeds one tenant with `--bills` bills (default 10,000), then times, over real HTTP: a 1,000-bill page
with line items (first read encodes and caches the records, later reads reuse them), an unpaged list of
every invoice, a `where` filter over all of them, and a small call. Prints numbers only; asserts nothing.

    .venv/bin/python bench/sandbox_speed.py [--bills 10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import requests

from sandbox.xero import XeroSandbox
from sandbox.xero.dataset import build_dataset


def timed(action: Callable[[], object], repeat: int) -> list[float]:
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        seconds.append(time.perf_counter() - started)
    return seconds


def show(label: str, seconds: list[float], extra: str = "") -> None:
    print(f"{label:<44} first {seconds[0] * 1000:8.1f} ms   median {statistics.median(seconds) * 1000:8.1f} ms"
          f"   {extra}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--bills", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    started = time.perf_counter()
    dataset = build_dataset(42, 1, args.bills)
    tenant = dataset.tenants[0]
    print(f"seed {args.bills:,} bills (1 tenant): {time.perf_counter() - started:.2f} s "
          f"({len(tenant.invoices):,} invoices, {len(tenant.purchase_orders):,} purchase orders, "
          f"{len(tenant.contacts)} contacts)")

    started = time.perf_counter()
    sandbox = XeroSandbox(seed=42, tenants=1, bills=args.bills, time_scale=1.0)
    print(f"XeroSandbox(...) including the seed:         {time.perf_counter() - started:.2f} s")
    with sandbox:
        sandbox.set_limits(minute=1_000_000, day=1_000_000, app_minute=1_000_000)
        consent = sandbox.consent()
        session = requests.Session()
        token = session.post(consent["urls"]["token"], auth=(consent["client_id"], consent["client_secret"]),
                             data={"grant_type": "refresh_token", "refresh_token": consent["refresh_token"]},
                             timeout=30).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}", "xero-tenant-id": consent["tenant_ids"][0]}
        api = consent["urls"]["api"]

        def get(endpoint: str, **params: object) -> requests.Response:
            answer = session.get(f"{api}/{endpoint}", params=params, headers=headers, timeout=60)
            answer.raise_for_status()
            return answer

        size = len(get("Invoices", page=2, pageSize=1000).content)
        show("1,000-bill page with lines (page 2)", timed(lambda: get("Invoices", page=3, pageSize=1000),
                                                          args.repeat), f"{size / 1e6:.1f} MB")
        show("1,000-bill page, where Type==ACCPAY", timed(
            lambda: get("Invoices", page=1, pageSize=1000, where='Type=="ACCPAY" AND Status=="AUTHORISED"'),
            args.repeat))
        show("unpaged list of every invoice", timed(lambda: get("Invoices"), args.repeat),
             f"{len(tenant.invoices):,} records")
        show("If-Modified-Since + order, 1,000 page", timed(
            lambda: session.get(f"{api}/Invoices", params={"page": 1, "pageSize": 1000,
                                                           "order": "UpdatedDateUTC ASC"},
                                headers={**headers, "If-Modified-Since": "2026-03-01T00:00:00"}, timeout=60),
            args.repeat))
        show("Organisation (a small call)", timed(lambda: get("Organisation"), max(args.repeat, 50)))
        print(f"stats: {sandbox.stats()['records_served_total']:,} records served")
        session.close()


if __name__ == "__main__":
    main()
