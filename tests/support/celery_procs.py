"""Real `celery worker` and `celery beat` processes for end-to-end tests (never eager mode)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


class CeleryProcess:
    def __init__(self, role: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.role = role
        self.log = log
        self._handle = log.open("wb")
        self.process = subprocess.Popen(
            argv, env=env, cwd=REPO, stdout=self._handle, stderr=subprocess.STDOUT, start_new_session=True
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 30.0) -> None:
        if self.alive():
            os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._handle.close()

    def shut_down(self, timeout: float = 30.0) -> None:
        """A warm shutdown, as a deploy's: SIGTERM to the main process only, which lets the tasks in flight
        finish (or die at an armed failpoint) before it exits. `stop`'s SIGTERM to the whole group kills the
        pool's children at once, wherever they are (between a delivery's fence and its rename, say)."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._handle.close()

    def kill(self) -> None:
        """SIGKILL the whole process group, as a node failure or an OOM kill would."""
        self.stop(signal.SIGKILL)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


ALL_QUEUES: tuple[str, ...] = ("poll", "map", "batch", "sftp")


def start_celery(role: str, env: dict[str, str], logs: Path, *extra: str,
                 queues: tuple[str, ...] = ALL_QUEUES, concurrency: int = 2,
                 env_override: dict[str, str] | None = None) -> CeleryProcess:
    """Start a `celery worker` (consuming `queues`) or `celery beat`; the caller stops it.

    `env_override` is laid over `env` for this process only (e.g. a failpoint armed in one worker)."""
    base = [sys.executable, "-m", "celery", "-A", "workers.app"]
    label = role if role != "worker" or queues == ALL_QUEUES else f"worker-{'+'.join(queues)}"
    if role == "worker":
        argv = [*base, "worker", "-Q", ",".join(queues), "-c", str(concurrency),
                "-n", f"e2e-{'-'.join(queues)}-{time.monotonic_ns()}@%h",
                "--without-mingle", "--without-gossip", "--loglevel", "INFO", *extra]
    else:
        argv = [*base, "beat", "--loglevel", "INFO", "-s", str(logs / f"beat-{time.monotonic_ns()}"), *extra]
    logs.mkdir(parents=True, exist_ok=True)
    return CeleryProcess(label, argv, {**os.environ, **env, **(env_override or {})},
                         logs / f"{label}-{time.monotonic_ns()}.log")


@contextmanager
def celery(role: str, env: dict[str, str], logs: Path, *extra: str, queues: tuple[str, ...] = ALL_QUEUES,
           env_override: dict[str, str] | None = None) -> Iterator[CeleryProcess]:
    process = start_celery(role, env, logs, *extra, queues=queues, env_override=env_override)
    try:
        yield process
    finally:
        process.stop()


def wait_until(condition: Callable[[], bool], timeout: float, what: str,
               processes: tuple[CeleryProcess, ...] = (), state: Callable[[], object] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        for process in processes:
            if not process.alive():
                raise AssertionError(f"celery {process.role} died:\n{process.output()[-3000:]}")
        time.sleep(0.25)
    logs = "\n".join(f"--- {p.role} ---\n{_interesting(p.output())}" for p in processes)
    raise AssertionError(f"timed out waiting for {what}; state: {state() if state else '?'}\n{logs}")


def _interesting(log: str) -> str:
    """The log without the once-a-second beat chatter, last lines first in importance."""
    chatter = ("dispatch_due_polls", "dispatch-due-polls", "connector.sweep", "Sending due task sweep",
               "refresh_grants", "refresh-grants")
    lines = [line for line in log.splitlines() if not any(word in line for word in chatter)]
    return "\n".join(lines[-60:])
