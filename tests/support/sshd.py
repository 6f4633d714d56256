"""A real OpenSSH sshd for tests: throwaway host key, loopback, free port, one throwaway system user.

The tests need the real server because its answers are what production sees: a bare "Failure" for a
rename onto an existing name or a full disk, EACCES for a read-only folder, a dropped connection when
the daemon dies. Starting one takes about 20 ms, so each test gets its own. Needs root (for `useradd`
and for sshd itself) and `/usr/sbin/sshd`; without them the fixture fails: tests never skip.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from connector.secret import Secret
from connector.sftp import SftpTarget

SSHD: Final = Path("/usr/sbin/sshd")
PRIVSEP_DIR: Final = Path("/run/sshd")
LOOPBACK: Final = "127.0.0.1"
USER_PREFIX: Final = "sftptest"
_START_TIMEOUT: Final = 10.0
_ids = count(1)
_users = count(1)


def new_ed25519_key() -> tuple[str, str]:
    """(private key in OpenSSH format, public key as "ssh-ed25519 AAAA...")."""
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, public.decode()


@dataclass(frozen=True)
class SystemUser:
    """A throwaway login with a password and an Ed25519 key, removed again with its home."""

    name: str
    password: str
    uid: int
    gid: int
    home: Path
    private_key: str
    public_key: str

    @classmethod
    def create(cls) -> SystemUser:
        _require_root("create a throwaway system user")
        _remove_stale_users()
        # One per fixture, not per process: the e2e and the integration conftests each hold a session
        # `sftp_user`, and one session running both (integration, e2e, integration again) re-made the other's
        # user under its name with a new password, so the first one's logins failed.
        name = f"{USER_PREFIX}{os.getpid()}x{next(_users)}"
        if _user_exists(name):
            _run(["userdel", "-r", name])
        # "*" (not "!") keeps key login possible under `UsePAM no`; chpasswd then sets a real password.
        _run(["useradd", "-m", "-p", "*", "-s", "/bin/sh", name])
        password = secrets.token_urlsafe(18)
        _run(["chpasswd"], stdin=f"{name}:{password}\n")
        private_key, public_key = new_ed25519_key()
        pw = _passwd_entry(name)
        return cls(name, password, int(pw[2]), int(pw[3]), Path(pw[5]), private_key, public_key)

    def delete(self) -> None:
        subprocess.run(["userdel", "-r", "-f", self.name], capture_output=True, check=False)

    def own(self, path: Path, mode: int = 0o755) -> Path:
        os.chown(path, self.uid, self.gid)
        path.chmod(mode)
        return path


@dataclass
class Sshd:
    """One `sshd -D -e` on 127.0.0.1 that can be stopped, killed and started again on the same port."""

    workdir: Path
    user: SystemUser
    password_auth: bool = True
    #: SFTP requests the server refuses, like a locked-down production server: no chmod after upload,
    #: and no overwriting posix-rename, so a test passes only if the client never relies on either.
    denied_requests: tuple[str, ...] = ("setstat", "fsetstat", "lsetstat", "posix-rename")
    port: int = 0
    host_key: str = ""
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not SSHD.is_file():
            raise RuntimeError(f"{SSHD} is missing: install Debian's openssh-server (`make services` does)")
        _require_root("run a throwaway sshd")
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o755)  # sshd reads authorized_keys as the user
        private, self.host_key = new_ed25519_key()
        key_file = self.workdir / "ssh_host_ed25519_key"
        key_file.write_text(private)
        key_file.chmod(0o600)
        (self.workdir / "authorized_keys").write_text(self.user.public_key + "\n")
        (self.workdir / "authorized_keys").chmod(0o644)
        self.port = self.port or free_port()

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_path(self) -> Path:
        return self.workdir / "sshd.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self) -> Sshd:
        """Start sshd and wait until it listens; raises with sshd's own log if it does not."""
        if self.running:
            return self
        config = self.workdir / "sshd_config"
        config.write_text(self._config())
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [str(SSHD), "-D", "-e", "-f", str(config)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            )
        deadline = time.monotonic() + _START_TIMEOUT
        listening = f"Server listening on {LOOPBACK} port {self.port}".encode()
        while listening not in (since_start := self.log_path.read_bytes()[offset:]):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self._reap(signal.SIGKILL)
                raise RuntimeError(f"sshd did not start on port {self.port}:\n{since_start.decode(errors='replace')}")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        """Stop sshd and every session it forked (close clients first: this is not a crash test)."""
        self._reap(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL sshd and all its session processes at once: the server dies mid-whatever."""
        self._reap(signal.SIGKILL)

    def restart(self) -> Sshd:
        self.stop()
        return self.start()

    def target(self, import_dir: str | Path, *, auth: str = "password", **overrides: object) -> SftpTarget:
        """An SftpTarget for this server and user; auth is "password", "key" or "both"."""
        values: dict[str, object] = {
            "host": self.host,
            "port": self.port,
            "username": self.user.name,
            "import_dir": str(import_dir),
            "host_key": self.host_key,
            "password": Secret(self.user.password) if auth in ("password", "both") else None,
            "private_key": Secret(self.user.private_key) if auth in ("key", "both") else None,
            "timeout": 5.0,
        }
        values.update(overrides)
        return SftpTarget(**values)  # type: ignore[arg-type]

    def _config(self) -> str:
        return "\n".join([
            f"ListenAddress {LOOPBACK}",
            f"Port {self.port}",
            f"HostKey {self.workdir / 'ssh_host_ed25519_key'}",
            f"PidFile {self.workdir / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.workdir / 'authorized_keys'}",
            "UsePAM no",
            "StrictModes no",
            f"PasswordAuthentication {'yes' if self.password_auth else 'no'}",
            "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes",
            "PermitRootLogin prohibit-password",
            "LogLevel VERBOSE",
            f"Subsystem sftp internal-sftp -P {','.join(self.denied_requests)}"
            if self.denied_requests else "Subsystem sftp internal-sftp",
            "",
        ])

    def _reap(self, sig: signal.Signals) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        # Session children call setsid(), so the process group does not reach them: walk /proc instead,
        # before the listener dies and its children are re-parented out of sight.
        victims = [*_descendants(proc.pid), proc.pid]
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        _wait_gone([pid for pid in victims if pid != proc.pid], sig)


def free_port() -> int:
    """A loopback port free right now (sshd binds it a few ms later; collisions are vanishingly rare)."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def small_filesystem(path: Path, size: int, owner: SystemUser) -> Iterator[Path]:
    """Mount a tmpfs of `size` bytes at `path`, owned by `owner`: a disk that fills up for real."""
    _require_root("mount a tmpfs")
    path.mkdir(parents=True, exist_ok=True)
    _run(["mount", "-t", "tmpfs", "-o", f"size={size},uid={owner.uid},gid={owner.gid},mode=0755",
          "tmpfs", str(path)])
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(children.get(child, []))
    return found


def _wait_gone(pids: list[int], sig: signal.Signals) -> None:
    """Session processes are not our children; wait (briefly) until the kernel has removed them."""
    deadline = time.monotonic() + 5
    for pid in pids:
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.005)
        if _alive(pid) and sig != signal.SIGKILL:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise RuntimeError(f"the SFTP integration tests must run as root to {what}")


def _run(argv: list[str], stdin: str | None = None) -> None:
    if shutil.which(argv[0]) is None:
        raise RuntimeError(f"{argv[0]} is missing")
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stderr.strip()}")


def _passwd_entry(name: str) -> list[str]:
    for line in Path("/etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return fields
    raise RuntimeError(f"user {name} was not created")


def _user_exists(name: str) -> bool:
    return any(line.split(":", 1)[0] == name for line in Path("/etc/passwd").read_text().splitlines())


def _remove_stale_users() -> None:
    """Delete users left by earlier runs that were killed before their teardown (their pid is gone)."""
    for line in Path("/etc/passwd").read_text().splitlines():
        match = re.fullmatch(rf"{USER_PREFIX}(\d+)(?:x\d+)?", line.split(":", 1)[0])
        if match and int(match[1]) != os.getpid() and not Path(f"/proc/{match[1]}").exists():
            subprocess.run(["userdel", "-r", "-f", match[0]], capture_output=True, check=False)
