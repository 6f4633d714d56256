"""Files in the tenant's Stampli template, end to end: XML valid against the shipped XSD, a bill the
file cannot carry held with a reason while the rest flow, and a checksum sidecar after the file."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import xmlschema
from sqlalchemy import select, update

from connector.domain.states import BillState
from connector.services import batch, deliver
from connector.services.context import Services
from connector.services.messages import DeliverBatch
from connector.store.models import Bill, Tenant
from sandbox.xero import XeroSandbox
from tests.support.pipeline import onboard, poll_and_map
from tests.support.services import point_command_at
from tests.support.sftp_fixtures import BundledSftp

TEMPLATES = Path(__file__).parents[2] / "connector" / "stampli" / "templates"


@pytest.fixture
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=42, tenants=1, bills=30) as running:
        yield running


def assemble_and_deliver(services: Services, tenant_id: str) -> list[str]:
    names = []
    for message in batch.assemble_batches(services, tenant_id):
        assert isinstance(message, DeliverBatch)
        deliver.deliver_batch(services, message.batch_id)
    with services.ledger.transaction() as session:
        from connector.store.models import Batch

        names = list(session.scalars(select(Batch.name)))
    return names


def use_template(services: Services, tenant_id: str, text: str) -> None:
    with services.ledger.transaction() as session:
        session.execute(update(Tenant).where(Tenant.id == tenant_id).values(template=text))


def test_xml_files_validate_and_a_bill_xml_cannot_carry_is_held_while_the_rest_flow(
    sandbox: XeroSandbox, services: Services, bundled_sftp: BundledSftp,
) -> None:
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    use_template(services, tenant_id, (TEMPLATES / "default_xml.yaml").read_text())
    poll_and_map(services, tenant_id)
    with services.ledger.transaction() as session:
        ready = list(session.scalars(select(Bill).where(Bill.state == BillState.READY).order_by(Bill.id)))
        broken = ready[0]
        lines = [dict(line) for line in broken.mapping["lines"]]
        lines[0]["description"] = "page one\x0cpage two"  # a form feed: XML 1.0 cannot carry it
        broken.mapping = {**broken.mapping, "lines": lines}
    [name] = assemble_and_deliver(services, tenant_id)
    assert name.endswith(".xml")
    folder = bundled_sftp.server.local_path(bundled_sftp.import_dir)
    xmlschema.XMLSchema(TEMPLATES / "default_xml.xsd").validate(folder / name)
    content = (folder / name).read_text(encoding="utf-8")
    with services.ledger.transaction() as session:
        held = session.scalars(select(Bill).where(Bill.invoice_id == broken.invoice_id)).one()
        delivered = list(session.scalars(select(Bill.invoice_id).where(Bill.state == BillState.DELIVERED)))
    assert held.state == BillState.HELD
    assert held.reasons[0]["code"] == "unrenderable"
    assert "line.description" in held.reasons[0]["problem"]
    assert broken.invoice_id not in content
    assert len(delivered) == len(ready) - 1
    assert all(invoice_id in content for invoice_id in delivered)


def test_a_template_asking_for_a_sidecar_gets_one_after_its_file(
    sandbox: XeroSandbox, services: Services, bundled_sftp: BundledSftp,
) -> None:
    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    text = (TEMPLATES / "default_csv.yaml").read_text().replace("sidecar: none", "sidecar: sha256")
    use_template(services, tenant_id, text)
    poll_and_map(services, tenant_id)
    [name] = assemble_and_deliver(services, tenant_id)
    folder = bundled_sftp.server.local_path(bundled_sftp.import_dir)
    content = (folder / name).read_bytes()
    assert (folder / f"{name}.sha256").read_text() == f"{hashlib.sha256(content).hexdigest()}  {name}\n"


def test_a_customer_template_is_validated_before_it_is_stored(
    sandbox: XeroSandbox, services: Services, bundled_sftp: BundledSftp, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from click.testing import CliRunner

    from connector.cli import cli

    tenant_id = onboard(services, sandbox, bundled_sftp.target())
    point_command_at(services, monkeypatch)
    broken = tmp_path / "acme.yaml"
    broken.write_text((TEMPLATES / "default_csv.yaml").read_text().replace("source: total,", "source: totl,"))
    refused = CliRunner().invoke(cli, ["tenants", "set", tenant_id, "--template", str(broken)])
    assert refused.exit_code == 2  # an invalid file: the command was wrong
    assert "acme.yaml" in refused.stderr
    assert "totl" in refused.stderr
    good = tmp_path / "good.yaml"
    good.write_text((TEMPLATES / "default_xml.yaml").read_text())
    assert CliRunner().invoke(cli, ["tenants", "set", tenant_id, "--template", str(good)]).exit_code == 0
    with services.ledger.transaction() as session:
        assert session.get_one(Tenant, tenant_id).template == good.read_text()
