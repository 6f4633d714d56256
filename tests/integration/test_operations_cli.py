"""The operator's day through the `connector` command, against the real PostgreSQL: every command refuses
an unknown tenant the same way, reports carry `--json`, exit statuses follow the failure, the command
is quiet by default, and nothing it prints ever holds a secret."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from connector.cli import cli
from tests.support.operator import TENANT_ID, Operator, many_tenants

# --- Finding 7: an unknown tenant is refused by name, exit 2, before anything is done ------------------

@pytest.mark.parametrize("args", [
    ["status", "--tenant", "no-such-tenant"],
    ["holds", "list", "--tenant", "no-such-tenant"],
    ["holds", "release", "--tenant", "no-such-tenant", "--invoice", "x", "--why", "y"],
    ["reconcile", "--tenant", "no-such-tenant"],
    ["tenants", "set", "no-such-tenant", "--interval", "600"],
    ["mappings", "show", "--tenant", "no-such-tenant"],
    ["replay", "--invoice", "x", "--tenant", "no-such-tenant"],
], ids=lambda args: " ".join(args[:2]))
def test_every_command_refuses_an_unknown_tenant_by_name_with_exit_2(operator: Operator, args: list[str]) -> None:
    result = operator.run(*args)
    assert result.exit_code == 2, result.output
    assert "no such tenant: no-such-tenant" in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


# --- Finding 10: --json on every listing and report, --version, exit statuses, quiet ---------------------

def test_the_version_is_printed() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith("connector ")


def test_the_exit_statuses_are_documented_in_the_help() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for code in ("0", "1", "2", "3", "4"):
        assert f"\n    {code} " in result.output, result.output


def test_tenants_list_as_json(operator: Operator) -> None:
    result = operator.run("tenants", "list", "--json")
    assert result.exit_code == 0, result.output
    [tenant] = json.loads(result.stdout)
    assert tenant["id"] == TENANT_ID
    assert tenant["status"] == "ACTIVE"
    assert tenant["grant_id"] == operator.grant_id
    assert tenant["grant_status"] == "ACTIVE"
    assert tenant["sftp_target_id"] is None


def test_tenants_list_shows_the_master_data_kinds_a_tenant_sends(operator: Operator) -> None:
    assert operator.run("masterdata", "set", TENANT_ID, "--on", "purchase_orders", "--on", "vendors").exit_code == 0
    [tenant] = json.loads(operator.run("tenants", "list", "--json").stdout)
    assert tenant["master_data"] == ["vendors", "purchase_orders"]  # in the order a cycle makes their files
    assert "master_data=vendors,purchase_orders" in operator.run("tenants", "list").stdout
    shipped = Path(__file__).parents[2] / "connector" / "stampli" / "templates" / "vendors_xml.yaml"
    assert operator.run("masterdata", "set", TENANT_ID, "--template", f"vendors={shipped}").exit_code == 0


def test_status_and_holds_as_json(operator: Operator) -> None:
    status = operator.run("status", "--json", "--tenant", TENANT_ID)
    assert status.exit_code == 0, status.output
    assert set(json.loads(status.stdout)) >= {"attention", "bills_by_state", "held_by_class", "unmapped_accounts",
                                              "unmapped_tracking", "waiting_files", "changed_after_delivery", "files"}
    holds = operator.run("holds", "list", "--json")
    assert holds.exit_code == 0, holds.output
    assert json.loads(holds.stdout) == []


def test_a_refused_action_exits_4_with_the_reason_and_no_traceback(operator: Operator) -> None:
    result = operator.run("holds", "release", "--invoice", "no-such-bill", "--why", "checked")
    assert result.exit_code == 4, result.output
    assert result.stderr.startswith("error: 0 bills have InvoiceID no-such-bill")
    assert "Traceback" not in result.output


def test_the_command_is_quiet_by_default(operator: Operator) -> None:
    run = subprocess.run([sys.executable, "-m", "connector", "status"], env={**os.environ, **operator.env},
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""  # no "INFO [alembic.runtime.migration] …" on every command
    verbose = subprocess.run([sys.executable, "-m", "connector", "-v", "status"],
                             env={**os.environ, **operator.env}, capture_output=True, text=True, timeout=120,
                             check=False)
    assert verbose.returncode == 0


def test_after_make_run_the_demo_says_how_to_look_at_its_ledger(operator: Operator, tmp_path: Path) -> None:
    from sandbox.demo import look_around

    lines = look_around(tmp_path, {**operator.env, "CONNECTOR_BROKER_URL": "filesystem://"})
    env_file = tmp_path / "connector.env"
    assert f". {env_file}" in lines[0]
    assert "connector status" in lines[1]
    assert operator.env["CONNECTOR_FERNET_KEYS"] not in "\n".join(lines)
    assert env_file.stat().st_mode & 0o077 == 0
    looked = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
    assert "CONNECTOR_BROKER_URL" not in looked  # the demo's workers are gone: commands run in process
    assert CliRunner().invoke(cli, ["status"], env=looked).exit_code == 0


# --- Finding 10: the bundled SFTP server runs on its own and says how to deliver to it --------------------

def start_sandbox_sftp(home: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "connector", "sandbox", "sftp", "--port", "0", "--dir", str(home),
                             *args], env=dict(os.environ), text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def stop_cleanly(server: subprocess.Popen[str]) -> None:
    server.terminate()
    assert server.wait(timeout=30) == 0, server.stderr.read() if server.stderr else ""


def test_sandbox_sftp_prints_what_sftp_add_needs_and_keeps_its_host_key_across_restarts(
    operator: Operator, tmp_path: Path,
) -> None:
    home = tmp_path / "sandbox-sftp"
    server = start_sandbox_sftp(home)
    try:
        assert server.stdout is not None
        printed = [server.stdout.readline() for _ in range(10)]
    finally:
        stop_cleanly(server)
    fields = {line[:19].strip(): line[19:].strip() for line in printed if line.startswith("  ") and
              not line.strip().startswith("printf")}
    assert fields["host"] == "127.0.0.1"
    assert fields["user"] == "stampli"
    assert fields["import folder"] == "/import"
    assert fields["host key"].startswith("ssh-ed25519 AAAA")
    paste = printed[-1].strip()
    assert paste.startswith(f"printf '%s\\n' {fields['password']} | connector sftp add --host 127.0.0.1 --port ")
    assert "--host-key 'ssh-ed25519 AAAA" in paste
    assert "--password-stdin --tenant TENANT_ID" in paste

    server = start_sandbox_sftp(home, "--json")  # the same folder: the host key pinned before still holds
    try:
        assert server.stdout is not None
        details = json.loads(server.stdout.readline())
        assert details["host_key"] == fields["host key"]
        added = operator.run("sftp", "add", "--host", details["host"], "--port", str(details["port"]),
                             "--user", details["user"], "--import-dir", details["import_dir"],
                             "--host-key", details["host_key"], "--password-stdin", "--tenant", TENANT_ID,
                             stdin=details["password"] + "\n")
        assert added.exit_code == 0, added.output  # checked (connect, host key, login, writable) and stored
    finally:
        stop_cleanly(server)
    assert Path(details["files_land_in"]).is_dir()


# --- Finding 13: the commands that change tenants take many at once ---------------------------------------

def intervals(operator: Operator) -> dict[str, int]:
    from sqlalchemy import select

    from connector.store.models import Tenant

    with operator.ledger.transaction() as session:
        return dict(session.execute(select(Tenant.id, Tenant.poll_interval_seconds)).tuples().all())


def test_one_command_sets_the_cadence_of_a_thousand_tenants(operator: Operator) -> None:
    import time

    many_tenants(operator, 1000)
    started = time.monotonic()
    result = operator.run("tenants", "set", "--all-tenants", "--interval", "900")
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started < 30
    assert set(intervals(operator).values()) == {900}
    assert result.output.count(" updated\n") == 1001


def test_tenants_are_chosen_by_name_repeatedly_or_by_grant(operator: Operator) -> None:
    first, second, third = many_tenants(operator, 3)
    named = operator.run("tenants", "set", first, "--tenant", second, "--tenant", first, "--interval", "600")
    assert named.exit_code == 0, named.output
    assert named.output.count(f"tenant {first} updated") == 1  # each tenant once
    assert intervals(operator)[third] == 1800
    by_grant = operator.run("tenants", "set", "--grant", str(operator.grant_id), "--max-bills-per-file", "50")
    assert by_grant.exit_code == 0, by_grant.output
    assert by_grant.output.count(" updated\n") == 4


def test_one_unknown_tenant_or_grant_changes_no_tenant(operator: Operator) -> None:
    first, second = many_tenants(operator, 2)
    for args in (["tenants", "set", "--tenant", first, "--tenant", "no-such-tenant", "--tenant", second,
                  "--interval", "600"],
                 ["tenants", "set", "--grant", "999", "--interval", "600"],
                 ["tenants", "poll", "--tenant", first, "--tenant", "no-such-tenant"]):
        refused = operator.run(*args)
        assert refused.exit_code == 2, refused.output
        assert "no such" in refused.stderr
    assert [intervals(operator)[t] for t in (first, second)] == [1800, 1800]
    nothing = operator.run("tenants", "set", "--interval", "600")
    assert nothing.exit_code == 2
    assert "say which tenants" in nothing.stderr


def test_poll_skips_paused_tenants_it_reached_by_selection_but_refuses_one_named(operator: Operator) -> None:
    assert operator.run("tenants", "set", "--all-tenants", "--status", "PAUSED").exit_code == 0
    skipped = operator.run("tenants", "poll", "--all-tenants")
    assert skipped.exit_code == 0, skipped.output
    assert f"tenant {TENANT_ID}: PAUSED, not polled" in skipped.output
    refused = operator.run("tenants", "poll", "--tenant", TENANT_ID)
    assert refused.exit_code == 4
    assert "PAUSED" in refused.stderr


def test_a_map_is_imported_for_several_tenants_at_once(operator: Operator, tmp_path: Path) -> None:
    first, second = many_tenants(operator, 2)
    gl = tmp_path / "gl.csv"
    gl.write_text("xero_account_code,stampli_gl_code\n400,GL-400\n")
    result = operator.run("mappings", "import", "--tenant", first, "--tenant", second, "--gl", str(gl), "--json")
    assert result.exit_code == 0, result.output
    assert [(r["tenant_id"], r["gl_codes"]) for r in json.loads(result.output)] == [(first, 1), (second, 1)]
    for tenant_id in (first, second):
        shown = json.loads(operator.run("mappings", "show", "--tenant", tenant_id).output)
        assert shown["version"] == 1
