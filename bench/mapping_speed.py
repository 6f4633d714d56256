"""Mapping speed: bills per second through the pure core (parse + map), on one core.

Takes 10,000 sandbox bills as Xero's JSON (read once over HTTP), builds the tenant's mapping context, then
times parse_bill + map_bill over every bill. The baseline, measured in the same run over the same bills,
is json.dumps of each bill: a fixed amount of Python work, so the ratio stays comparable on a busy machine.
Goal: at least 20,000 bills a second.

    .venv/bin/python bench/mapping_speed.py [--bills 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import time
from decimal import Decimal
from typing import Any

import requests

from connector.domain.mapping import MappingContext, map_bill
from connector.domain.po_numbers import po_key
from connector.domain.records import Account, PurchaseOrder, Vendor, parse_bill
from sandbox.demo import demo_mapping_set
from sandbox.xero import XeroSandbox


def fetch_bills(sandbox: XeroSandbox, tenant_id: str) -> list[dict[str, Any]]:
    consent = sandbox.consent()
    token = requests.post(consent["urls"]["token"], timeout=30, auth=(consent["client_id"], consent["client_secret"]),
                          data={"grant_type": "refresh_token", "refresh_token": consent["refresh_token"]}).json()
    headers = {"Authorization": f"Bearer {token['access_token']}", "xero-tenant-id": tenant_id,
               "Accept": "application/json"}
    bills: list[dict[str, Any]] = []
    page = 1
    while True:
        body = requests.get(f"{consent['urls']['api']}/Invoices", headers=headers, timeout=60,
                            params={"page": page, "pageSize": 1000, "where": 'Type=="ACCPAY"'}).json()
        bills += body["Invoices"]
        if len(body["Invoices"]) < 1000:
            return bills
        page += 1


def context_for(sandbox: XeroSandbox, tenant_id: str) -> MappingContext:
    tenant = sandbox.dataset.tenant(tenant_id)
    data = demo_mapping_set(tenant)
    orders: dict[str, list[PurchaseOrder]] = {}
    for po in tenant.purchase_orders:
        key = po_key(po.number)
        if key:
            orders.setdefault(key, []).append(PurchaseOrder(po.purchase_order_id, po.number, po.contact_id, po.status,
                                                            Decimal(po.total), po.currency_code))
    return MappingContext(
        rules=data.rules(), maps=data.maps(), version=1,
        vendors={c.contact_id: Vendor(c.contact_id, c.name, c.status, c.is_supplier, c.merged_to, c.tax_number)
                 for c in tenant.contacts},
        accounts={a.code: Account(a.code, a.status) for a in tenant.accounts},
        purchase_orders=orders,
    )


def best_of(repeat: int, work: Any) -> float:
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        timings.append(time.perf_counter() - started)
    return min(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bills", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with XeroSandbox(seed=42, tenants=1, bills=args.bills) as sandbox:
        tenant_id = sandbox.tenant_ids[0]
        payloads = fetch_bills(sandbox, tenant_id)
        context = context_for(sandbox, tenant_id)

    def mapping() -> None:
        for payload in payloads:
            map_bill(parse_bill(payload, tenant_id=tenant_id), context)

    def baseline() -> None:
        for payload in payloads:
            json.dumps(payload)

    mapped = best_of(args.repeat, mapping)
    reference = best_of(args.repeat, baseline)
    count = len(payloads)
    print(f"Mapping {count:,} bills (command: .venv/bin/python bench/mapping_speed.py --bills {args.bills})")
    print(f"  parse + map         {count / mapped:>10,.0f} bills/s   ({mapped * 1e6 / count:.1f} µs a bill)")
    print(f"  baseline json.dumps {count / reference:>10,.0f} bills/s   ({reference * 1e6 / count:.1f} µs a bill)")
    print(f"  mapping costs {mapped / reference:.1f}x the baseline; goal 20,000 bills/s: "
          f"{'met' if count / mapped >= 20_000 else 'NOT met'}")


if __name__ == "__main__":
    main()
