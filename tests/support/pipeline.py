"""One tenant wired end to end: the Xero sandbox, a ledger, an SFTP target, and the worker environment."""

from __future__ import annotations

import csv
import io
import itertools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from sqlalchemy import select, update

from connector.config.loader import MappingSetData
from connector.domain.masterdata import MASTER_KINDS
from connector.domain.states import BillState
from connector.onboarding import add_grant, add_sftp_target, add_tenant
from connector.secret import Secret
from connector.services import batch, deliver, map, poll
from connector.services.context import Services
from connector.services.mappings import current, import_mapping_set
from connector.services.messages import AssembleBatch, DeliverBatch, MapInvoice, Message
from connector.settings import xero_url_environment
from connector.sftp import SftpTarget
from connector.store import masterdata as masterdata_store
from connector.store.models import Batch, Bill, Tenant, utcnow
from sandbox.demo import demo_mapping_set
from sandbox.xero import XeroSandbox
from sandbox.xero.attachments import Attachment


@dataclass
class Wiring:
    tenant_id: str
    env: dict[str, str]


def worker_env(services: Services, database_url: str, broker_url: str, sandbox: XeroSandbox,
               tmp_path: Path) -> dict[str, str]:
    urls = sandbox.consent()["urls"]
    return {
        "CONNECTOR_DATABASE_URL": database_url,
        "CONNECTOR_BROKER_URL": broker_url,
        "CONNECTOR_BROKER_DIR": str(tmp_path / "broker"),
        "CONNECTOR_FERNET_KEYS": ",".join(k.reveal() for k in services.settings.fernet_keys),
        "CONNECTOR_STAGING_DIR": str(tmp_path / "staging"),
        "CONNECTOR_PROBE_DIR": str(tmp_path / "probes"),  # not the shared /tmp of parallel runs
        **xero_url_environment(urls),
        "CONNECTOR_BEAT_TICK_SECONDS": "1",
        "CONNECTOR_SWEEP_INTERVAL_SECONDS": "2",
        "CONNECTOR_SWEEP_STALE_SECONDS": "5",
        "CONNECTOR_SFTP_TIMEOUT_SECONDS": "5",
    }


def onboard(services: Services, sandbox: XeroSandbox, target: SftpTarget, *, tenant_index: int = 0,
            cap: int = 500, interval: int = 900) -> str:
    consent = sandbox.consent()
    tenant = sandbox.dataset.tenants[tenant_index]
    grant = add_grant(services.ledger, services.vault, client_id=str(consent["client_id"]),
                      client_secret=Secret(str(consent["client_secret"])),
                      refresh_token=Secret(str(consent["refresh_token"])))
    target_id = add_sftp_target(
        services.ledger, services.vault, host=target.host, port=target.port, username=target.username,
        import_dir=target.import_dir, host_key=target.host_key, password=target.password,
        private_key=target.private_key,
    )
    add_tenant(services.ledger, tenant_id=tenant.tenant_id, name=tenant.name, short_name=f"t{tenant_index}",
               grant_id=grant, sftp_target_id=target_id, max_bills_per_file=cap, poll_interval_seconds=interval)
    import_mapping_set(services.ledger, tenant.tenant_id, demo_mapping_set(tenant), actor="test")
    return tenant.tenant_id


def onboard_unsent(services: Services, sandbox: XeroSandbox, *, tenant_index: int = 0) -> str:
    """The sandbox tenant connected through a fresh grant, with no SFTP target: enough to poll and map it."""
    consent = sandbox.consent()
    tenant = sandbox.dataset.tenants[tenant_index]
    grant = add_grant(services.ledger, services.vault, client_id=str(consent["client_id"]),
                      client_secret=Secret(str(consent["client_secret"])),
                      refresh_token=Secret(str(consent["refresh_token"])))
    add_tenant(services.ledger, tenant_id=tenant.tenant_id, name=tenant.name, short_name=f"t{tenant_index}",
               grant_id=grant, sftp_target_id=None)
    return tenant.tenant_id


def with_documents(services: Services, tenant_id: str, layout: str = "zip", mode: str = "all") -> None:
    """The tenant sends its suppliers' documents (`attachments: {mode}`) in this layout of the template
    (the default CSV with its `documents: {layout}` set)."""
    text = resources.files("connector.stampli.templates").joinpath("default_csv.yaml").read_text(encoding="utf-8")
    assert "  layout: zip\n" in text
    with services.ledger.transaction() as session:
        session.execute(update(Tenant).where(Tenant.id == tenant_id).values(
            template=text.replace("  layout: zip\n", f"  layout: {layout}\n")))
        _, in_force = current(session, tenant_id)
    import_mapping_set(services.ledger, tenant_id, MappingSetData(
        settings={**in_force.settings, "attachments": {"mode": mode}}, gl=in_force.gl,
        tracking=in_force.tracking), actor="test")


def with_master_data(services: Services, tenant_id: str) -> None:
    """The tenant sends every kind of master data (vendors, accounts, dimensions, POs) ahead of its bills."""
    with services.ledger.transaction() as session:
        for kind in MASTER_KINDS:
            masterdata_store.set_kind(session, tenant_id, kind, enabled=True)


def make_due(services: Services, tenant_id: str) -> None:
    with services.ledger.transaction() as session:
        session.execute(update(Tenant).where(Tenant.id == tenant_id).values(next_poll_at=utcnow()))


def last_polled(services: Services, tenant_id: str) -> object:
    with services.ledger.transaction() as session:
        return session.scalar(select(Tenant.last_polled_at).where(Tenant.id == tenant_id))


def invoice_ids_in_files(folder: Path) -> list[str]:
    """Every bill (by Xero InvoiceID) in every delivered file, once per bill per file."""
    found: list[str] = []
    for path in sorted(folder.glob("*.csv")):
        rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
        if rows and "XeroInvoiceID" not in rows[0]:
            continue  # a master-data file (vendors, GL accounts, dimensions, POs) carries no bill
        seen_here: list[str] = []
        for row in rows:
            if row["XeroInvoiceID"] not in seen_here:
                seen_here.append(row["XeroInvoiceID"])
        found.extend(seen_here)
    return found


def delivered_folder(import_dir: Path) -> tuple[dict[str, tuple[Path, list[str]]], dict[str, bytes], list[Path]]:
    """Per bill, its data file and its Documents column; every document file's bytes by its path relative to
    the import folder; the data files of bills."""
    named: dict[str, tuple[Path, list[str]]] = {}
    data_files = []
    for path in sorted(import_dir.glob("*.csv")):
        rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
        if rows and "Documents" in rows[0]:
            data_files.append(path)
        for row in rows:
            if "Documents" in row:
                named[row["XeroInvoiceID"]] = (path, [n for n in row["Documents"].split(";") if n])
    stored = {str(p.relative_to(import_dir)): p.read_bytes() for p in import_dir.rglob("*")
              if p.is_file() and p.parent != import_dir}
    return named, stored, data_files


def sandbox_documents(sandbox: XeroSandbox, tenant_id: str) -> dict[str, tuple[Attachment, ...]]:
    """The documents the sandbox keeps on each bill (by InvoiceID) and supplier credit note (by CreditNoteID)."""
    tenant = sandbox.dataset.tenant(tenant_id)
    return {**{b.invoice_id: b.attachments for b in tenant.bills},
            **{n.credit_note_id: n.attachments for n in tenant.credit_notes if n.type == "ACCPAYCREDIT"}}


def poll_and_map(services: Services, tenant_id: str) -> None:
    """Poll, then map every bill the poll asked for; nothing is batched yet."""
    queue: list[Message] = []
    poll.poll_tenant(services, tenant_id, emit=queue.append)
    for message in queue:
        if isinstance(message, MapInvoice):
            map.map_invoice(services, message.tenant_id, message.invoice_id, message.version)


def staged_batch(services: Services, sandbox: XeroSandbox, target: SftpTarget) -> tuple[int, str]:
    """A tenant onboarded, polled and mapped, with its READY bills claimed into one staged file."""
    tenant_id = onboard(services, sandbox, target)
    poll_and_map(services, tenant_id)
    [message] = batch.assemble_batches(services, tenant_id)
    assert isinstance(message, DeliverBatch)
    with services.ledger.transaction() as session:
        return message.batch_id, session.get_one(Batch, message.batch_id).name


def run_cycle(services: Services, tenant_id: str) -> list[Message]:
    """Poll, then drain every follow-up message in process, as the workers would."""
    queue: list[Message] = []
    poll.poll_tenant(services, tenant_id, emit=queue.append)
    handled: list[Message] = []
    while queue:
        message = queue.pop(0)
        handled.append(message)
        match message:
            case MapInvoice(tenant, invoice, version):
                queue.extend(map.map_invoice(services, tenant, invoice, version))
            case AssembleBatch(tenant, bills):
                queue.extend(batch.assemble_batches(services, tenant, bills=bills))
            case DeliverBatch(batch_id):
                queue.extend(deliver.deliver_batch(services, batch_id).follow_ups)
    return handled


def delivered_ids(services: Services) -> set[str]:
    with services.ledger.transaction() as session:
        return set(session.scalars(select(Bill.invoice_id).where(Bill.state == BillState.DELIVERED)))


def replace_gl_mappings(services: Services, tenant_id: str, codes: dict[str, str]) -> int:
    """A new mapping set with this GL map and the rest of the set in force; returns the bills re-opened."""
    with services.ledger.transaction() as session:
        _, in_force = current(session, tenant_id)
    data = MappingSetData(settings=in_force.settings, gl=codes, tracking=in_force.tracking, vendors=in_force.vendors)
    return import_mapping_set(services.ledger, tenant_id, data, actor="test")[1]


def waits_after_429(sandbox: XeroSandbox, endpoint: str) -> list[float]:
    """For each 429 the sandbox answered on `endpoint`, the seconds until the next call to it (as Xero
    sees the caller wait), from the sandbox's own timeline rather than the workers' logs."""
    calls = [(at, status) for at, name, status in sandbox.calls_timeline() if name == endpoint]
    return [later - at for (at, status), (later, _) in itertools.pairwise(calls) if status == 429]
