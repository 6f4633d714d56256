"""What an AP operator asks of one document without SQL: `connector bills show` and `bills list` (and
their `--json`) say whether it is a bill or a credit note, the bills a credit note is allocated to, and
the supplier's documents sent with it (name, sha256, where in which file)."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from connector.cli import cli
from connector.config.loader import MappingSetData
from connector.domain.states import BillState
from connector.services.context import Services
from connector.services.mappings import current, import_mapping_set
from connector.store.models import AttachmentRow, Batch, Bill
from sandbox.xero import XeroSandbox
from tests.conftest import pg_url_for
from tests.support.pipeline import onboard, run_cycle
from tests.support.services import services_for_sandbox
from tests.support.sftp_fixtures import BundledSftp


@pytest.fixture
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=11, tenants=1, bills=80) as running:
        yield running


@dataclass
class Ledger:
    services: Services
    env: dict[str, str]

    def run(self, *args: str) -> Result:
        result = CliRunner().invoke(cli, list(args), env=self.env)
        assert result.exit_code == 0, result.output
        return result

    def list_json(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = json.loads(self.run("bills", "list", "--json").stdout)
        return found

    def rows(self, *where: Any) -> list[Bill]:
        with self.services.ledger.transaction() as session:
            found = list(session.scalars(select(Bill).where(*where).order_by(Bill.id)))
            session.expunge_all()
        return found


@pytest.fixture
def ledger(sandbox: XeroSandbox, pg_schema: str, tmp_path: Path, bundled_sftp: BundledSftp) -> Iterator[Ledger]:
    """One cycle with the tenant's documents on (`attachments: {mode: all}`), then the CLI on its ledger."""
    services = services_for_sandbox(sandbox, tmp_path, "postgresql", schema=pg_schema)
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    with services.ledger.transaction() as session:
        _, in_force = current(session, tenant_id)
    import_mapping_set(services.ledger, tenant_id, MappingSetData(
        settings={**in_force.settings, "attachments": {"mode": "all"}}, gl=in_force.gl, tracking=in_force.tracking),
        actor="test")
    run_cycle(services, tenant_id)
    yield Ledger(services, {"CONNECTOR_DATABASE_URL": pg_url_for(pg_schema),
           "CONNECTOR_FERNET_KEYS": ",".join(k.reveal() for k in services.settings.fernet_keys),
           "CONNECTOR_STAGING_DIR": str(tmp_path / "staging"), "CONNECTOR_BROKER_DIR": str(tmp_path / "broker")})
    services.close()


def test_bills_show_names_each_document_sent_with_its_sha256_and_its_place_in_the_zip(ledger: Ledger) -> None:
    with ledger.services.ledger.transaction() as session:
        carried = {r.invoice_id for r in session.scalars(select(AttachmentRow))}
    bill = next(b for b in ledger.rows(Bill.state == BillState.DELIVERED, Bill.document_type == "BILL")
                if b.invoice_id in carried)
    [view] = json.loads(ledger.run("bills", "show", bill.invoice_id, "--json").stdout)
    assert view["document_type"] == "BILL"
    assert view["allocations"] == []
    with ledger.services.ledger.transaction() as session:
        batch = session.get_one(Batch, bill.batch_id)
        archive = zipfile.ZipFile(io.BytesIO(batch.content))
        name = batch.name
    assert view["documents"], "a delivered bill with documents shows none"
    for document in view["documents"]:
        assert document["file"] == name
        assert document["path"].startswith(f"documents/{bill.invoice_id}/")
        assert hashlib.sha256(archive.read(document["path"])).hexdigest() == document["sha256"]
        assert document["name"]
        assert document["size"] > 0
        assert document["mime_type"]
    text = ledger.run("bills", "show", bill.invoice_id).output
    assert f"bill {bill.invoice_id}" in text
    for document in view["documents"]:
        assert f"document: {document['path']} in {name} (sha256 {document['sha256']}" in text
    [listed] = [r for r in ledger.list_json() if r["invoice_id"] == bill.invoice_id]
    assert listed["document_type"] == "BILL"
    assert [d["sha256"] for d in listed["documents"]] == [d["sha256"] for d in view["documents"]]


def test_bills_show_and_list_say_a_credit_note_is_one_and_which_bills_it_is_allocated_to(
    ledger: Ledger,
) -> None:
    note = next(n for n in ledger.rows(Bill.document_type == "CREDIT_NOTE")
                if n.mapping and n.mapping.get("allocations"))
    [view] = json.loads(ledger.run("bills", "show", note.invoice_id, "--json").stdout)
    assert view["document_type"] == "CREDIT_NOTE"
    assert view["allocations"] == [{"invoice_id": a["invoice_id"], "invoice_number": a["invoice_number"],
                                    "amount": a["amount"], "date": a["date"]} for a in note.mapping["allocations"]]
    assert view["documents"] == []
    text = ledger.run("bills", "show", note.invoice_id).output
    assert text.startswith(f"credit note {note.invoice_id}")
    first = note.mapping["allocations"][0]
    assert f"allocated to bill {first['invoice_number'] or first['invoice_id']} ({first['invoice_id']}): " \
           f"{first['amount']}" in text
    listing = ledger.run("bills", "list").output
    [line] = [x for x in listing.splitlines() if note.invoice_id in x]
    assert "CREDIT_NOTE" in line
    [listed] = [r for r in ledger.list_json() if r["invoice_id"] == note.invoice_id]
    assert listed["document_type"] == "CREDIT_NOTE"
    assert listed["allocations"] == view["allocations"]


def test_a_bill_held_for_a_document_xero_fails_to_serve_says_when_it_is_tried_again(
    ledger: Ledger, sandbox: XeroSandbox,
) -> None:
    """`bills show`, `holds list` and `status` say when the poll asks Xero for the document again."""
    [tenant_id] = sandbox.tenant_ids
    victim = next(b for b in sandbox.dataset.tenant(tenant_id).bills if b.attachments and b.status == "AUTHORISED"
                  and ledger.rows(Bill.invoice_id == b.invoice_id)[0].state == BillState.DELIVERED)
    with ledger.services.ledger.transaction() as session:  # as a failed fetch leaves it, its second failure
        bill = session.scalars(select(Bill).where(Bill.invoice_id == victim.invoice_id)).one()
        bill.state, bill.documents_failures = BillState.HELD, 2
        bill.reasons = [{"code": "attachment_unavailable", "name": "scan.pdf", "problem": "HTTP 404"}]
        bill.documents_retry_at = datetime(2026, 3, 2, 9, 45, tzinfo=UTC)
    for command in (("bills", "show", victim.invoice_id), ("holds", "list")):
        assert "next try at 2026-03-02 09:45 UTC" in ledger.run(*command).stdout
    status = ledger.run("status").stdout
    assert f"DOCUMENT RETRY {victim.invoice_id}" in status
    assert "failed 2 times in a row, next try at 2026-03-02 09:45 UTC" in status
    [retrying] = json.loads(ledger.run("status", "--json").stdout)["documents_retrying"]
    assert retrying["invoice_id"] == victim.invoice_id
