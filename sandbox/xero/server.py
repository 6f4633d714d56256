"""The threaded werkzeug server that carries the sandbox, in a background thread or the foreground."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication


class _QuietHandler(WSGIRequestHandler):
    """No access log: tests make thousands of calls. Errors still reach werkzeug's logger."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


class SandboxServer:
    """Binds at once (so the port is known), serves until `shutdown`."""

    def __init__(self, app: WSGIApplication, host: str = "127.0.0.1", port: int = 0, *, access_log: bool = False):
        try:
            self._server: BaseWSGIServer = make_server(
                host, port, app, threaded=True, request_handler=None if access_log else _QuietHandler
            )
        except SystemExit as exc:  # werkzeug prints the reason and exits when the port is taken
            raise OSError(f"cannot listen on {host}:{port}") from exc
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="xero-sandbox", daemon=True)
        self._thread.start()

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def shutdown(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()
