"""`python -m sandbox.xero` (the `connector sandbox xero` command) prints a working consent."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from click.testing import CliRunner

from connector.domain.webhooks import signature_valid
from sandbox.xero.cli import xero_command

pytestmark = pytest.mark.sandbox


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "sandbox.xero", "--port", "0", "--tenants", "2",
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


class _Receiver(BaseHTTPRequestHandler):
    """Answers as Xero requires of a receiver: 200 and an empty body when signed with KEY, else 401."""

    bodies: list[bytes] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        good = signature_valid(body, self.headers.get("x-xero-signature"), WEBHOOK_KEY)
        if good:
            self.bodies.append(body)
        self.send_response(200 if good else 401)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


WEBHOOK_KEY = "cli-webhook-key-" + "c" * 72


def test_webhook_url_sends_signed_webhooks_once_a_late_receiver_passes_the_intent_check() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox.xero", "--port", "0", "--tenants", "1", "--bills", "5", "--json",
         "--webhook-url", f"http://127.0.0.1:{port}/webhooks/xero"], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env={**os.environ, "CONNECTOR_XERO_WEBHOOK_KEY": WEBHOOK_KEY})
    receiver = ThreadingHTTPServer(("127.0.0.1", port), _Receiver)
    try:
        assert process.stdout is not None
        consent = json.loads(process.stdout.readline())
        assert consent["webhook"] == {"url": f"http://127.0.0.1:{port}/webhooks/xero", "key": None}, \
            "a key given in the environment is never printed"
        time.sleep(0.5)  # the first intent-to-receive check finds nobody listening
        threading.Thread(target=receiver.serve_forever, daemon=True).start()
        deadline = time.monotonic() + 15
        while not _Receiver.bodies and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [json.loads(body)["events"] for body in _Receiver.bodies] == [[]], "the intent-to-receive check"
        admin = str(consent["urls"]["admin"])  # type: ignore[index]
        assert requests.post(f"{admin}/update", json={"modify": 1}, timeout=10).status_code == 200
        while len(_Receiver.bodies) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        [event] = json.loads(_Receiver.bodies[1])["events"]
        assert (event["eventCategory"], event["eventType"]) == ("INVOICE", "UPDATE")
    finally:
        receiver.shutdown()
        receiver.server_close()
        process.terminate()
        process.wait(timeout=10)
