"""Token custody edge cases against the sandbox: custom connections, a stalled refresher, a token refused
twice, and the scheduled refresh that keeps idle grants alive."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from connector.errors import XeroGrantRevoked
from connector.onboarding import add_grant, add_tenant
from connector.secret import Secret
from connector.services import poll
from connector.services.context import Services
from connector.services.grants import refresh_due_grants
from connector.store.grants import GrantStatus
from connector.store.models import XeroGrant, utcnow
from connector.xero import auth
from sandbox.xero import XeroSandbox
from tests.support.services import make_services


@pytest.fixture
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=3, tenants=1, bills=6) as running:
        yield running


@pytest.fixture
def services(sandbox: XeroSandbox, tmp_path: Path) -> Iterator[Services]:
    urls = sandbox.consent()["urls"]
    built = make_services(f"sqlite:///{tmp_path / 'ledger.db'}", tmp_path, extra_env={
        "CONNECTOR_XERO_TOKEN_URL": urls["token"], "CONNECTOR_XERO_API_URL": urls["api"]})
    yield built
    built.close()


def grant_for(services: Services, consent: dict[str, Any]) -> int:
    return add_grant(services.ledger, services.vault, client_id=str(consent["client_id"]),
                     client_secret=Secret(str(consent["client_secret"])),
                     refresh_token=Secret(str(consent["refresh_token"])))


def status(services: Services, grant_id: int) -> GrantStatus:
    with services.ledger.transaction() as session:
        return GrantStatus(session.get_one(XeroGrant, grant_id).status)


def test_a_custom_connection_gets_tokens_by_client_credentials_and_syncs(
    sandbox: XeroSandbox, services: Services,
) -> None:
    custom = sandbox.custom_connection(0)
    grant = add_grant(services.ledger, services.vault, client_id=str(custom["client_id"]),
                      client_secret=Secret(str(custom["client_secret"])), refresh_token=None,
                      kind="client_credentials")
    add_tenant(services.ledger, tenant_id=str(custom["tenant_id"]), name="custom", short_name="custom",
               grant_id=grant, sftp_target_id=None)
    report = poll.poll_tenant(services, str(custom["tenant_id"]), emit=lambda _: None)
    assert report.bills_changed == len(sandbox.dataset.tenants[0].bills)
    assert sandbox.stats()["token_grants"].get("client_credentials") == 1


def test_a_stalled_refresher_that_still_holds_a_good_pair_wins_over_a_stale_invalid_grant(
    sandbox: XeroSandbox, services: Services, monkeypatch: pytest.MonkeyPatch,
) -> None:
    grant = grant_for(services, sandbox.consent())
    first = services.tokens
    second = auth.TokenKeeper(services.ledger, services.vault, services.settings.xero, 5.0)
    real = auth.TokenKeeper._request_token
    stalled: list[str] = []

    def first_stalls_past_its_lease(self: auth.TokenKeeper, *args: Any) -> dict[str, object]:
        token = real(self, *args)
        if self is first and not stalled:
            with services.ledger.transaction() as session:  # the lease runs out while A is stuck
                session.execute(update(XeroGrant).values(refreshing_until=utcnow()))
            try:
                second.access_token(grant, force_refresh=True)  # B refreshes with the old, dead token
            except XeroGrantRevoked as refused:
                stalled.append(str(refused))
        return token

    monkeypatch.setattr(auth.TokenKeeper, "_request_token", first_stalls_past_its_lease)
    first.access_token(grant, force_refresh=True)
    monkeypatch.setattr(auth.TokenKeeper, "_request_token", real)
    assert stalled, "the stale refresher should have been refused"
    assert status(services, grant) == GrantStatus.ACTIVE
    assert first.access_token(grant, force_refresh=True)  # the stored pair is the good one


def test_a_fresh_token_refused_again_marks_the_grant_instead_of_retrying_for_ever(
    sandbox: XeroSandbox, services: Services,
) -> None:
    consent = sandbox.consent()
    grant = grant_for(services, consent)
    tenant_id = sandbox.tenant_ids[0]
    add_tenant(services.ledger, tenant_id=tenant_id, name="t", short_name="t", grant_id=grant, sftp_target_id=None)
    sandbox.faults.fail_next("/api.xro/2.0/", 2, 401)
    with pytest.raises(XeroGrantRevoked):
        poll.poll_tenant(services, tenant_id, emit=lambda _: None)
    assert status(services, grant) == GrantStatus.NEEDS_REAUTH


def test_the_scheduled_refresh_keeps_an_idle_grant_alive_and_leaves_a_fresh_one_alone(
    sandbox: XeroSandbox, services: Services,
) -> None:
    grant = grant_for(services, sandbox.consent())
    assert refresh_due_grants(services) == 1  # never refreshed: due
    assert refresh_due_grants(services) == 0  # fresh for another 25 minutes
    with services.ledger.transaction() as session:
        session.execute(update(XeroGrant).values(access_expires_at=utcnow()))
    assert refresh_due_grants(services) == 1
    assert sandbox.stats()["token_refreshes"] == 2
    assert status(services, grant) == GrantStatus.ACTIVE
