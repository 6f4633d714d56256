"""SFTP delivery cost over loopback: upload throughput and what one connection costs.

Measures `connector.sftp.deliver` against the bundled asyncssh server and, when run as root with
/usr/sbin/sshd present, against a throwaway OpenSSH sshd. The baseline is a plain TCP copy of the same
bytes over loopback in the same run, so the ratio says what SSH + SFTP + our checks cost on top of the
wire. Prints numbers only; asserts nothing.

    .venv/bin/python bench/sftp_throughput.py [--mib 64] [--connects 20] [--no-sshd]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from connector.secret import Secret
from connector.sftp import SftpSession, SftpTarget, deliver, open_session
from sandbox.sftp import BundledSftpServer

MIB = 1024 * 1024


def tcp_baseline(content: bytes) -> float:
    """Seconds to push `content` through a loopback TCP socket to a reader that discards it."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)

        def drain() -> None:
            conn, _ = listener.accept()
            with conn:
                while conn.recv(MIB):
                    pass

        reader = threading.Thread(target=drain)
        reader.start()
        started = time.perf_counter()
        with socket.create_connection(listener.getsockname()) as sender:
            sender.sendall(content)
        reader.join()
        return time.perf_counter() - started


def connect_cost(target: SftpTarget, rounds: int, *, check_writable: bool) -> float:
    """Median seconds for connect + host key check + auth + import-dir stat (+ write probe) + close."""
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        with SftpSession(target, check_writable=check_writable):
            pass
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def upload_seconds(target: SftpTarget, folder: Path, content: bytes, *, readback: bool) -> float:
    """Seconds for one `deliver` of `content` on an open session (connection cost excluded)."""
    digest = hashlib.sha256(content).hexdigest()
    name = f"bench_{time.monotonic_ns()}.csv"
    with open_session(target) as session:
        started = time.perf_counter()
        deliver(session, name, content, digest, readback_limit=len(content) if readback else 0)
        elapsed = time.perf_counter() - started
    (folder / name).unlink()
    return elapsed


def report(label: str, target: SftpTarget, folder: Path, content: bytes, connects: int, baseline: float) -> None:
    size_mb = len(content) / 1e6
    plain = min(upload_seconds(target, folder, content, readback=False) for _ in range(3))
    verified = min(upload_seconds(target, folder, content, readback=True) for _ in range(2))
    full = connect_cost(target, connects, check_writable=True)
    bare = connect_cost(target, connects, check_writable=False)
    print(f"{label}")
    print(f"  upload, size check only      {size_mb / plain:8.1f} MB/s   ({baseline / plain:.2f} x raw TCP)")
    print(f"  upload + sha256 read-back    {size_mb / verified:8.1f} MB/s   ({baseline / verified:.2f} x raw TCP)")
    print(f"  connect+auth+stat+probe      {full * 1000:8.1f} ms    (median of {connects})")
    print(f"  connect+auth+stat, no probe  {bare * 1000:8.1f} ms")


@contextlib.contextmanager
def bundled(workdir: Path) -> Iterator[tuple[SftpTarget, Path]]:
    server = BundledSftpServer(workdir / "root", "bench", "bench-password", None)
    folder = server.ensure_dir("/stampli/import")
    with server:
        yield SftpTarget("127.0.0.1", server.port, "bench", "/stampli/import", server.host_key,
                         Secret("bench-password"), None), folder


@contextlib.contextmanager
def openssh(workdir: Path) -> Iterator[tuple[SftpTarget, Path]]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support, when run as a script
    from tests.support.sshd import Sshd, SystemUser

    user = SystemUser.create()
    try:
        (workdir / "import").mkdir()
        folder = user.own(workdir / "import")
        server = Sshd(workdir / "sshd", user).start()
        try:
            yield server.target(folder, auth="key"), folder
        finally:
            server.stop()
    finally:
        user.delete()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=64, help="upload size in MiB (default 64)")
    parser.add_argument("--connects", type=int, default=20, help="connections to time (default 20)")
    parser.add_argument("--no-sshd", action="store_true", help="skip the OpenSSH sshd run")
    args = parser.parse_args()

    content = os.urandom(args.mib * MIB)
    baseline = min(tcp_baseline(content) for _ in range(3))
    print(f"SFTP delivery over loopback, {args.mib} MiB file")
    print(f"  baseline: raw TCP copy      {len(content) / 1e6 / baseline:8.1f} MB/s")
    servers: list[tuple[str, Callable[[Path], contextlib.AbstractContextManager[tuple[SftpTarget, Path]]]]]
    servers = [("bundled asyncssh server (password)", bundled)]
    if args.no_sshd:
        pass
    elif os.geteuid() == 0 and Path("/usr/sbin/sshd").is_file():
        servers.append(("OpenSSH sshd, internal-sftp (ed25519 key)", openssh))
    else:
        print("  (OpenSSH sshd run left out: it needs root and /usr/sbin/sshd)")
    for label, start in servers:
        workdir = Path(tempfile.mkdtemp(prefix="sftp-bench-"))
        workdir.chmod(0o755)
        try:
            with start(workdir) as (target, folder):
                report(label, target, folder, content, args.connects, baseline)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
