"""Pre-flight checks and the life cycle of grants and targets (findings 3 and 9), through the command on
PostgreSQL, against the Xero sandbox and the bundled SFTP server; and a sweep of every command's output
for the secrets planted on the way (finding 10's scripts read it all)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import update

from connector.cli import cli
from connector.crypto import Vault
from connector.secret import Secret
from connector.settings import xero_url_environment
from connector.store.db import Ledger
from connector.store.models import XeroGrant
from sandbox.xero import XeroSandbox
from tests.conftest import pg_url_for
from tests.support.sftp_fixtures import BundledSftp
from tests.support.sshd import new_ed25519_key


@pytest.fixture
def sandbox() -> Iterator[XeroSandbox]:
    with XeroSandbox(seed=8, tenants=2, bills=6) as running:
        yield running


@dataclass
class Desk:
    """The operator's terminal: every command run is kept, so its output can be searched afterwards."""

    env: dict[str, str]
    sandbox: XeroSandbox
    sftp: BundledSftp
    outputs: list[str] = field(default_factory=list)

    def run(self, *args: str, stdin: str | None = None, extra: dict[str, str] | None = None) -> Result:
        result = CliRunner().invoke(cli, list(args), env={**self.env, **(extra or {})}, input=stdin)
        self.outputs.append(result.output)
        return result

    def import_grant(self, *tenant_args: str) -> dict[str, str]:
        client = self.sandbox.consent()
        result = self.run("auth", "import", "--client-id", client["client_id"], *tenant_args,
                          extra={"XERO_CLIENT_SECRET": client["client_secret"],
                                 "XERO_REFRESH_TOKEN": client["refresh_token"]})
        assert result.exit_code == 0, result.output
        return {k: str(v) for k, v in client.items() if isinstance(v, str)}

    def add_target(self, *extra_args: str, host_key: str | None = None, password: str | None = None) -> Result:
        server = self.sftp.server
        return self.run("sftp", "add", "--host", server.host, "--port", str(server.port), "--user", "stampli",
                        "--import-dir", self.sftp.import_dir, "--host-key", host_key or server.host_key,
                        "--password-stdin", *extra_args, stdin=(password or self.sftp.password) + "\n")


@pytest.fixture
def desk(sandbox: XeroSandbox, bundled_sftp: BundledSftp, pg_schema: str, tmp_path: Path) -> Desk:
    env = {"CONNECTOR_DATABASE_URL": pg_url_for(pg_schema), "CONNECTOR_FERNET_KEYS": Vault.new_key(),
           "CONNECTOR_STAGING_DIR": str(tmp_path / "staging"), "CONNECTOR_BROKER_DIR": str(tmp_path / "broker"),
           "CONNECTOR_SFTP_TIMEOUT_SECONDS": "5", **xero_url_environment(sandbox.urls)}
    return Desk(env, sandbox, bundled_sftp)


def targets(desk: Desk) -> list[dict[str, object]]:
    listed = desk.run("sftp", "list", "--json")
    assert listed.exit_code == 0, listed.output
    return list(json.loads(listed.stdout))


# --- Finding 3: nothing is stored unchecked, and everything can be checked on demand ----------------------

def test_sftp_add_refuses_a_wrong_host_key_naming_both_fingerprints_and_stores_nothing(desk: Desk) -> None:
    _, other_key = new_ed25519_key()
    refused = desk.add_target(host_key=other_key)
    assert refused.exit_code == 3, refused.output
    assert "nothing stored" in refused.stderr
    assert "SHA256:" in refused.stderr
    assert targets(desk) == []


def test_sftp_add_refuses_a_wrong_password_and_stores_nothing(desk: Desk) -> None:
    refused = desk.add_target(password="not-the-password")
    assert refused.exit_code == 3, refused.output
    assert targets(desk) == []


def test_sftp_add_unverified_stores_with_a_loud_warning(desk: Desk) -> None:
    stored = desk.add_target("--unverified", password="not-the-password")
    assert stored.exit_code == 0, stored.output
    assert "WARNING: stored UNVERIFIED" in stored.stderr
    assert len(targets(desk)) == 1


def test_check_passes_line_by_line_then_fails_with_exit_3_when_a_target_breaks(desk: Desk) -> None:
    tenant = desk.sandbox.tenant_ids[0]
    desk.import_grant("--tenant", tenant)
    assert desk.add_target("--tenant", tenant).exit_code == 0
    passed = desk.run("check")
    assert passed.exit_code == 0, passed.output
    lines = passed.stdout.splitlines()
    assert len(lines) == 4
    for line, subject in zip(lines, ["database", "broker", "grant 1", "sftp target 1"], strict=True):
        assert line.startswith(f"OK   {subject}"), line
    changed = desk.run("sftp", "set", "1", "--password-stdin", "--unverified", stdin="wrong-now\n")
    assert changed.exit_code == 0, changed.output
    failed = desk.run("check", "--json")
    assert failed.exit_code == 3
    report = json.loads(failed.stdout)
    assert [c["ok"] for c in report] == [True, True, True, False]
    assert report[3]["subject"].startswith("sftp target 1")


def test_check_fails_a_grant_xero_refuses(desk: Desk) -> None:
    desk.import_grant("--tenant", desk.sandbox.tenant_ids[0])
    ledger = Ledger.connect(desk.env["CONNECTOR_DATABASE_URL"])
    vault = Vault([Secret(desk.env["CONNECTOR_FERNET_KEYS"])])
    with ledger.transaction() as session:  # the token another tool still held was used there, then revoked
        session.execute(update(XeroGrant).values(access_token_enc=None, refresh_token_enc=vault.encrypt("revoked")))
    ledger.dispose()
    result = desk.run("check")
    assert result.exit_code == 3
    assert any(line.startswith("FAIL grant 1") for line in result.stdout.splitlines()), result.output


# --- Finding 9: grants and targets can be listed, changed and removed; a failed import stores nothing --------

def test_a_failed_auth_import_stores_nothing(desk: Desk) -> None:
    client = desk.sandbox.consent()
    refused = desk.run("auth", "import", "--client-id", client["client_id"], "--all-tenants",
                       extra={"XERO_CLIENT_SECRET": client["client_secret"], "XERO_REFRESH_TOKEN": "not-a-token"})
    assert refused.exit_code != 0
    assert "Traceback" not in refused.output
    listed = desk.run("auth", "list", "--json")
    assert json.loads(listed.stdout) == []


def test_grants_are_listed_and_only_an_unused_one_is_removed(desk: Desk) -> None:
    tenant = desk.sandbox.tenant_ids[0]
    desk.import_grant("--tenant", tenant)
    desk.import_grant()  # reaches the tenants, syncs none
    grants = json.loads(desk.run("auth", "list", "--json").stdout)
    assert [g["tenants"] for g in grants] == [[tenant], []]
    in_use = desk.run("auth", "remove", str(grants[0]["id"]))
    assert in_use.exit_code == 4
    assert tenant in in_use.stderr
    assert desk.run("auth", "remove", str(grants[1]["id"])).exit_code == 0
    assert desk.run("auth", "remove", "999").exit_code == 2
    assert len(json.loads(desk.run("auth", "list", "--json").stdout)) == 1


def test_targets_are_listed_changed_in_place_and_only_an_unused_one_is_removed(desk: Desk) -> None:
    tenant = desk.sandbox.tenant_ids[0]
    desk.import_grant("--tenant", tenant)
    assert desk.add_target("--tenant", tenant).exit_code == 0
    assert desk.add_target().exit_code == 0
    [used, spare] = targets(desk)
    assert used["tenants"] == [tenant]
    assert spare["tenants"] == []
    moved = desk.run("sftp", "set", str(used["id"]), "--import-dir", "/no/such/folder")
    assert moved.exit_code == 3  # checked first, like add
    assert "does not exist" in moved.stderr
    assert targets(desk)[0]["import_dir"] == desk.sftp.import_dir
    assert desk.run("sftp", "remove", str(used["id"])).exit_code == 4
    assert desk.run("sftp", "remove", str(spare["id"])).exit_code == 0
    assert desk.run("sftp", "remove", "999").exit_code == 2
    assert [t["id"] for t in targets(desk)] == [used["id"]]


# --- No command prints a secret, --json included ---------------------------------------------------------

def test_no_command_prints_a_planted_secret(desk: Desk, tmp_path: Path) -> None:
    tenant = desk.sandbox.tenant_ids[0]
    client = desk.import_grant("--tenant", tenant)
    assert desk.add_target("--tenant", tenant).exit_code == 0
    gl = tmp_path / "gl.csv"
    gl.write_text("xero_account_code,stampli_gl_code\n400,GL-400\n")
    for args in (["tenants", "list"], ["tenants", "list", "--json"], ["auth", "list"], ["auth", "list", "--json"],
                 ["sftp", "list"], ["sftp", "list", "--json"], ["status"], ["status", "--json"], ["check"],
                 ["check", "--json"], ["holds", "list", "--json"], ["bills", "list", "--json"],
                 ["audit", "export", "--format", "jsonl"], ["mappings", "import", "--tenant", tenant, "--gl", str(gl)],
                 ["mappings", "show", "--tenant", tenant], ["keys", "rotate", "--json"], ["-v", "check"],
                 ["tenants", "set", tenant, "--interval", "600"]):
        result = desk.run(*args)
        assert result.exit_code == 0, (args, result.output)
    planted = [client["client_secret"], client["refresh_token"], desk.sftp.password,
               desk.env["CONNECTOR_FERNET_KEYS"]]
    everything = "\n".join(desk.outputs)
    for secret in planted:
        assert secret not in everything
