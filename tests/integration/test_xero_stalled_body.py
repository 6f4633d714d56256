"""A Xero answer whose headers arrive and whose body then stalls past the request timeout is a hang, like
one that never answers: given up after one timeout (XeroTimedOut, tried again by the task's backoff), not
retried inline three times while a poll process is held."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from connector.errors import XeroTimedOut
from connector.secret import Secret
from connector.xero.budget import LocalLeases, RateBudget
from connector.xero.client import XeroApi


class StallingServer:
    """Answers every request with headers promising a body, sends half of it, then goes quiet."""

    def __init__(self, stall_seconds: float) -> None:
        self.requests = 0
        self._stall = stall_seconds
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/api.xro/2.0"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: socket.socket) -> None:
        with connection:
            connection.recv(65536)
            self.requests += 1
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
                               b'{"Invoices": [')
            time.sleep(self._stall)

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def stalling() -> Iterator[StallingServer]:
    server = StallingServer(stall_seconds=6.0)
    yield server
    server.close()


@pytest.mark.parametrize("call", ["get", "get_file"])
def test_a_body_that_stalls_after_the_headers_costs_one_timeout(stalling: StallingServer, call: str) -> None:
    api = XeroApi(requests.Session(), stalling.url, timeout=0.5, budget=RateBudget("memory://", LocalLeases()))
    calls = {"get": lambda: api.get(Secret("token"), "tenant-1", "Invoices", {"page": 1}),
             "get_file": lambda: api.get_file(Secret("token"), "tenant-1", "Invoices/x/Attachments/y",
                                              "application/pdf")}
    began = time.monotonic()
    with pytest.raises(XeroTimedOut, match="Invoices"):
        calls[call]()
    assert stalling.requests == 1, "not retried inline"
    assert time.monotonic() - began < 4.0, "gave up after its timeout, not when the stall ended"
