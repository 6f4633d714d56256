"""Onboarding through the `connector` command, as an operator runs it, against the sandbox: consent with
state and PKCE (the redirect pasted, or caught by the one-shot listener), grant import, custom
connections, and SFTP targets."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from connector.crypto import Vault
from connector.store.db import Ledger
from connector.store.models import SftpTargetRow, Tenant, XeroGrant
from sandbox.xero import XeroSandbox
from tests.support.sftp_fixtures import BundledSftp


@pytest.fixture
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=8, tenants=2, bills=4) as running:
        yield running


@pytest.fixture
def env(sandbox: XeroSandbox, tmp_path: Path) -> dict[str, str]:
    urls = sandbox.urls
    return {
        **os.environ,
        "CONNECTOR_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
        "CONNECTOR_FERNET_KEYS": Vault.new_key(),
        "CONNECTOR_XERO_AUTHORIZE_URL": urls["authorize"],
        "CONNECTOR_XERO_TOKEN_URL": urls["token"],
        "CONNECTOR_XERO_CONNECTIONS_URL": urls["connections"],
        "CONNECTOR_XERO_API_URL": urls["api"],
    }


def connector(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "connector", *args], env=env, input=stdin, text=True,
                          capture_output=True, timeout=60, check=False)


def start(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "connector", *args], env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def consent_url(operator: subprocess.Popen[str]) -> str:
    assert operator.stdout is not None
    for line in operator.stdout:
        if line.strip().startswith("http"):
            return line.strip()
    raise AssertionError("the consent URL was never printed")


def browser_lands(consent: str) -> str:
    """What a browser does at the sandbox: consent at once, then a 302 to the redirect URI."""
    answer = requests.get(consent, allow_redirects=False, timeout=10)
    assert answer.status_code == 302
    return answer.headers["Location"]


def grants_and_tenants(env: dict[str, str]) -> tuple[list[XeroGrant], list[str]]:
    ledger = Ledger.connect(env["CONNECTOR_DATABASE_URL"])
    with ledger.transaction() as session:
        return list(session.scalars(select(XeroGrant))), sorted(session.scalars(select(Tenant.id)))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_connect_with_the_redirect_pasted_keeps_the_grant_encrypted_and_syncs_the_chosen_tenant(
    sandbox: XeroSandbox, env: dict[str, str],
) -> None:
    client = sandbox.consent()
    chosen = sandbox.tenant_ids[1]
    operator = start({**env, "XERO_CLIENT_SECRET": client["client_secret"]},
                     "auth", "connect", "--client-id", client["client_id"], "--paste", "--tenant", chosen)
    url = consent_url(operator)
    assert "code_challenge_method=S256" in url
    assert "state=" in url
    output, _ = operator.communicate(browser_lands(url) + "\n", timeout=60)
    assert operator.returncode == 0, output
    [grant], tenants = grants_and_tenants(env)
    assert tenants == [chosen]
    assert grant.status == "ACTIVE"
    assert grant.refresh_token_enc is not None
    assert client["client_secret"] not in output


def test_a_redirect_with_another_state_is_refused(sandbox: XeroSandbox, env: dict[str, str]) -> None:
    client = sandbox.consent()
    operator = start({**env, "XERO_CLIENT_SECRET": client["client_secret"]},
                     "auth", "connect", "--client-id", client["client_id"], "--paste", "--all-tenants")
    landed = browser_lands(consent_url(operator))
    forged = landed.split("state=")[0] + "state=forged"
    output, _ = operator.communicate(forged + "\n", timeout=60)
    assert operator.returncode != 0
    assert grants_and_tenants(env) == ([], [])
    assert "state" in output.lower()


def test_connect_catches_the_redirect_on_the_loopback_listener(sandbox: XeroSandbox, env: dict[str, str]) -> None:
    client = sandbox.consent()
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    operator = start({**env, "XERO_CLIENT_SECRET": client["client_secret"]}, "auth", "connect",
                     "--client-id", client["client_id"], "--redirect-uri", redirect, "--all-tenants")
    url = consent_url(operator)
    landing = browser_lands(url)
    for _ in range(100):  # the listener may need a moment to bind
        try:
            favicon = requests.get(redirect.replace("/callback", "/favicon.ico"), timeout=5)
            break
        except requests.ConnectionError:
            time.sleep(0.1)
    assert favicon.status_code == 404  # a browser's side request is not taken for the redirect
    assert requests.get(landing, timeout=10).status_code == 200
    output, _ = operator.communicate(timeout=60)
    assert operator.returncode == 0, output
    assert grants_and_tenants(env)[1] == sorted(sandbox.tenant_ids)


def test_import_adopts_a_grant_and_rotates_its_refresh_token_at_once(
    sandbox: XeroSandbox, env: dict[str, str],
) -> None:
    client = sandbox.consent()
    result = connector({**env, "XERO_CLIENT_SECRET": client["client_secret"],
                        "XERO_REFRESH_TOKEN": client["refresh_token"]},
                       "auth", "import", "--client-id", client["client_id"], "--tenant", sandbox.tenant_ids[0])
    assert result.returncode == 0, result.stdout + result.stderr
    assert sandbox.stats()["token_refreshes"] == 1
    again = requests.post(sandbox.urls["token"], timeout=10, auth=(client["client_id"], client["client_secret"]),
                          data={"grant_type": "refresh_token", "refresh_token": client["refresh_token"]})
    assert again.status_code == 400  # the other tool's copy is dead: only we hold the grant now
    assert grants_and_tenants(env)[1] == [sandbox.tenant_ids[0]]


def test_a_custom_connection_needs_no_consent(sandbox: XeroSandbox, env: dict[str, str]) -> None:
    custom = sandbox.custom_connection(1)
    result = connector({**env, "XERO_CLIENT_SECRET": custom["client_secret"]},
                       "auth", "custom", "--client-id", custom["client_id"])
    assert result.returncode == 0, result.stdout + result.stderr
    [grant], tenants = grants_and_tenants(env)
    assert grant.kind == "client_credentials"
    assert tenants == [custom["tenant_id"]]


def test_an_sftp_target_is_stored_encrypted_with_its_key_pinned(
    sandbox: XeroSandbox, env: dict[str, str], bundled_sftp: BundledSftp,
) -> None:
    client = sandbox.consent()
    connector({**env, "XERO_CLIENT_SECRET": client["client_secret"], "XERO_REFRESH_TOKEN": client["refresh_token"]},
              "auth", "import", "--client-id", client["client_id"], "--all-tenants")
    server = bundled_sftp.server
    result = connector(env, "sftp", "add", "--host", server.host, "--port", str(server.port), "--user", "stampli",
                       "--import-dir", bundled_sftp.import_dir, "--host-key", server.host_key, "--password-stdin",
                       "--tenant", sandbox.tenant_ids[0], stdin=bundled_sftp.password + "\n")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SHA256:" in result.stdout
    ledger = Ledger.connect(env["CONNECTOR_DATABASE_URL"])
    with ledger.transaction() as session:
        target = session.scalars(select(SftpTargetRow)).one()
        assert target.password_enc is not None
        assert bundled_sftp.password.encode() not in target.password_enc
        assert session.get_one(Tenant, sandbox.tenant_ids[0]).sftp_target_id == target.id
    refused = connector(env, "sftp", "add", "--host", server.host, "--user", "u", "--import-dir", "/x",
                        "--host-key", server.host_key, "--password-stdin", "--tenant", "no-such-tenant", stdin="p\n")
    assert refused.returncode != 0
    assert "no such tenant" in refused.stdout + refused.stderr


def test_changing_a_tenant_the_ledger_does_not_hold_is_refused_by_name(env: dict[str, str]) -> None:
    refused = connector(env, "tenants", "set", "no-such-tenant", "--interval", "600")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "no such tenant: no-such-tenant" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_mappings_for_a_tenant_the_ledger_does_not_hold_are_refused_by_name(
    env: dict[str, str], tmp_path: Path,
) -> None:
    gl = tmp_path / "gl.csv"
    gl.write_text("xero_account_code,stampli_gl_code\n400,GL-400\n")
    refused = connector(env, "mappings", "import", "--tenant", "no-such-tenant", "--gl", str(gl))
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "no such tenant: no-such-tenant" in refused.stderr
    assert "Traceback" not in refused.stderr


def consent_through_paste(env: dict[str, str], client: dict[str, str], *args: str) -> str:
    """`auth connect --paste …` with the browser's redirect pasted; returns what the command printed."""
    operator = start({**env, "XERO_CLIENT_SECRET": client["client_secret"]},
                     "auth", "connect", "--client-id", client["client_id"], "--paste", *args)
    output, _ = operator.communicate(browser_lands(consent_url(operator)) + "\n", timeout=60)
    assert operator.returncode == 0, output
    return output


def test_re_consent_revives_a_disconnected_tenant_but_leaves_a_paused_one_paused(
    sandbox: XeroSandbox, env: dict[str, str],
) -> None:
    client = sandbox.consent()
    consent_through_paste(env, client, "--all-tenants")
    [grant], _ = grants_and_tenants(env)
    paused, disconnected = sandbox.tenant_ids
    ledger = Ledger.connect(env["CONNECTOR_DATABASE_URL"])
    with ledger.transaction() as session:
        session.get_one(Tenant, paused).status = "PAUSED"  # an operator stopped it
        session.get_one(Tenant, disconnected).status = "DISCONNECTED"  # Xero refused it: the grant's doing

    output = consent_through_paste(env, client, "--grant", str(grant.id), "--all-tenants")

    with ledger.transaction() as session:
        assert session.get_one(Tenant, paused).status == "PAUSED"
        assert session.get_one(Tenant, disconnected).status == "ACTIVE"
    ledger.dispose()
    assert f"tenant {paused} now uses grant {grant.id}; it stays PAUSED" in output
    assert f"tenant {disconnected} now uses grant {grant.id} and is ACTIVE again" in output
