"""Wall time of one first poll of a sandbox tenant into a PostgreSQL ledger (a fresh schema), split into
the time the poll waited for Xero's answers (its HTTP requests, the sandbox's own time) and the poll's own
(everything else: parsing, checking, the ledger's statements), with the CPU time of the poll's thread
(less noisy on a loaded machine than wall time); with `--profile` where it goes (cProfile of
the poll alone; the sandbox answers from threads of this process, so its time shows as the poll waiting
on its socket).

    .venv/bin/python bench/poll_cost.py [--bills 10000] [--repeat 1] [--profile]
(BENCH_PROFILE_SORT=tottime and BENCH_PROFILE_FILTER=<regex> change the order and the filter.)
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psycopg
import requests

from connector.crypto import Vault
from connector.onboarding import add_grant, add_tenant
from connector.secret import Secret
from connector.services import poll
from connector.services.context import build_services
from connector.services.messages import Message
from connector.settings import load_settings, xero_url_environment
from sandbox.xero import XeroSandbox

PG_URL = os.environ.get("CONNECTOR_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


class XeroWait:
    """Seconds this thread spent in HTTP requests (to Xero: the sandbox's answers, read whole)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._thread = threading.get_ident()
        self._send = requests.Session.send

    def __enter__(self) -> XeroWait:
        send = self._send

        def timed(session: requests.Session, request: requests.PreparedRequest, **kwargs: object) -> object:
            if threading.get_ident() != self._thread:
                return send(session, request, **kwargs)
            started = time.perf_counter()
            try:
                return send(session, request, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started

        requests.Session.send = timed  # type: ignore[assignment,method-assign]
        return self

    def __exit__(self, *_: object) -> None:
        requests.Session.send = self._send  # type: ignore[method-assign]


def poll_once(bills: int, schema: str, home: Path,
              profiler: cProfile.Profile | None) -> tuple[float, float, float, int]:
    """Seconds of one first poll of a tenant of `bills` bills, of them waiting on Xero, the CPU seconds
    of the poll's thread, and the map messages it sent."""
    with XeroSandbox(seed=42, tenants=1, bills=bills) as sandbox:
        tenant_id = sandbox.tenant_ids[0]
        consent = sandbox.consent()
        settings = load_settings({
            "CONNECTOR_DATABASE_URL": PG_URL, "CONNECTOR_FERNET_KEYS": Vault.new_key(),
            **xero_url_environment(sandbox.urls), "CONNECTOR_STAGING_DIR": str(home / "staging")})
        services = build_services(settings, schema=schema)
        grant = add_grant(services.ledger, services.vault, client_id=consent["client_id"],
                          client_secret=Secret(consent["client_secret"]),
                          refresh_token=Secret(consent["refresh_token"]))
        add_tenant(services.ledger, tenant_id=tenant_id, name="bench", short_name="bench", grant_id=grant,
                   sftp_target_id=None)
        sent: list[Message] = []
        with XeroWait() as xero:
            started, cpu = time.perf_counter(), time.thread_time()
            if profiler is not None:
                profiler.enable()
            poll.poll_tenant(services, tenant_id, emit=sent.append)
            if profiler is not None:
                profiler.disable()
            seconds, cpu = time.perf_counter() - started, time.thread_time() - cpu
        services.close()
    return seconds, xero.seconds, cpu, len(sent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bills", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-poll-cost-"))
    for run in range(args.repeat):
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        profiler = cProfile.Profile() if args.profile else None
        try:
            seconds, xero, cpu, messages = poll_once(args.bills, schema, home / str(run), profiler)
        finally:
            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        print(f"poll of {args.bills:,} bills: {seconds:.2f} s = ours {seconds - xero:.2f} s + waiting on Xero "
              f"{xero:.2f} s; the poll's CPU {cpu:.2f} s ({messages} messages)", flush=True)
        if profiler is not None:
            stats = pstats.Stats(profiler).sort_stats(os.environ.get("BENCH_PROFILE_SORT", "cumulative"))
            stats.print_stats(os.environ.get("BENCH_PROFILE_FILTER", "connector|psycopg.*(execute|commit)"), 45)


if __name__ == "__main__":
    main()
