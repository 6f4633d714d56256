"""The bundled SFTP server of `make run`: pure Python, no root, one user, files kept under one folder.

It stands in for Stampli's import folder in the demo and in tests that need no real OpenSSH. asyncssh
serves SFTP with a virtual chroot, on loopback, from its own event loop in a background thread, so the
synchronous connector talks to it exactly as to a real server: host key pinned, password or key.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import threading
from pathlib import Path
from types import TracebackType
from typing import Final

import asyncssh

_START_TIMEOUT: Final = 10.0
_STOP_TIMEOUT: Final = 10.0


class BundledSftpServer:
    """An SFTP server chrooted to `root` for one user; `port=0` picks a free loopback port."""

    def __init__(
        self,
        root: Path,
        username: str,
        password: str | None,
        authorized_key: str | None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        host_key_file: Path | None = None,
        sftp_server_class: type[asyncssh.SFTPServer] = asyncssh.SFTPServer,
    ) -> None:
        if password is None and authorized_key is None:
            raise ValueError("the bundled SFTP server needs a password or an authorized key for its user")
        self.root = Path(root).resolve()
        self.username = username
        self.host = host
        self._password = password
        self._authorized = asyncssh.import_authorized_keys(authorized_key) if authorized_key else None
        self._requested_port = port
        self._key = _host_key(host_key_file)
        self._sftp_class = sftp_server_class  # tests inject faults (a failing rename, a lost write) here
        self._port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self._connections: set[asyncssh.SSHServerConnection] = set()

    def __repr__(self) -> str:
        return f"BundledSftpServer({self.username}@{self.host}:{self._port}, root={str(self.root)!r})"

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the bundled SFTP server is not running")
        return self._port

    @property
    def host_key(self) -> str:
        """The public host key as "ssh-ed25519 AAAA...", the value a target pins."""
        return " ".join(self._key.export_public_key("openssh").decode().split()[:2])

    def local_path(self, remote_path: str) -> Path:
        """Where a path seen by SFTP clients lives on local disk (inside `root`)."""
        return self.root.joinpath(*[part for part in remote_path.split("/") if part not in ("", ".", "..")])

    def ensure_dir(self, remote_path: str) -> Path:
        """Create a directory (e.g. the import folder "/stampli/import") as clients will see it."""
        path = self.local_path(remote_path)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def start(self) -> None:
        """Listen and return once the port is bound; raises what the server raised if it could not.

        Starting a running server does nothing, so `with server:` followed by `server.start()` is fine.
        """
        if self._thread is not None:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                self._acceptor = loop.run_until_complete(self._listen())
                self._port = self._acceptor.get_port()
            except BaseException as exc:  # handed to the starting thread
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                _drain(loop)

        self._loop = loop
        self._thread = threading.Thread(target=run, name=f"bundled-sftp-{self.username}", daemon=True)
        self._thread.start()
        if not ready.wait(_START_TIMEOUT):
            raise RuntimeError("the bundled SFTP server did not start in time")
        if failure:
            self._thread.join()
            self._thread = self._loop = None
            raise failure[0]

    def stop(self) -> None:
        """Close every client connection and the listener, then end the loop's thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(_STOP_TIMEOUT)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(_STOP_TIMEOUT)
            self._loop = self._thread = self._acceptor = None
            self._port = None

    def __enter__(self) -> BundledSftpServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def _listen(self) -> asyncssh.SSHAcceptor:
        chroot = os.fsencode(self.root)

        def sftp_factory(chan: asyncssh.SSHServerChannel[bytes]) -> asyncssh.SFTPServer:
            return self._sftp_class(chan, chroot=chroot)

        return await asyncssh.listen(
            self.host,
            self._requested_port,
            server_host_keys=[self._key],
            server_factory=lambda: _OneUser(self),
            sftp_factory=sftp_factory,
            allow_scp=False,
            agent_forwarding=False,
            x11_forwarding=False,
            allow_pty=False,
            login_timeout=30,
        )

    async def _shutdown(self) -> None:
        if self._acceptor is not None:
            self._acceptor.close()
            await self._acceptor.wait_closed()
        connections = list(self._connections)
        for conn in connections:
            conn.close()
        for conn in connections:
            await conn.wait_closed()


class _OneUser(asyncssh.SSHServer):
    """Authenticates the one configured user by password or authorized key; nobody else."""

    def __init__(self, server: BundledSftpServer) -> None:
        self._server = server
        self._conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._server._connections.add(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None:
            self._server._connections.discard(self._conn)

    def begin_auth(self, username: str) -> bool:
        if self._conn is not None and username == self._server.username and self._server._authorized:
            self._conn.set_authorized_keys(self._server._authorized)
        return True  # authentication is always required

    def password_auth_supported(self) -> bool:
        return self._server._password is not None

    def validate_password(self, username: str, password: str) -> bool:
        expected = self._server._password
        if expected is None:
            return False
        same_password = hmac.compare_digest(password.encode(), expected.encode())
        return same_password and username == self._server.username


def _host_key(path: Path | None) -> asyncssh.SSHKey:
    """A fresh Ed25519 host key, or the one kept at `path` so a demo's pinned key survives restarts."""
    if path is not None and path.exists():
        return asyncssh.read_private_key(path)
    key = asyncssh.generate_private_key("ssh-ed25519")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(key.export_private_key())
    return key


def _drain(loop: asyncio.AbstractEventLoop) -> None:
    """Let cancelled tasks finish so closing the loop leaves no pending-task warnings behind."""
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()
