"""`python -m connector.sandbox.xero` (the `connector sandbox xero` command) prints a working consent."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
import requests
from click.testing import CliRunner

from connector.sandbox.xero.cli import xero_command

pytestmark = pytest.mark.sandbox


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "connector.sandbox.xero", "--port", "0", "--tenants", "2",
                             "--bills", "30", *args], stdout=subprocess.PIPE, text=True)


@pytest.fixture
def json_server() -> Iterator[dict[str, object]]:
    process = _start("--json", "--seed", "5")
    try:
        assert process.stdout is not None
        yield json.loads(process.stdout.readline())
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_json_consent_works_against_the_running_server(json_server: dict[str, object]) -> None:
    consent = json_server
    assert set(consent) >= {"client_id", "client_secret", "refresh_token", "tenant_ids", "urls"}
    urls = consent["urls"]
    assert isinstance(urls, dict)
    assert set(urls) >= {"authorize", "token", "connections", "api"}
    assert str(urls["api"]).endswith("/api.xro/2.0")
    auth = (str(consent["client_id"]), str(consent["client_secret"]))
    token = requests.post(str(urls["token"]), timeout=10, auth=auth,
                          data={"grant_type": "refresh_token", "refresh_token": consent["refresh_token"]})
    assert token.status_code == 200
    tenants = consent["tenant_ids"]
    assert isinstance(tenants, list)
    assert len(tenants) == 2
    bills = requests.get(f"{urls['api']}/Invoices", params={"where": 'Type=="ACCPAY"'}, timeout=10, headers={
        "Authorization": f"Bearer {token.json()['access_token']}", "xero-tenant-id": tenants[0]})
    assert len(bills.json()["Invoices"]) == 30


def test_human_output_names_urls_and_tenants() -> None:
    process = _start()
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(13)]
    finally:
        process.terminate()
        process.wait(timeout=10)
    text = "".join(lines)
    assert "token URL" in text
    assert "refresh token" in text
    assert text.count("tenant ") == 2
    assert "Serving until interrupted" in text


def test_help_lists_the_options() -> None:
    result = CliRunner().invoke(xero_command, ["--help"])
    assert result.exit_code == 0
    for option in ("--port", "--seed", "--tenants", "--bills", "--time-scale", "--host", "--json"):
        assert option in result.output


def test_a_taken_port_is_a_clean_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(xero_command, ["--port", str(port), "--bills", "0", "--tenants", "1"])
    assert result.exit_code == 1
    assert "cannot listen" in result.output
