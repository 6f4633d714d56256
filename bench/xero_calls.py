"""Xero calls per cycle: the connector beside a naive extractor, against the same sandbox in one run.

The naive extractor is how tap-xero reads: every endpoint paged at Xero's default 100 with no type
filter (so sales invoices too), an If-Modified-Since bookmark, and sleeping out each 429. Calls are what
Xero rations (60 a minute, 5,000 a day per tenant), so they are the figure; the ratio is naive / ours.

    .venv/bin/python bench/xero_calls.py [--bills 10000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from connector.crypto import Vault
from connector.onboarding import add_grant, add_tenant
from connector.secret import Secret
from connector.services import poll
from connector.services.context import build_services
from connector.settings import load_settings
from connector.xero.dates import if_modified_since, parse_instant
from sandbox.xero import XeroSandbox

TIME_SCALE = 60.0  # a sandbox minute passes in one real second, so the naive run's 429 waits stay short


def api_calls(sandbox: XeroSandbox) -> tuple[int, int]:
    stats = sandbox.stats()
    calls = sum(sum(c.values()) for name, c in stats["calls_by_endpoint"].items() if "/api.xro/" in name)
    return calls, sum(stats["rate_limited"].values())


class NaiveExtractor:
    """Pages Invoices, PurchaseOrders and Contacts at 100 with a bookmark; waits out 429s."""

    def __init__(self, sandbox: XeroSandbox, tenant_id: str) -> None:
        self.consent = sandbox.consent([tenant_id])
        self.refresh_token = self.consent["refresh_token"]
        self.api = self.consent["urls"]["api"]
        self.headers = {"xero-tenant-id": tenant_id, "Accept": "application/json"}
        self.bookmarks: dict[str, str] = {}
        self.refresh()

    def refresh(self) -> None:
        """A new access token (the sandbox's clock runs fast, so tokens expire within a long run)."""
        token = requests.post(self.consent["urls"]["token"], timeout=30, data={
            "grant_type": "refresh_token", "refresh_token": self.refresh_token},
            auth=(self.consent["client_id"], self.consent["client_secret"])).json()
        self.refresh_token = token.get("refresh_token", self.refresh_token)
        self.headers["Authorization"] = f"Bearer {token['access_token']}"

    def cycle(self) -> None:
        for endpoint in ("Invoices", "PurchaseOrders", "Contacts"):
            page, newest = 1, self.bookmarks.get(endpoint)
            while True:
                headers = dict(self.headers)
                if endpoint in self.bookmarks:
                    headers["If-Modified-Since"] = self.bookmarks[endpoint]
                response = requests.get(f"{self.api}/{endpoint}", params={"page": page}, headers=headers, timeout=60)
                if response.status_code == 429:
                    time.sleep(float(response.headers.get("Retry-After", "1")) / TIME_SCALE + 0.05)
                    continue
                if response.status_code == 401:
                    self.refresh()
                    continue
                response.raise_for_status()
                records: list[dict[str, Any]] = response.json().get(endpoint, [])
                for record in records:
                    stamp = if_modified_since(parse_instant(str(record.get("UpdatedDateUTC"))))
                    newest = max(newest or "", stamp)
                if len(records) < 100:
                    break
                page += 1
            if newest:
                self.bookmarks[endpoint] = newest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bills", type=int, default=10_000)
    args = parser.parse_args()
    rows = measure(args.bills)
    command = f".venv/bin/python bench/xero_calls.py --bills {args.bills}"
    print(f"Xero API calls for {args.bills:,} bills (command: {command})")
    print(f"{'cycle':<52}{'ours':>6}{'naive':>8}{'naive 429s':>12}{'ratio':>8}")
    for label, ours, theirs, limited in rows:
        print(f"{label:<52}{ours:>6}{theirs:>8}{limited:>12}{theirs / max(ours, 1):>7.1f}x")
    print(f"{'cycle, master data on beside off':<52}{'on':>6}{'off':>8}{'records':>12}")
    for label, on, off, records in measure_master_data(args.bills):
        print(f"{label:<52}{on:>6}{off:>8}{records:>12}")


def measure(bills: int) -> list[tuple[str, int, int, int]]:
    """Per cycle (first sync, idle, delta): our calls, the naive extractor's calls and its 429s."""
    home = Path(tempfile.mkdtemp(prefix="bench-xero-"))
    with XeroSandbox(seed=42, tenants=1, bills=bills, time_scale=TIME_SCALE) as sandbox:
        tenant_id = sandbox.tenant_ids[0]
        consent = sandbox.consent()
        settings = load_settings({
            "CONNECTOR_DATABASE_URL": f"sqlite:///{home / 'ledger.db'}", "CONNECTOR_FERNET_KEYS": Vault.new_key(),
            "CONNECTOR_XERO_TOKEN_URL": consent["urls"]["token"], "CONNECTOR_XERO_API_URL": consent["urls"]["api"],
            "CONNECTOR_STAGING_DIR": str(home / "staging")})
        services = build_services(settings)
        grant = add_grant(services.ledger, services.vault, client_id=consent["client_id"],
                          client_secret=Secret(consent["client_secret"]),
                          refresh_token=Secret(consent["refresh_token"]))
        add_tenant(services.ledger, tenant_id=tenant_id, name="bench", short_name="bench", grant_id=grant,
                   sftp_target_id=None)
        naive = NaiveExtractor(sandbox, tenant_id)
        rows = []
        for label, before in (("first sync", None), ("idle cycle", None),
                              ("delta (5% modified, 1% added)", (bills // 20, bills // 100))):
            if before is not None:
                sandbox.update(tenant_id, modify=before[0], add=before[1])
            sandbox.advance(120)  # fresh rate-limit minute for each side
            start, _ = api_calls(sandbox)
            report = poll.poll_tenant(services, tenant_id, emit=lambda _: None)
            ours, _ = api_calls(sandbox)
            label = f"{label} [{report.bills_changed} new or changed]"
            sandbox.advance(120)
            start_naive, limited_before = api_calls(sandbox)
            naive.cycle()
            theirs, limited_after = api_calls(sandbox)
            rows.append((label, ours - start, theirs - start_naive, limited_after - limited_before))
        services.close()
    return rows


def measure_master_data(bills: int) -> list[tuple[str, int, int, int]]:
    """Per cycle (first sync, idle, delta): Xero calls of a poll with every master-data kind on (and its
    master-data files made), of the same poll with them off (a second ledger, the same sandbox), and how
    many master-data records went into files. Master data must cost no call: the two counts are equal."""
    from connector.domain.masterdata import MASTER_KINDS
    from connector.services.masterdata import assemble_master_data
    from connector.store import masterdata as store
    from connector.store.models import Batch

    rows = []
    with XeroSandbox(seed=43, tenants=1, bills=bills, time_scale=TIME_SCALE) as sandbox:
        tenant_id = sandbox.tenant_ids[0]
        both = []
        for on in (True, False):
            consent = sandbox.consent()  # a grant of its own: refresh tokens rotate
            home = Path(tempfile.mkdtemp(prefix="bench-masterdata-"))
            services = build_services(load_settings({
                "CONNECTOR_DATABASE_URL": f"sqlite:///{home / 'ledger.db'}", "CONNECTOR_FERNET_KEYS": Vault.new_key(),
                "CONNECTOR_XERO_TOKEN_URL": consent["urls"]["token"], "CONNECTOR_XERO_API_URL": consent["urls"]["api"],
                "CONNECTOR_STAGING_DIR": str(home / "staging")}))
            grant = add_grant(services.ledger, services.vault, client_id=consent["client_id"],
                              client_secret=Secret(consent["client_secret"]),
                              refresh_token=Secret(consent["refresh_token"]))
            add_tenant(services.ledger, tenant_id=tenant_id, name="bench", short_name="bench", grant_id=grant,
                       sftp_target_id=None)
            if on:
                with services.ledger.transaction() as session:
                    for kind in MASTER_KINDS:
                        store.set_kind(session, tenant_id, kind, enabled=True)
            both.append((on, services))
        for label, change in (("first sync", None), ("idle cycle", None),
                              ("delta (5% modified, 1% added)", (bills // 20, bills // 100))):
            if change is not None:
                sandbox.update(tenant_id, modify=change[0], add=change[1])
            counts: dict[bool, int] = {}
            records = 0
            for on, services in both:
                sandbox.advance(120)
                start, _ = api_calls(sandbox)
                poll.poll_tenant(services, tenant_id, emit=lambda _: None)
                if on:
                    for message in assemble_master_data(services, tenant_id):
                        with services.ledger.transaction() as session:
                            records += session.get_one(Batch, message.batch_id).bill_count
                counts[on], _ = api_calls(sandbox)
                counts[on] -= start
            rows.append((label, counts[True], counts[False], records))
        for _, services in both:
            services.close()
    return rows


if __name__ == "__main__":
    main()
