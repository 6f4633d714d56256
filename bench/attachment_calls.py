"""Xero calls per cycle with the suppliers' documents on, counted by the sandbox's call counter.

One tenant polled and every bill the poll asked for mapped, in process (no SFTP), as the workers would:
the delta reads (Invoices, CreditNotes, PurchaseOrders, and the reference data on its own cadence), then,
for the bills and supplier credit notes mapping would send that have documents, one list call each and
one call per file. Each cycle is run twice on one sandbox, with the tenant's attachments `all` and `off`
(two ledgers), so the documents' cost is the difference.

    .venv/bin/python bench/attachment_calls.py [--bills 300]

The tenant's 60 calls a minute hold: a cycle needing more waits out the connector's own budget (as the
map and poll tasks' retries do), so a large first sync takes minutes here; the cycle after one of more than
30 calls starts a minute later, with the budget whole, as the next 15-minute cycle would.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from connector.config.loader import MappingSetData
from connector.crypto import Vault
from connector.errors import XeroRateLimited
from connector.onboarding import add_grant, add_tenant
from connector.secret import Secret
from connector.services import map as mapping
from connector.services import poll
from connector.services.context import Services, build_services
from connector.services.mappings import import_mapping_set
from connector.services.messages import MapInvoice, Message
from connector.settings import load_settings
from sandbox.demo import demo_mapping_set
from sandbox.xero import XeroSandbox


def calls(sandbox: XeroSandbox) -> dict[str, int]:
    return {name: sum(codes.values()) for name, codes in sandbox.stats()["calls_by_endpoint"].items()
            if "/api.xro/" in name}


def grouped(before: dict[str, int], after: dict[str, int]) -> tuple[int, int, int]:
    """(delta and reference reads, attachment lists, attachment files) between two counts."""
    spent = {k: v - before.get(k, 0) for k, v in after.items()}
    files = sum(v for k, v in spent.items() if k.endswith("/Attachments/{id}"))
    lists = sum(v for k, v in spent.items() if k.endswith("/Attachments"))
    return sum(spent.values()) - files - lists, lists, files


def cycle(services: Services, tenant_id: str) -> int:
    queue: list[Message] = []
    while True:
        try:
            poll.poll_tenant(services, tenant_id, emit=queue.append)
            break
        except XeroRateLimited as limited:  # the poll task's retry: its lease freed, read again from its watermark
            time.sleep(min(limited.retry_after or 1.0, 61.0))
    mapped = 0
    for message in dict.fromkeys(queue):  # a poll read again asks again for what it asked before
        if isinstance(message, MapInvoice):
            while True:
                try:
                    mapping.map_invoice(services, message.tenant_id, message.invoice_id, message.version)
                    break
                except XeroRateLimited as limited:  # the task's retry after Retry-After, in process
                    time.sleep(min(limited.retry_after or 1.0, 61.0))
            mapped += 1
    return mapped


def measure(bills: int) -> list[tuple[str, tuple[int, int, int], tuple[int, int, int], int]]:
    rows = []
    with XeroSandbox(seed=42, tenants=1, bills=bills, time_scale=60.0) as sandbox:
        sandbox.set_limits(minute=1_000_000, day=1_000_000, app_minute=1_000_000)
        tenant_id = sandbox.tenant_ids[0]
        tenant = sandbox.dataset.tenant(tenant_id)
        ledgers = {}
        for mode in ("all", "off"):
            consent = sandbox.consent()
            home = Path(tempfile.mkdtemp(prefix=f"bench-attachments-{mode}-"))
            services = build_services(load_settings({
                "CONNECTOR_DATABASE_URL": f"sqlite:///{home / 'ledger.db'}", "CONNECTOR_FERNET_KEYS": Vault.new_key(),
                "CONNECTOR_XERO_TOKEN_URL": consent["urls"]["token"],
                "CONNECTOR_XERO_API_URL": consent["urls"]["api"], "CONNECTOR_STAGING_DIR": str(home / "staging")}))
            grant = add_grant(services.ledger, services.vault, client_id=consent["client_id"],
                              client_secret=Secret(consent["client_secret"]),
                              refresh_token=Secret(consent["refresh_token"]))
            add_tenant(services.ledger, tenant_id=tenant_id, name="bench", short_name=f"b{mode}", grant_id=grant,
                       sftp_target_id=None)
            base = demo_mapping_set(tenant)
            import_mapping_set(services.ledger, tenant_id, MappingSetData(
                settings={**base.settings, "attachments": {"mode": mode}}, gl=base.gl, tracking=base.tracking),
                actor="bench")
            ledgers[mode] = services
        for label, change in (("first sync", None), ("idle cycle", None),
                              ("delta (5% modified, 1% added)", (bills // 20, bills // 100))):
            if change is not None:
                sandbox.update(tenant_id, modify=change[0], add=change[1])
            counted = {}
            for mode, services in ledgers.items():
                sandbox.advance(120)
                start = calls(sandbox)
                mapped = cycle(services, tenant_id)
                counted[mode] = grouped(start, calls(sandbox))
                if sum(counted[mode]) > 30:  # the next cycle starts with a whole minute budget, as 15 minutes on
                    time.sleep(61)
            rows.append((label, counted["all"], counted["off"], mapped))
        for services in ledgers.values():
            services.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bills", type=int, default=300)
    args = parser.parse_args()
    print(f"Xero calls per cycle, one tenant of {args.bills} bills, documents on (all) and off")
    print(f"{'cycle':<34}{'on: reads':>10}{'lists':>7}{'files':>7}{'total':>7}{'off: total':>12}{'mapped':>8}")
    for label, on, off, mapped in measure(args.bills):
        print(f"{label:<34}{on[0]:>10}{on[1]:>7}{on[2]:>7}{sum(on):>7}{sum(off):>12}{mapped:>8}")


if __name__ == "__main__":
    main()
