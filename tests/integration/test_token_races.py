"""Token custody under concurrency, against the sandbox's real token endpoint: key rotation racing a
refresh (or an operator changing SFTP credentials), and 401s on tokens another worker already replaced.

Each interleaving is forced at a chosen point (a vault or a Xero client that lets another worker act
between two steps), never left to timing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from connector.crypto import Vault
from connector.errors import ConnectorError, RetryableError
from connector.onboarding import add_grant, add_sftp_target, add_tenant
from connector.secret import Secret
from connector.services.context import Services
from connector.services.keys import rotate_keys
from connector.services.poll import TenantReader
from connector.store.grants import GrantStatus
from connector.store.models import SftpTargetRow, XeroGrant
from sandbox.xero import XeroSandbox
from tests.support.services import services_for_sandbox

INVOICES = "/api.xro/2.0/Invoices"


@pytest.fixture
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=7, tenants=1, bills=3) as running:
        yield running


Build = Callable[[list[str]], Services]


@pytest.fixture(params=["sqlite", "postgresql"])
def build(request: pytest.FixtureRequest, sandbox: XeroSandbox, tmp_path: Path) -> Iterator[Build]:
    """Processes sharing one ledger (SQLite file or PostgreSQL schema), each with its own Fernet keys."""
    schema = request.getfixturevalue("pg_schema") if request.param == "postgresql" else None
    built: list[Services] = []

    def services_with(keys: list[str]) -> Services:
        services = services_for_sandbox(sandbox, tmp_path, request.param, schema=schema,
                                        extra_env={"CONNECTOR_FERNET_KEYS": ",".join(keys)})
        built.append(services)
        return services

    yield services_with
    for services in built:
        services.close()


def grant_for(services: Services, sandbox: XeroSandbox) -> int:
    consent = sandbox.consent()
    return add_grant(services.ledger, services.vault, client_id=str(consent["client_id"]),
                     client_secret=Secret(str(consent["client_secret"])),
                     refresh_token=Secret(str(consent["refresh_token"])))


def stored_grant(services: Services, grant_id: int) -> XeroGrant:
    with services.ledger.transaction() as session:
        return session.get_one(XeroGrant, grant_id)


class VaultThatLetsAnotherWorkerIn(Vault):
    """A vault whose first re-encryption waits while `meanwhile` runs: what another process does between
    rotation's read of a row and its write."""

    def __init__(self, keys: list[str], meanwhile: Callable[[], object]) -> None:
        super().__init__([Secret(k) for k in keys])
        self._meanwhile: Callable[[], object] | None = meanwhile

    def rotate(self, token: bytes, *, secret: str) -> bytes:
        if self._meanwhile is not None:
            meanwhile, self._meanwhile = self._meanwhile, None
            meanwhile()
        return super().rotate(token, secret=secret)


# --- finding 5: key rotation ------------------------------------------------------------------------

def test_a_refresh_committed_while_keys_rotate_is_not_undone(build: Build, sandbox: XeroSandbox) -> None:
    old, new = Vault.new_key(), Vault.new_key()
    before = build([old])
    grant = grant_for(before, sandbox)
    before.tokens.access_token(grant)  # the grant has a live pair, encrypted under the old key
    worker, rotator = build([new, old]), build([new, old])
    rotator.vault = VaultThatLetsAnotherWorkerIn(
        [new, old], lambda: worker.tokens.access_token(grant, force_refresh=True))

    assert rotate_keys(rotator) == 3

    assert sandbox.stats()["token_refreshes"] == 2
    assert stored_grant(rotator, grant).version == 2
    only_new = build([new])  # everything is readable without the old key, and the stored pair still works
    only_new.tokens.access_token(grant, force_refresh=True)
    assert stored_grant(only_new, grant).status == GrantStatus.ACTIVE
    assert sandbox.stats()["token_errors"] == {}


def test_sftp_credentials_changed_while_keys_rotate_are_kept(build: Build) -> None:
    old, new = Vault.new_key(), Vault.new_key()
    before = build([old])
    target = add_sftp_target(before.ledger, before.vault, host="sftp.example", port=22, username="ap",
                             import_dir="/in", host_key="ssh-ed25519 AAAA", password=Secret("first-password"))
    operator, rotator = build([new, old]), build([new, old])

    def operator_changes_the_password() -> None:
        with operator.ledger.transaction() as session:
            session.execute(update(SftpTargetRow).where(SftpTargetRow.id == target)
                            .values(password_enc=operator.vault.encrypt("second-password")))

    rotator.vault = VaultThatLetsAnotherWorkerIn([new, old], operator_changes_the_password)
    assert rotate_keys(rotator) == 1
    with rotator.ledger.transaction() as session:
        stored = session.get_one(SftpTargetRow, target).password_enc
    assert stored is not None
    assert Vault([Secret(new)]).decrypt(stored, secret="test").reveal() == "second-password"


def test_rotation_names_each_secret_no_configured_key_opens_and_rewrites_the_rest(
    build: Build, sandbox: XeroSandbox,
) -> None:
    lost, old, new = Vault.new_key(), Vault.new_key(), Vault.new_key()
    readable = grant_for(build([old]), sandbox)
    unreadable = grant_for(build([lost]), sandbox)
    on_lost_key = build([lost])
    target = add_sftp_target(on_lost_key.ledger, on_lost_key.vault, host="sftp.example", port=22,
                             username="ap", import_dir="/in", host_key="ssh-ed25519 AAAA",
                             password=Secret("sftp-password-on-a-lost-key"))
    rotator = build([new, old])

    with pytest.raises(ConnectorError) as refused:
        rotate_keys(rotator)

    message = str(refused.value)
    assert f"grant {unreadable} " in message
    assert f"SFTP target {target} " in message
    assert f"grant {readable} " not in message
    assert refused.value.__cause__ is None  # no InvalidToken traceback behind it
    assert refused.value.__context__ is None
    assert "sftp-password-on-a-lost-key" not in message
    assert not any(key in message for key in (lost, old, new))
    secret = stored_grant(rotator, readable).client_secret_enc
    assert secret is not None
    assert Vault([Secret(new)]).decrypt(secret, secret="test")  # the readable grant was rewritten all the same


# --- finding 6: a 401 on a token another worker already replaced ------------------------------------

def onboard(services: Services, sandbox: XeroSandbox) -> tuple[str, int]:
    grant = grant_for(services, sandbox)
    tenant_id = sandbox.tenant_ids[0]
    add_tenant(services.ledger, tenant_id=tenant_id, name="t", short_name="t", grant_id=grant, sftp_target_id=None)
    return tenant_id, grant


def read_invoices(reader: TenantReader) -> dict[str, Any]:
    return reader.get("Invoices", {"page": 1}, None)


def test_a_401_on_a_token_another_worker_already_replaced_uses_its_token_without_refreshing(
    build: Build, sandbox: XeroSandbox,
) -> None:
    key = Vault.new_key()
    ours, theirs = build([key]), build([key])
    tenant_id, grant = onboard(ours, sandbox)
    reader = TenantReader(ours, tenant_id, grant)  # our token: refresh 1
    theirs.tokens.access_token(grant, force_refresh=True)  # another worker refreshes after it: refresh 2
    sandbox.faults.fail_next(INVOICES, 1, 401)

    assert "Invoices" in read_invoices(reader)

    assert sandbox.stats()["token_refreshes"] == 2  # the stored newer token was used as it is
    assert stored_grant(ours, grant).version == 2


def test_a_fresh_token_refused_after_another_worker_replaced_it_leaves_the_grant_active(
    build: Build, sandbox: XeroSandbox, monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = Vault.new_key()
    ours, theirs = build([key]), build([key])
    tenant_id, grant = onboard(ours, sandbox)
    reader = TenantReader(ours, tenant_id, grant)
    real_get = ours.xero.get
    calls: list[str] = []

    def another_worker_refreshes_before_the_second_call(
        token: Secret, tenant: str, endpoint: str, params: Mapping[str, str | int], *,
        modified_since: datetime | None = None,
    ) -> dict[str, Any]:
        calls.append(endpoint)
        if len(calls) == 2:  # our freshly refreshed token is in hand; another worker replaces it now
            theirs.tokens.access_token(grant, force_refresh=True)
        return real_get(token, tenant, endpoint, params, modified_since=modified_since)

    monkeypatch.setattr(ours.xero, "get", another_worker_refreshes_before_the_second_call)
    sandbox.faults.fail_next(INVOICES, 2, 401)

    with pytest.raises(RetryableError):
        read_invoices(reader)  # a replaced token's refusal is no proof against the grant: try again later

    assert stored_grant(ours, grant).status == GrantStatus.ACTIVE
    assert "Invoices" in read_invoices(TenantReader(ours, tenant_id, grant))  # the next poll goes on
