"""Secrets never reach logs, error texts, the audit, the ledger in plain text, or the files.

Known secret values are planted, a sync fails on its grant and a delivery fails on its password, with
every logger at DEBUG; then every place an operator could read is searched for them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text

from connector.errors import ConnectorError
from connector.secret import Secret
from connector.services.context import Services
from connector.sftp import SftpTarget
from sandbox.xero import XeroSandbox
from tests.conftest import PG_ADMIN_URL
from tests.support.pipeline import onboard, run_cycle
from tests.support.services import make_services
from tests.support.sftp_fixtures import BundledSftp

PLANTED_SFTP_PASSWORD = "planted-sftp-password-7f3a"


@pytest.fixture
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=5, tenants=1, bills=12) as running:
        yield running


@pytest.fixture
def services(pg_schema: str, tmp_path: Path, sandbox: XeroSandbox) -> Iterator[Services]:
    urls = sandbox.consent()["urls"]
    built = make_services(PG_ADMIN_URL, tmp_path, schema=pg_schema, extra_env={
        "CONNECTOR_XERO_TOKEN_URL": urls["token"], "CONNECTOR_XERO_API_URL": urls["api"]})
    yield built
    built.close()


def test_no_secret_is_readable_after_failed_syncs_and_deliveries(
    services: Services, sandbox: XeroSandbox, bundled_sftp: BundledSftp, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    consent = sandbox.consent()
    wrong_password = bundled_sftp.target(password=Secret(PLANTED_SFTP_PASSWORD))
    assert isinstance(wrong_password, SftpTarget)
    tenant_id = onboard(services, sandbox, wrong_password)
    errors: list[str] = []

    # 1. A good sync whose delivery is refused (wrong SFTP password): the batch FAILS, with a reason.
    run_cycle(services, tenant_id)
    # 2. The grant's refresh token rotated away from under us (another tool used it): invalid_grant.
    sandbox.expire_tokens()
    rotated_away = sandbox.consent()  # a new consent does not revive ours; ours is simply stale now
    with services.ledger.transaction() as session:
        session.execute(text("UPDATE xero_grants SET refresh_token_enc = :t, access_token_enc = NULL"),
                        {"t": services.vault.encrypt(str(consent["refresh_token"]) + "-stale")})
    try:
        run_cycle(services, tenant_id)
    except ConnectorError as exc:
        errors.append(f"{exc!r} {exc}")

    secrets = {
        PLANTED_SFTP_PASSWORD,
        bundled_sftp.password,
        str(consent["client_secret"]),
        str(consent["refresh_token"]),
        str(rotated_away["refresh_token"]),
    } | {k.reveal() for k in services.settings.fernet_keys}
    readable = [caplog.text, *errors, *_ledger_text(services), *_files_text(tmp_path)]
    leaks = sorted({s for s in secrets for chunk in readable if s and s in chunk})
    assert errors, "the stale grant should have failed the sync"
    with services.ledger.transaction() as session:
        assert session.scalar(text("SELECT status FROM xero_grants")) == "NEEDS_REAUTH"
        assert session.scalar(text("SELECT count(*) FROM batches WHERE state = 'FAILED' AND last_error <> ''")) == 1
    assert "invalid_grant" in caplog.text
    assert leaks == []


def _ledger_text(services: Services) -> list[str]:
    """Every value of every row of every table, as text (encrypted columns included, as stored)."""
    chunks = []
    with services.ledger.engine.connect() as connection:
        for table in inspect(connection).get_table_names():
            for row in connection.execute(select(text("*")).select_from(text(table))):
                chunks.append(" ".join(map(str, row)))
    return chunks


def _files_text(root: Path) -> list[str]:
    return [p.read_bytes().decode("utf-8", "replace") for p in root.rglob("*") if p.is_file()]
