"""The webhook receiver under load: signed requests per second and latency, from a second process.

Starts `connector webhooks serve` (gunicorn) on loopback over a fresh PostgreSQL schema (SQLite when
PostgreSQL does not answer) with one known tenant, then a load process posts distinct, correctly signed
Xero payloads over keep-alive connections. The baseline, in the same run, is the same load wrongly
signed: the receiver refuses it before any database work, so the ratio says what the inbox costs on
top of HTTP and the signature check. Prints numbers only; asserts nothing.

    .venv/bin/python bench/webhook_receiver.py [--requests 20000] [--connections 16] [--workers 4]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

KEY = "bench-webhook-key-" + "b" * 70
TENANT = "7c0a8b2e-0b6e-4c55-9a3b-1f3f3b1c0001"
TARGET_RATE = 1000  # signed requests per second on a 2-CPU machine, far above what Xero sends
PG_URL = os.environ.get("CONNECTOR_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def payload(n: int) -> bytes:
    return json.dumps({"events": [{
        "resourceUrl": f"https://api.xero.com/api.xro/2.0/Invoices/{uuid.UUID(int=n)}",
        "resourceId": str(uuid.UUID(int=n)), "eventDateUtc": "2026-11-29T10:00:00.000", "eventType": "UPDATE",
        "eventCategory": "INVOICE", "tenantId": TENANT, "tenantType": "ORGANISATION"}],
        "firstEventSequence": n + 1, "lastEventSequence": n + 1, "entropy": uuid.uuid4().hex[:20].upper()},
        separators=(",", ":")).encode()


def load(port: int, total: int, connections: int, signed: bool) -> None:
    """The load process: prints one JSON line {seconds, latencies_ms, statuses}."""
    from connector.domain.webhooks import sign

    bodies = [payload(n) for n in range(total)]
    signatures = [sign(b, KEY if signed else KEY + "x") for b in bodies]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    counter = iter(range(total))

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        mine: list[float] = []
        seen: dict[int, int] = {}
        for n in counter:
            start = time.perf_counter()
            conn.request("POST", "/webhooks/xero", body=bodies[n], headers={
                "Content-Type": "application/json", "x-xero-signature": signatures[n]})
            response = conn.getresponse()
            response.read()
            mine.append((time.perf_counter() - start) * 1000)
            seen[response.status] = seen.get(response.status, 0) + 1
        conn.close()
        with lock:
            latencies.extend(mine)
            for status, count in seen.items():
                statuses[status] = statuses.get(status, 0) + count

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps({"seconds": time.perf_counter() - started, "latencies_ms": latencies, "statuses": statuses}))


def run_load(port: int, total: int, connections: int, signed: bool) -> dict[str, object]:
    out = subprocess.run([sys.executable, __file__, "--load-port", str(port), "--requests", str(total),
                          "--connections", str(connections), *(["--signed"] if signed else [])],
                         capture_output=True, text=True, check=True)
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def database(tmp: Path) -> tuple[str, str | None]:
    try:
        import psycopg

        schema = f"bench_webhooks_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        return f"{PG_URL}?options=-csearch_path%3D{schema}", schema
    except Exception:
        return f"sqlite:///{tmp / 'ledger.db'}", None


def seed_tenant(url: str) -> None:
    from connector.onboarding import add_grant, add_tenant
    from connector.secret import Secret
    from connector.store.db import Ledger

    ledger = Ledger.connect(url)
    from connector.crypto import Vault
    grant = add_grant(ledger, Vault((Secret(Vault.new_key()),)), client_id="bench", client_secret=Secret("s"),
                      refresh_token=Secret("r"))
    add_tenant(ledger, tenant_id=TENANT, name="Bench", short_name="bench", grant_id=grant, sftp_target_id=None)
    ledger.dispose()


def summary(label: str, result: dict[str, object]) -> tuple[float, float]:
    latencies = sorted(result["latencies_ms"])  # type: ignore[call-overload]
    rate = len(latencies) / float(result["seconds"])  # type: ignore[arg-type]
    p50 = statistics.median(latencies)
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    print(f"{label:<34} {rate:>9,.0f} req/s   p50 {p50:6.2f} ms   p99 {p99:6.2f} ms   statuses {result['statuses']}")
    return rate, p99


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--load-port", type=int)
    parser.add_argument("--signed", action="store_true")
    args = parser.parse_args()
    if args.load_port:
        load(args.load_port, args.requests, args.connections, args.signed)
        return

    from connector.crypto import Vault

    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        url, schema = database(tmp)
        seed_tenant(url)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        env = {**os.environ, "CONNECTOR_DATABASE_URL": url, "CONNECTOR_FERNET_KEYS": Vault.new_key(),
               "CONNECTOR_BROKER_URL": "filesystem://", "CONNECTOR_BROKER_DIR": str(tmp / "broker"),
               "CONNECTOR_XERO_WEBHOOK_KEY": KEY, "CONNECTOR_LOG_LEVEL": "WARNING"}
        server = subprocess.Popen([sys.executable, "-m", "connector.webhooks", "serve", "--bind", f"127.0.0.1:{port}",
                                   "--workers", str(args.workers)], env=env, start_new_session=True,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(200):
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        break
                except OSError:
                    time.sleep(0.1)
            run_load(port, 500, args.connections, signed=True)  # warm-up: every worker builds its receiver
            print(f"webhook receiver: gunicorn {args.workers} workers x 8 threads, {args.connections} keep-alive "
                  f"connections from a second process, {args.requests:,} requests, "
                  f"{'PostgreSQL' if schema else 'SQLite'}")
            base_rate, _ = summary("wrongly signed (401, baseline)", run_load(port, args.requests, args.connections,
                                                                           signed=False))
            rate, _ = summary("signed (200, inbox + wake plan)", run_load(port, args.requests, args.connections,
                                                                        signed=True))
            print(f"signed / baseline throughput: {rate / base_rate:.2f}")
            print(f"target, {TARGET_RATE:,} signed requests/s: {'met' if rate >= TARGET_RATE else 'NOT met'}"
                  " (p99 above is at saturation: every connection sends its next request at once)")
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
            if schema:
                import psycopg
                with psycopg.connect(PG_URL, autocommit=True) as conn:
                    conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    main()
