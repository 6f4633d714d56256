"""pytest fixtures for SFTP tests: a throwaway user, a real sshd per test, the bundled server.

Import them into a conftest with `from tests.support.sftp_fixtures import *`. Directories live under
one world-traversable folder in /tmp (not pytest's 0700 tmp_path), because sshd reads the
authorized_keys file and serves the import folders as the unprivileged test user.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import count
from pathlib import Path

import pytest

from connector.secret import Secret
from connector.sftp import SftpTarget
from sandbox.sftp import BundledSftpServer
from tests.support.sshd import Sshd, SystemUser, new_ed25519_key

__all__ = ["BundledSftp", "bundled_sftp", "import_dir", "sftp_user", "sftp_workspace", "sshd"]

_serial = count(1)


@pytest.fixture(scope="session")
def sftp_workspace() -> Iterator[Path]:
    """A folder every test user can traverse; removed at the end of the session."""
    base = Path(tempfile.mkdtemp(prefix="sftp-tests-"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def sftp_user() -> Iterator[SystemUser]:
    """A throwaway non-root login (root ignores permissions, so permission tests need one)."""
    user = SystemUser.create()
    yield user
    user.delete()


@pytest.fixture
def sshd(sftp_workspace: Path, sftp_user: SystemUser) -> Iterator[Sshd]:
    """A real OpenSSH sshd for this test alone, password and key login enabled for `sftp_user`."""
    server = Sshd(sftp_workspace / f"sshd-{next(_serial)}", sftp_user).start()
    yield server
    server.stop()


@pytest.fixture
def import_dir(sftp_workspace: Path, sftp_user: SystemUser) -> Path:
    """An empty import folder owned by `sftp_user`; its local path is also its remote path."""
    path = sftp_workspace / f"import-{next(_serial)}"
    path.mkdir()
    return sftp_user.own(path)


@dataclass(frozen=True)
class BundledSftp:
    """A running bundled server plus the credentials of its one user, as a test needs them."""

    server: BundledSftpServer
    username: str
    password: str
    private_key: str
    import_dir: str = "/stampli/import"

    def target(self, *, auth: str = "password", **overrides: object) -> SftpTarget:
        """An SftpTarget for this server; auth is "password", "key" or "both"."""
        values: dict[str, object] = {
            "host": self.server.host,
            "port": self.server.port,
            "username": self.username,
            "import_dir": self.import_dir,
            "host_key": self.server.host_key,
            "password": Secret(self.password) if auth in ("password", "both") else None,
            "private_key": Secret(self.private_key) if auth in ("key", "both") else None,
            "timeout": 5.0,
        }
        values.update(overrides)
        return SftpTarget(**values)  # type: ignore[arg-type]


@pytest.fixture
def bundled_sftp(tmp_path: Path) -> Iterator[BundledSftp]:
    """The bundled pure-Python server (user "stampli", password and key) with "/stampli/import" made."""
    private_key, public_key = new_ed25519_key()
    password = secrets.token_urlsafe(12)
    server = BundledSftpServer(tmp_path / "sftp-root", "stampli", password, public_key)
    server.ensure_dir("/stampli/import")
    with server:
        yield BundledSftp(server, "stampli", password, private_key)
