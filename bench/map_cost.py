"""Cost of mapping one bill against the size of its tenant: a small tenant and a large one, same run.

Polls a sandbox tenant of `--small` bills and one of `--large` bills into a PostgreSQL ledger (a fresh
schema), then maps `--sample` DISCOVERED bills of each in-process and times map_invoice per bill. The
small tenant is the baseline: the ratio large / small should stay near 1 (the cost of one bill never
depends on how many bills the tenant has). `--profile` prints cProfile's top entries for the large tenant
(BENCH_PROFILE_SORT=tottime and BENCH_PROFILE_FILTER=<regex> change the order and the filter).

    .venv/bin/python bench/map_cost.py [--small 1000] [--large 10000] [--sample 500] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

from connector.crypto import Vault
from connector.onboarding import add_grant, add_tenant
from connector.secret import Secret
from connector.services import map as mapping
from connector.services import poll
from connector.services.context import Services, build_services
from connector.services.mappings import import_mapping_set
from connector.services.messages import MapInvoice, Message
from connector.settings import load_settings, xero_url_environment
from sandbox.demo import demo_mapping_set
from sandbox.xero import XeroSandbox

PG_URL = os.environ.get("CONNECTOR_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def polled(bills: int, schema: str, home: Path) -> tuple[Services, list[MapInvoice], XeroSandbox]:
    """A tenant of `bills` bills polled into the ledger; its map messages, not yet run."""
    sandbox = XeroSandbox(seed=42, tenants=1, bills=bills)
    sandbox.__enter__()
    tenant_id = sandbox.tenant_ids[0]
    consent = sandbox.consent()
    settings = load_settings({
        "CONNECTOR_DATABASE_URL": PG_URL, "CONNECTOR_FERNET_KEYS": Vault.new_key(),
        **xero_url_environment(sandbox.urls), "CONNECTOR_STAGING_DIR": str(home / "staging")})
    services = build_services(settings, schema=schema)
    grant = add_grant(services.ledger, services.vault, client_id=consent["client_id"],
                      client_secret=Secret(consent["client_secret"]), refresh_token=Secret(consent["refresh_token"]))
    add_tenant(services.ledger, tenant_id=tenant_id, name="bench", short_name="bench", grant_id=grant,
               sftp_target_id=None)
    import_mapping_set(services.ledger, tenant_id, demo_mapping_set(sandbox.dataset.tenant(tenant_id)), actor="bench")
    sent: list[Message] = []
    calls_before = _pages(sandbox)
    started = time.perf_counter()
    poll.poll_tenant(services, tenant_id, emit=sent.append)
    LAST_POLL.update(seconds=time.perf_counter() - started, pages=_pages(sandbox) - calls_before)
    return services, [m for m in sent if isinstance(m, MapInvoice)], sandbox


LAST_POLL: dict[str, float] = {}  # the last poll of polled(): its wall time and its pages of bills and POs


def _pages(sandbox: XeroSandbox) -> int:
    calls = sandbox.stats()["calls_by_endpoint"]
    return sum(sum(calls.get(f"GET /api.xro/2.0/{endpoint}", {}).values())
               for endpoint in ("Invoices", "PurchaseOrders"))


def time_mapping(services: Services, messages: list[MapInvoice]) -> list[float]:
    seconds = []
    for m in messages:
        started = time.perf_counter()
        mapping.map_invoice(services, m.tenant_id, m.invoice_id, m.version)
        seconds.append(time.perf_counter() - started)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--large", type=int, default=10_000)
    parser.add_argument("--sample", type=int, default=500)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-map-cost-"))
    schemas = [f"bench_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    results: dict[str, Any] = {}
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        for schema in schemas:
            conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        for label, size, schema in (("small", args.small, schemas[0]), ("large", args.large, schemas[1])):
            services, messages, sandbox = polled(size, schema, home / label)
            sample = messages[-args.sample:]  # the last bills: every earlier one still DISCOVERED
            if label == "large" and args.profile:
                profiler = cProfile.Profile()
                profiler.enable()
                seconds = time_mapping(services, sample)
                profiler.disable()
                stats = pstats.Stats(profiler).sort_stats(os.environ.get("BENCH_PROFILE_SORT", "cumulative"))
                stats.print_stats(os.environ.get("BENCH_PROFILE_FILTER", "connector|psycopg.*(execute|commit)"), 40)
            else:
                seconds = time_mapping(services, sample)
            results[label] = (size, statistics.median(seconds))
            services.close()
            sandbox.__exit__(None, None, None)
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            for schema in schemas:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    (small_n, small_s), (large_n, large_s) = results["small"], results["large"]
    print(f"Mapping one bill against its tenant's size (command: .venv/bin/python bench/map_cost.py "
          f"--small {args.small} --large {args.large} --sample {args.sample})")
    print(f"  tenant of {small_n:>7,} bills: median {small_s * 1000:7.2f} ms a bill (baseline)")
    print(f"  tenant of {large_n:>7,} bills: median {large_s * 1000:7.2f} ms a bill "
          f"({large_s / small_s:.2f}x the baseline; goal: about 1x)")


if __name__ == "__main__":
    main()
