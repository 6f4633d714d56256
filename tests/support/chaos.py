"""The chaos driver: the connector run as an operator runs it, broken on purpose, then counted.

One `celery worker` per queue and one beat on Redis and PostgreSQL, the Xero sandbox, a real sshd whose
import folder a "Stampli importer" thread empties seconds after each file lands. A director injects
faults at chosen points (a worker SIGKILLed while it polls, maps, renders or uploads; a crash between the
remote rename and the database write; Redis losing every message; sshd down; a message delivered twice;
two beats; Xero 5xx, 429 bursts and expired tokens) and at random moments drawn from a seed. At the end
every InvoiceID in every file the importer took is counted against the ledger and Xero.

The seed decides which faults fire and when (relative to the run's own progress), so a failing run can
be repeated with `CONNECTOR_CHAOS_SEED`. Process timing is never fully repeatable; the fault log says
exactly what landed when.
"""

from __future__ import annotations

import csv
import io
import os
import random
import re
import secrets
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Final

import redis
import yaml
from celery import Celery
from kombu.entity import Exchange, Queue
from sqlalchemy import select

import connector.stampli.templates as bundled_templates
from connector.domain.states import IN_FLIGHT, BatchState, BillState
from connector.domain.tenants import PollEvent
from connector.services.context import Services
from connector.store.models import (
    Batch,
    Bill,
    MasterDataRecord,
    OperationalEvent,
    Tenant,
    Watermark,
    XeroGrant,
    utcnow,
)
from sandbox.xero import XeroSandbox
from tests.support.celery_procs import CeleryProcess, start_celery
from tests.support.sshd import Sshd

SIZE_ENV: Final = "CONNECTOR_CHAOS_SIZE"
SEED_ENV: Final = "CONNECTOR_CHAOS_SEED"
SKIP_ENV: Final = "CONNECTOR_CHAOS_SKIP"  # comma-separated fault kinds to leave out, to narrow a failure down
QUEUES: Final = ("poll", "map", "batch", "sftp")
FAILPOINT_AFTER_RENAME: Final = "deliver.after_rename"
RETRY_AFTER_SECONDS: Final = 2  # what each forced 429 asks the connector to wait

#: Words a FAILED batch's recorded reason must contain for its bills to be excused from "exactly once":
#: the delivery core asks a person only where the evidence truly cannot decide, and says so.
UNDECIDABLE_MARKERS: Final = ("cannot decide", "could not decide")

#: The task each queue's kill aims at ("during poll, map, batch render and upload").
_WORK_OF_QUEUE: Final = {"poll": "connector.poll_tenant", "map": "connector.map_invoice",
                         "batch": "connector.assemble_batch", "sftp": "connector.deliver_batch"}
_TASK_LINE: Final = re.compile(rb"Task (connector\.\w+)\[([0-9a-f-]+)\] (received|succeeded|retry|raised|failed)")
_WORKER_LOST: Final = (b"exitcode 137", b"WorkerLostError", b"signal 9")


@dataclass(frozen=True)
class ChaosSize:
    """How big and how rough one run is."""

    name: str
    bills: int                      # the sandbox's data set, per tenant
    wave: int                       # bills Xero gains at the start of each later round
    rounds: int                     # each round arms every chosen kill again
    bills_per_file: int
    round_seconds: float            # a round ends sooner once its work has settled; unfired faults are missed
    random_faults: int              # extra faults per round, kinds and moments drawn from the seed
    sshd_outage_seconds: float
    two_beats_seconds: float
    xero_error_rate: float          # random 500/503 answers on the Accounting API
    settle_seconds: float           # after the last round, the ledger must settle within this
    cadence_seconds: int            # the tenant's poll interval: what brings each round's new bills at the latest
    delivery_seconds: int           # the delivery time limit: room for one file of bills_per_file on a busy box


SIZES: Final = {
    # The settle window outlasts a file's delivery backoff after six failed tries (80 to 160 s): on a loaded
    # machine a master-data file can fail that often in a short run (sshd down, kills, timeouts), and the
    # bill files behind it wait for it as they must; a run that settles sooner ends sooner (seen failing at
    # 60 s under parallel runners, seed 192081, which settles in time on a quiet machine).
    # A round ends once its work has settled, so round_seconds only bounds a starved one: 75 s lets a short
    # run on a loaded 2-core machine (parallel test runners, other jobs) still reach the upload its sftp
    # faults wait for, where 45 s ended rounds before the first delivery (seen at load average 10-17).
    "short": ChaosSize("short", bills=160, wave=30, rounds=2, bills_per_file=20, round_seconds=75,
                       random_faults=2, sshd_outage_seconds=4, two_beats_seconds=5, xero_error_rate=0.05,
                       settle_seconds=180, cadence_seconds=20, delivery_seconds=6),
    "long": ChaosSize("long", bills=10_000, wave=250, rounds=6, bills_per_file=400, round_seconds=300,
                      random_faults=6, sshd_outage_seconds=60, two_beats_seconds=60, xero_error_rate=0.1,
                      settle_seconds=1200, cadence_seconds=120, delivery_seconds=60),
}


def chosen_size() -> ChaosSize:
    name = os.environ.get(SIZE_ENV, "short")
    if name not in SIZES:
        raise ValueError(f"{SIZE_ENV}={name!r}: choose one of {', '.join(SIZES)}")
    return SIZES[name]


def skipped_faults() -> set[str]:
    return {kind.strip() for kind in os.environ.get(SKIP_ENV, "").split(",") if kind.strip()}


def chosen_seed() -> int:
    value = os.environ.get(SEED_ENV)
    return int(value) if value else secrets.randbelow(1_000_000)


# --- what was injected ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Injection:
    at: float          # seconds since the run started
    kind: str
    detail: str
    landed: bool       # False: armed, but its moment never came


class FaultLog:
    """Every fault with its time and kind, printed at the end whatever happened."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.entries: list[Injection] = []
        self._lock = threading.Lock()

    def now(self) -> float:
        return time.monotonic() - self.started

    def record(self, kind: str, detail: str = "", *, landed: bool = True) -> None:
        with self._lock:
            self.entries.append(Injection(round(self.now(), 2), kind, detail, landed))

    def landed(self, kind: str) -> int:
        return sum(1 for e in self.entries if e.kind == kind and e.landed)

    def table(self) -> str:
        lines = [f"{'t (s)':>8}  {'fault':<28} detail"]
        lines += [f"{e.at:8.2f}  {e.kind:<28} {'' if e.landed else '(MISSED) '}{e.detail}" for e in self.entries]
        return "\n".join(lines)


# --- Stampli's importer --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TakenFile:
    name: str
    path: Path
    at: float


class StampliImporter(threading.Thread):
    """Lists the import folder every `interval` seconds and takes each finished file away a few seconds
    after it lands, as Stampli's importer does. Every file is kept; a name taken twice is kept under a
    counter (a name arriving twice is itself a duplicate)."""

    def __init__(self, import_dir: Path, taken_dir: Path, seed: int, *, interval: float = 0.5,
                 linger: tuple[float, float] = (0.5, 3.0)) -> None:
        super().__init__(name="stampli-importer", daemon=True)
        self.import_dir, self.taken_dir = import_dir, taken_dir
        self.interval, self.linger = interval, linger
        self.taken: list[TakenFile] = []
        self.names_twice: list[str] = []
        self._rng = random.Random(f"chaos/importer/{seed}")
        self._first_seen: dict[str, tuple[float, float]] = {}
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self.started_at = time.monotonic()
        taken_dir.mkdir(parents=True, exist_ok=True)

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            self.take_due()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)

    def waiting(self) -> list[str]:
        """Finished files still in the import folder (not `.part`)."""
        return sorted(p.name for p in self.import_dir.iterdir() if not p.name.endswith(".part"))

    def take_due(self, *, everything: bool = False) -> None:
        now = time.monotonic()
        names = self.waiting()
        for name in names:
            if name.endswith(".sha256") and name.removesuffix(".sha256") in names:
                continue  # a sidecar goes with its file
            seen, linger = self._first_seen.setdefault(name, (now, self._rng.uniform(*self.linger)))
            if everything or now - seen >= linger:
                self._take(name)
                sidecar = name + ".sha256"
                if sidecar in names:
                    self._take(sidecar)

    def _take(self, name: str) -> None:
        self._first_seen.pop(name, None)
        destination = self.taken_dir / name
        with self._lock:
            if destination.exists():
                self.names_twice.append(name)
                n = 2
                while (destination := self.taken_dir / f"{name}.again{n}").exists():
                    n += 1
            try:
                shutil.move(str(self.import_dir / name), str(destination))
            except FileNotFoundError:
                return  # gone between the listing and the move: nothing was taken
            self.taken.append(TakenFile(name, destination, time.monotonic() - self.started_at))

    def taken_files(self) -> list[TakenFile]:
        with self._lock:
            return list(self.taken)


def invoice_id_column() -> str:
    """The default CSV template's column that carries the Xero InvoiceID (its source is `invoice_id`)."""
    template = yaml.safe_load((Path(bundled_templates.__file__).parent / "default_csv.yaml").read_text())
    return next(str(c["name"]) for c in template["columns"] if c["source"] == "invoice_id")


def invoice_ids_in(path: Path, column: str) -> list[str]:
    """The bills in one taken file, each once, in file order (a bill's lines repeat its header fields);
    none in a master-data file."""
    rows = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"), newline=""))
    if rows.fieldnames and column not in rows.fieldnames:
        return []
    return list(dict.fromkeys(row[column] for row in rows))


#: The default master-data templates' key column of each kind, in the order a file's header is tried.
MASTER_KEYS: Final = (("purchase_orders", "XeroPurchaseOrderID"), ("gl_accounts", "XeroAccountID"),
                      ("dimensions", "XeroTrackingOptionID"), ("vendors", "XeroVendorID"))


def master_rows_in(path: Path) -> tuple[str, dict[str, tuple[tuple[str, ...], ...]]] | None:
    """A taken master-data file's kind and, per record key, its rows (a PO has one per line); None for a
    bill file."""
    rows = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"), newline=""))
    fields = rows.fieldnames or []
    if "XeroInvoiceID" in fields:
        return None
    kind, column = next(((k, c) for k, c in MASTER_KEYS if c in fields), ("", ""))
    if not kind:
        return None
    found: dict[str, tuple[tuple[str, ...], ...]] = {}
    for row in rows:
        found[row[column]] = (*found.get(row[column], ()), tuple(row.values()))
    return kind, found


# --- the processes -------------------------------------------------------------------------------------


class LogTail:
    """Reads a worker's log as it grows: which connector tasks are running, and whether a child died."""

    def __init__(self, process: CeleryProcess) -> None:
        self.process = process
        self._offset = 0
        self._open: dict[str, str] = {}  # task id -> task name
        self.worker_lost = False

    def refresh(self) -> None:
        try:
            with self.process.log.open("rb") as log:
                log.seek(self._offset)
                chunk = log.read()
        except FileNotFoundError:
            return
        cut = chunk.rfind(b"\n") + 1
        self._offset += cut
        chunk = chunk[:cut]
        for name, task_id, event in _TASK_LINE.findall(chunk):
            if event == b"received":
                self._open[task_id.decode()] = name.decode()
            else:
                self._open.pop(task_id.decode(), None)
        if any(mark in chunk for mark in _WORKER_LOST):
            self.worker_lost = True

    def running(self, task: str) -> bool:
        return task in self._open.values()


class Cluster:
    """One worker per queue and the beat(s), each killable and restartable on its own."""

    CONCURRENCY: Final = {"poll": 2, "map": 2, "batch": 1, "sftp": 1}

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.workers: dict[str, CeleryProcess] = {}
        self.tails: dict[str, LogTail] = {}
        self.beats: list[CeleryProcess] = []
        self.retired: list[CeleryProcess] = []

    def start(self) -> None:
        for queue in QUEUES:
            self.start_worker(queue)
        self.start_beat()

    def start_worker(self, queue: str, env_override: dict[str, str] | None = None) -> None:
        process = start_celery("worker", self.env, self.logs, queues=(queue,),
                               concurrency=self.CONCURRENCY[queue], env_override=env_override)
        self.workers[queue] = process
        self.tails[queue] = LogTail(process)

    def kill_worker(self, queue: str) -> None:
        """SIGKILL of the worker's whole process group, as a node failure or the OOM killer does."""
        process = self.workers[queue]
        process.kill()
        self.retired.append(process)

    def stop_worker(self, queue: str) -> None:
        process = self.workers[queue]
        process.stop()
        self.retired.append(process)

    def start_beat(self) -> CeleryProcess:
        beat = start_celery("beat", self.env, self.logs)
        self.beats.append(beat)
        return beat

    def stop_beat(self, beat: CeleryProcess) -> None:
        beat.stop()
        self.beats.remove(beat)
        self.retired.append(beat)

    def refresh(self) -> None:
        for tail in self.tails.values():
            tail.refresh()

    def dead(self) -> list[CeleryProcess]:
        return [p for p in [*self.workers.values(), *self.beats] if not p.alive()]

    def stop(self) -> None:
        for process in [*self.workers.values(), *self.beats]:
            process.stop(timeout=15)

    def logs_of_interest(self) -> str:
        parts = []
        for process in [*self.retired, *self.workers.values(), *self.beats]:
            lines = [line for line in process.output().splitlines()
                     if "ERROR" in line or "WARNING" in line or "Traceback" in line or "CRITICAL" in line]
            if lines:
                parts.append(f"--- {process.role} ({process.log.name}) ---\n" + "\n".join(lines[-15:]))
        return "\n".join(parts)


def message_sender(broker_url: str) -> Celery:
    """A bare Celery client that sends by name onto the product's queues (the nameless exchange), so a
    test can deliver a message twice without loading the workers' settings."""
    app = Celery("chaos-duplicates", broker=broker_url)
    app.conf.update(task_queues=[Queue(q, Exchange(""), routing_key=q) for q in QUEUES],
                    task_default_exchange="", task_default_queue="poll",
                    broker_connection_retry_on_startup=True, task_serializer="json")
    return app


# --- the ledger as the director and the verdict see it -------------------------------------------------


@dataclass
class LedgerView:
    bills: dict[str, tuple[str, list[object], int | None, int]]   # invoice id -> state, reasons, batch, version
    batches: dict[int, tuple[str, str, str | None]]               # id -> name, state, last error
    # master data: (kind, record key) -> the batch its last row went in; per batch its kind and delivery time;
    # per delivered bill the vendor its record names
    master: dict[tuple[str, str], int] = field(default_factory=dict)
    batch_kinds: dict[int, tuple[str, datetime | None]] = field(default_factory=dict)
    bill_vendors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, services: Services) -> LedgerView:
        with services.ledger.transaction() as session:
            bills = {b.invoice_id: (str(b.state), list(b.reasons or []), b.batch_id, b.version)
                     for b in session.scalars(select(Bill))}
            batches = {b.id: (b.name, str(b.state), b.last_error) for b in session.scalars(select(Batch))}
            master = {(r.kind, r.record_key): r.batch_id for r in session.scalars(select(MasterDataRecord))}
            kinds = {i: (k, at) for i, k, at in session.execute(select(Batch.id, Batch.kind, Batch.delivered_at))}
            vendors = {b.invoice_id: str((b.mapping or {}).get("vendor_id") or "")
                       for b in session.scalars(select(Bill).where(Bill.state == BillState.DELIVERED))}
        return cls(bills, batches, master, kinds, vendors)

    def count(self, *states: str) -> int:
        return sum(1 for state, *_ in self.bills.values() if state in states)


def xero_bill_ids(sandbox: XeroSandbox) -> set[str]:
    """Every ACCPAY bill Xero holds now (the data set plus the waves added during the run)."""
    return {bill.invoice_id for tenant in sandbox.dataset.tenants for bill in tenant.bills}


def settled(view: LedgerView, xero_ids: set[str], importer: StampliImporter) -> bool:
    """Nothing moves by itself any more: every Xero bill is in the ledger and out of flight, no batch is
    STAGED, and the importer has taken every finished file."""
    return (xero_ids <= view.bills.keys()
            and view.count(*IN_FLIGHT) == 0
            and not any(state == BatchState.STAGED for _, state, _ in view.batches.values())
            and not importer.waiting())


# --- the verdict ---------------------------------------------------------------------------------------


@dataclass
class Verdict:
    xero_bills: int = 0
    eligible: int = 0
    delivered_once: int = 0
    held: int = 0
    excluded: int = 0
    duplicates: dict[str, int] = field(default_factory=dict)          # invoice id -> files it was in
    missing: list[str] = field(default_factory=list)                  # eligible, in no taken file
    never_discovered: list[str] = field(default_factory=list)         # in Xero, not in the ledger
    sent_though_held: list[str] = field(default_factory=list)
    unexplained_holds: list[str] = field(default_factory=list)        # HELD/EXCLUDED without a reason
    failed_batches: list[tuple[str, str]] = field(default_factory=list)  # name, reason (not excused)
    excused_batches: list[tuple[str, str]] = field(default_factory=list)
    ledger_disagrees: list[str] = field(default_factory=list)         # delivered once, ledger not DELIVERED
    names_twice: list[str] = field(default_factory=list)
    files_taken: int = 0
    stuck: str = ""                                                   # why the ledger did not settle
    # master data: records (one row change each) in the taken files, the same row taken twice, records the
    # ledger put in a file Stampli never took, and delivered bills whose vendor no earlier vendor file carried
    records_sent: int = 0
    record_duplicates: dict[str, int] = field(default_factory=dict)
    records_missing: list[str] = field(default_factory=list)
    bills_ahead_of_vendor: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        found = []
        if self.stuck:
            found.append(f"the ledger did not settle: {self.stuck}")
        if self.duplicates:
            found.append(f"{len(self.duplicates)} bills delivered more than once: {_some(self.duplicates)}")
        if self.names_twice:
            found.append(f"file names that arrived twice: {self.names_twice}")
        if self.missing:
            found.append(f"{len(self.missing)} eligible bills in no file Stampli took: {_some(self.missing)}")
        if self.never_discovered:
            found.append(f"{len(self.never_discovered)} Xero bills never reached the ledger: "
                         f"{_some(self.never_discovered)}")
        if self.sent_though_held:
            found.append(f"{len(self.sent_though_held)} HELD/EXCLUDED bills were sent: {_some(self.sent_though_held)}")
        if self.unexplained_holds:
            found.append(f"{len(self.unexplained_holds)} bills HELD/EXCLUDED without a reason")
        if self.failed_batches:
            found.append(f"{len(self.failed_batches)} FAILED files whose reason is not 'the evidence cannot "
                         f"decide': {self.failed_batches}")
        if self.record_duplicates:
            found.append(f"{len(self.record_duplicates)} master-data rows delivered more than once: "
                         f"{_some(self.record_duplicates)}")
        if self.records_missing:
            found.append(f"{len(self.records_missing)} master-data records in no file Stampli took: "
                         f"{_some(self.records_missing)}")
        if self.bills_ahead_of_vendor:
            found.append(f"{len(self.bills_ahead_of_vendor)} bills delivered before any file with their vendor: "
                         f"{_some(self.bills_ahead_of_vendor)}")
        if self.ledger_disagrees:
            found.append(f"{len(self.ledger_disagrees)} bills Stampli took once that the ledger does not call "
                         f"DELIVERED: {_some(self.ledger_disagrees)}")
        return found

    def table(self) -> str:
        rows = [("bills in Xero", self.xero_bills), ("eligible", self.eligible),
                ("delivered exactly once", self.delivered_once), ("held", self.held), ("excluded", self.excluded),
                ("duplicates", len(self.duplicates)), ("missing", len(self.missing)),
                ("never discovered", len(self.never_discovered)), ("sent though held", len(self.sent_though_held)),
                ("FAILED batches", len(self.failed_batches) + len(self.excused_batches)),
                ("  of them undecidable (excused)", len(self.excused_batches)),
                ("files Stampli took", self.files_taken), ("file names taken twice", len(self.names_twice)),
                ("master-data rows sent", self.records_sent), ("  of them twice", len(self.record_duplicates)),
                ("  records missing", len(self.records_missing)),
                ("bills ahead of their vendor", len(self.bills_ahead_of_vendor))]
        return "\n".join(f"{label:<34}{value:>8}" for label, value in rows)


def judge(view: LedgerView, xero_ids: set[str], taken: Iterable[Path], names_twice: list[str],
          *, stuck: str = "") -> Verdict:
    """Count every InvoiceID in every taken file against the ledger and Xero."""
    column = invoice_id_column()
    files = list(taken)
    in_files: Counter[str] = Counter()
    for path in files:
        in_files.update(invoice_ids_in(path, column))
    verdict = Verdict(xero_bills=len(xero_ids), files_taken=len(files), names_twice=list(names_twice), stuck=stuck)
    excused_batch_ids: set[int] = set()
    for failed_id, (name, state, error) in sorted(view.batches.items()):
        if state != BatchState.FAILED:
            continue
        reason = error or ""
        if any(marker in reason.lower() for marker in UNDECIDABLE_MARKERS):
            excused_batch_ids.add(failed_id)
            verdict.excused_batches.append((name, reason))
        else:
            verdict.failed_batches.append((name, reason))
    for invoice_id in sorted(xero_ids | view.bills.keys()):
        copies = in_files[invoice_id]
        if copies > 1:
            verdict.duplicates[invoice_id] = copies
        if invoice_id not in view.bills:
            verdict.never_discovered.append(invoice_id)
            continue
        state, reasons, batch_id, _ = view.bills[invoice_id]
        if state in (BillState.HELD, BillState.EXCLUDED):
            verdict.held += state == BillState.HELD
            verdict.excluded += state == BillState.EXCLUDED
            if not reasons:
                verdict.unexplained_holds.append(invoice_id)
            if copies:
                verdict.sent_though_held.append(invoice_id)
            continue
        verdict.eligible += 1
        if copies == 1:
            verdict.delivered_once += 1
            if state != BillState.DELIVERED and batch_id not in excused_batch_ids:
                verdict.ledger_disagrees.append(invoice_id)
        elif copies == 0 and batch_id not in excused_batch_ids:
            verdict.missing.append(invoice_id)
    _judge_master_data(view, files, excused_batch_ids, verdict)
    return verdict


def _judge_master_data(view: LedgerView, files: list[Path], excused: set[int], verdict: Verdict) -> None:
    """Each master-data row change once in the files Stampli took, every record's last file taken, and no
    bill delivered before a vendor file that carries its vendor was delivered."""
    rows: Counter[tuple[str, str, tuple[tuple[str, ...], ...]]] = Counter()
    taken_names = {path.name for path in files}
    delivered_at = {view.batches[i][0]: at for i, (_, at) in view.batch_kinds.items() if i in view.batches}
    vendor_first: dict[str, datetime] = {}
    for path in files:
        found = master_rows_in(path)
        if found is None:
            continue
        kind, records = found
        for key, content in records.items():
            rows[(kind, key, content)] += 1
            at = delivered_at.get(path.name)
            if kind == "vendors" and at is not None and (key not in vendor_first or at < vendor_first[key]):
                vendor_first[key] = at
    verdict.records_sent = sum(rows.values())
    verdict.record_duplicates = {f"{kind} {key}": n for (kind, key, _), n in rows.items() if n > 1}
    for (kind, key), batch_id in sorted(view.master.items()):
        name = view.batches.get(batch_id, ("", "", None))[0]
        if name not in taken_names and batch_id not in excused:
            verdict.records_missing.append(f"{kind} {key}")
    if not any(kind == "vendors" for kind, _ in view.master):
        return
    for invoice_id, (state, _, batch_id, _) in sorted(view.bills.items()):
        if state != BillState.DELIVERED or batch_id is None or batch_id in excused:
            continue
        sent_at = view.batch_kinds.get(batch_id, ("", None))[1]
        first = vendor_first.get(view.bill_vendors.get(invoice_id, ""))
        if sent_at is None or first is None or first > sent_at:
            verdict.bills_ahead_of_vendor.append(invoice_id)


#: Worker log lines that tell a poll's story: takeovers, waits for a token refresh, parking, time limits.
POLL_LOG_PATTERN: Final = re.compile(
    r"poll|lease|refresh|park|outlived|took over|TimeLimit|WorkerLost|SIGKILL", re.IGNORECASE)


def poll_story(services: Services, tenant_id: str, events: int = 15) -> str:
    """What the ledger says about the tenant's polls: its lease, unfinished runs and parking, its grant's
    token (a refresh lease a killed refresher left), its watermarks, and the poll events (dispatched again
    after a lapse, parked). Printed when a run fails, so bills never discovered explain themselves."""
    with services.ledger.transaction() as session:
        tenant = session.get_one(Tenant, tenant_id)
        grant = session.get(XeroGrant, tenant.grant_id)
        marks = session.execute(select(Watermark.endpoint, Watermark.value, Watermark.updated_at)
                                .where(Watermark.tenant_id == tenant_id).order_by(Watermark.endpoint)).tuples()
        told = session.execute(
            select(OperationalEvent.at, OperationalEvent.kind, OperationalEvent.message)
            .where(OperationalEvent.tenant_id == tenant_id)
            .where(OperationalEvent.kind.in_([*PollEvent, "tenant_parked", "tenant_disconnected"]))
            .order_by(OperationalEvent.id.desc()).limit(events)
        ).tuples()
        lines = [f"now {utcnow().isoformat()}",
                 f"tenant {tenant_id}: status {tenant.status}, poll lease until {tenant.poll_lease_until}, "
                 f"unfinished runs {tenant.poll_runs}, parked: {tenant.poll_parked_reason or 'no'}, "
                 f"held until {tenant.parked_until}, next poll at {tenant.next_poll_at}, "
                 f"last polled at {tenant.last_polled_at}"]
        if grant is not None:
            lines.append(f"grant {grant.id}: status {grant.status}, version {grant.version}, access token expires "
                         f"{grant.access_expires_at}, refresh lease until {grant.refreshing_until}")
        lines += [f"watermark {endpoint}: {value} (moved {moved})" for endpoint, value, moved in marks]
        lines += [f"event {at} {kind}: {message}" for at, kind, message in reversed(list(told))]
    return "\n".join(lines)


def poll_log_lines(outputs: Iterable[str], limit: int = 40) -> list[str]:
    """The last `limit` log lines of the given workers that say something about polls."""
    found = [line for output in outputs for line in output.splitlines() if POLL_LOG_PATTERN.search(line)]
    return found[-limit:]


def _some(items: Iterable[str] | dict[str, int], limit: int = 8) -> str:
    listed = [f"{k}x{v}" for k, v in items.items()] if isinstance(items, dict) else list(items)
    return ", ".join(listed[:limit]) + (f" (+{len(listed) - limit} more)" if len(listed) > limit else "")


# --- the director --------------------------------------------------------------------------------------


@dataclass
class Fault:
    """One fault waiting for its moment: `ready()` says the moment has come, `inject()` does it and says
    what it did (None: it could not yet, e.g. nothing to repeat, so the fault stays pending)."""

    kind: str
    ready: Callable[[], bool]
    inject: Callable[[], str | None]
    not_before: float = 0.0  # seconds into the round


@dataclass
class Chaos:
    """Everything one run needs; `run()` injects, waits for the ledger to settle, and judges."""

    size: ChaosSize
    seed: int
    sandbox: XeroSandbox
    services: Services
    sshd: Sshd
    import_dir: Path
    workdir: Path
    env: dict[str, str]
    broker_url: str
    tenant_id: str
    log: FaultLog = field(default_factory=FaultLog)

    def __post_init__(self) -> None:
        self.rng = random.Random(f"chaos/{self.seed}")
        self.cluster = Cluster(self.env, self.workdir / "logs")
        self.importer = StampliImporter(self.import_dir, self.workdir / "taken", self.seed)
        self.sender = message_sender(self.broker_url)
        self._after: list[tuple[float, str, Callable[[], str]]] = []  # (monotonic due, kind, action)
        self._view: LedgerView | None = None
        self._view_at = 0.0
        self._failpoint_armed = False

    # --- the run ---

    def run(self) -> Verdict:
        print(f"chaos: size={self.size.name} seed={self.seed} (re-run with {SEED_ENV}={self.seed} "
              f"{SIZE_ENV}={self.size.name})", flush=True)
        self.sandbox.faults.configure(error_rate=self.size.xero_error_rate, error_statuses=[500, 503])
        self.log.record("xero 500/503", f"random, rate {self.size.xero_error_rate}")
        self.log.record("xero 429 burst", self._burst_429())
        self.importer.start()
        self.cluster.start()
        stuck = ""
        try:
            for number in range(1, self.size.rounds + 1):
                self._round(number)
            stuck = self._wait_settled(self.size.settle_seconds)
            self.importer.take_due(everything=True)
        finally:
            self._run_due_actions(force=True)
            self.cluster.stop()
            self.importer.stop()
            self.cluster.refresh()
        view = LedgerView.read(self.services)
        verdict = judge(view, xero_bill_ids(self.sandbox), [t.path for t in self.importer.taken_files()],
                        self.importer.names_twice, stuck=stuck)
        self.report(verdict)
        return verdict

    def unfired_429s(self) -> int:
        """Forced 429 answers still waiting for a call: a burst that never fired proves nothing."""
        return sum(r.remaining for r in self.sandbox.faults.rules if r.status == 429)

    def waits_after_429(self) -> list[float]:
        """The retry waits the workers logged after a 429 (`rate limited (...); retry in Ns`)."""
        pattern = re.compile(r"rate limited \((?:minute|concurrent)\); retry in ([0-9.]+)s")
        processes = [*self.cluster.retired, *self.cluster.workers.values()]
        return [float(m) for p in processes for m in pattern.findall(p.output())]

    def report(self, verdict: Verdict) -> None:
        stats = self.sandbox.stats()
        print(f"\nchaos: size={self.size.name} seed={self.seed}\n\nfaults injected:\n{self.log.table()}\n\n"
              f"xero: {stats['calls']} calls, 429s {stats['rate_limited']}, faults {stats['faults_injected']}, "
              f"token refreshes {stats['token_refreshes']}, token errors {stats['token_errors']}\n\n"
              f"counts:\n{verdict.table()}\n", flush=True)
        for problem in verdict.problems:
            print(f"PROBLEM: {problem}", flush=True)
        story = ""
        if verdict.problems:  # the ledger's and the poll workers' side of it, so a failure explains itself
            processes = [*self.cluster.retired, *self.cluster.workers.values()]
            polls = [p.output() for p in processes if "poll" in p.role]
            story = (f"\npolls, as the ledger saw them:\n{poll_story(self.services, self.tenant_id)}\n\n"
                     f"poll workers' last words on polls:\n" + "\n".join(poll_log_lines(polls)) + "\n")
            print(story, flush=True)
        (self.workdir / "chaos-report.txt").write_text(self.log.table() + "\n\n" + verdict.table() + "\n" + story)

    def _round(self, number: int) -> None:
        started = time.monotonic()
        if number > 1:
            added = self.sandbox.update(self.tenant_id, add=self.size.wave)
            self.log.record("xero gains bills", f"round {number}: {len(added.get('added', [])) or self.size.wave}")
            self._duplicate_poll()  # a second poll message now: the wave is read without waiting a cadence
        skip = skipped_faults()
        pending = [f for f in self._chosen_faults(number) + self._random_faults()
                   if f.kind.removesuffix(" (random)") not in skip]
        deadline = started + self.size.round_seconds
        while pending and time.monotonic() < deadline:
            self._tick()
            elapsed = time.monotonic() - started
            if elapsed > 5 and not self._after and settled(self._ledger(), xero_bill_ids(self.sandbox), self.importer):
                break  # this round's work is done: what has not fired by now never will
            for fault in list(pending):
                if elapsed >= fault.not_before and fault.ready() and (detail := fault.inject()) is not None:
                    pending.remove(fault)
                    self.log.record(fault.kind, detail)
            time.sleep(0.005)
        for fault in pending:
            self.log.record(fault.kind, f"round {number}: its moment did not come before the round's work was done",
                            landed=False)
        self._disarm_failpoint(missed=True)

    def _tick(self) -> None:
        self.cluster.refresh()
        self._run_due_actions()
        self._restart_the_dead()

    def _run_due_actions(self, *, force: bool = False) -> None:
        now = time.monotonic()
        for entry in sorted(self._after):
            due, kind, action = entry
            if force or due <= now:
                self._after.remove(entry)
                self.log.record(kind, action())

    def _restart_the_dead(self) -> None:
        """A worker that died by itself (the armed failpoint) is SIGKILLed and restarted, unarmed."""
        for queue, process in list(self.cluster.workers.items()):
            tail = self.cluster.tails[queue]
            if process.alive() and not tail.worker_lost:
                continue
            fired = self._failpoint_armed and queue == "sftp"
            self.cluster.kill_worker(queue)
            self.cluster.start_worker(queue)
            if fired:
                self._failpoint_armed = False
                self.log.record("crash after rename", "the sftp worker died at deliver.after_rename; restarted unarmed")
            else:
                self.log.record("worker died", f"{queue} worker died by itself; restarted")

    def _disarm_failpoint(self, *, missed: bool) -> None:
        if not self._failpoint_armed:
            return
        self._failpoint_armed = False
        self.cluster.stop_worker("sftp")
        self.cluster.start_worker("sftp")
        if missed:
            self.log.record("crash after rename", "armed, never fired: no delivery reached "
                            f"failpoint('{FAILPOINT_AFTER_RENAME}') in this round", landed=False)

    def _wait_settled(self, seconds: float) -> str:
        """Until the ledger has settled and every 429 burst has been answered: one armed late in the last
        round fires at the next poll (a cadence away), and the run must see the workers get through it."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._tick()
            view = self._ledger(max_age=0.0)
            if settled(view, xero_bill_ids(self.sandbox), self.importer) and self.unfired_429s() == 0:
                return ""
            time.sleep(0.25)
        view = self._ledger(max_age=0.0)
        staged = [(name, error) for name, state, error in view.batches.values() if state == BatchState.STAGED]
        by_state = Counter(state for state, *_ in view.bills.values())
        absent = len(xero_bill_ids(self.sandbox) - view.bills.keys())
        return (f"after {seconds:.0f}s: bills by state {dict(by_state)}, {absent} Xero bills not in the ledger, "
                f"{self.unfired_429s()} forced 429 answers never asked for, "
                f"STAGED batches {staged[:5]}, files still in the import folder {self.importer.waiting()[:5]}\n"
                f"{self.cluster.logs_of_interest()}")

    def _ledger(self, max_age: float = 0.5) -> LedgerView:
        if self._view is None or time.monotonic() - self._view_at > max_age:
            self._view, self._view_at = LedgerView.read(self.services), time.monotonic()
        return self._view

    # --- the faults ---

    def _chosen_faults(self, number: int) -> list[Fault]:
        def busy(queue: str) -> Callable[[], bool]:
            return lambda: self.cluster.tails[queue].running(_WORK_OF_QUEUE[queue])

        def uploading() -> bool:
            return any(p.name.endswith(".part") for p in self.import_dir.iterdir())

        def some_bills_ready() -> bool:
            return self._ledger().count(BillState.READY, BillState.BATCHED, BillState.DELIVERED) > 0

        def delivered_once() -> bool:
            return any(state == BatchState.DELIVERED for _, state, _ in self._ledger().batches.values())

        faults = [
            Fault("kill -9 poll worker", busy("poll"), lambda: self._kill("poll", "during poll_tenant")),
            Fault("kill -9 map worker", busy("map"), lambda: self._kill("map", "during map_invoice")),
            Fault("kill -9 batch worker", busy("batch"), lambda: self._kill("batch", "during assemble_batch")),
            Fault("kill -9 sftp worker", uploading, lambda: self._kill("sftp", "a .part was in the import folder")),
            Fault("arm crash after rename", some_bills_ready, self._arm_failpoint, not_before=1.0),
            Fault("xero token expired", lambda: True, self._expire_tokens, not_before=2.0),
            Fault("duplicate map_invoice", some_bills_ready, self._duplicate_map),
            Fault("duplicate deliver_batch", delivered_once, self._duplicate_deliver),
            Fault("redis FLUSHDB", some_bills_ready, self._flush_broker, not_before=3.0),
            Fault("sshd down", some_bills_ready, self._sshd_outage, not_before=4.0),
            Fault("two beats", lambda: True, self._second_beat, not_before=1.0),
        ]
        if number > 1:
            faults.append(Fault("xero 429 burst", lambda: True, self._burst_429))
        return faults

    def _random_faults(self) -> list[Fault]:
        """Kinds and moments from the seed; a moment counts from when the round's first bill is mapped."""
        kinds: list[tuple[str, Callable[[], str | None]]] = [
            ("kill -9 random worker", self._kill_random),
            ("redis FLUSHDB", self._flush_broker),
            ("duplicate poll_tenant", self._duplicate_poll),
            ("duplicate map_invoice", self._duplicate_map),
            ("duplicate deliver_batch", self._duplicate_deliver),
            ("xero 429 burst", self._burst_429),
            ("xero 503 burst", self._burst_503),
            ("xero token expired", self._expire_tokens),
            ("sshd blip", lambda: self._sshd_outage(self.size.sshd_outage_seconds / 4)),
        ]
        faults = []
        for _ in range(self.size.random_faults):
            kind, action = self.rng.choice(kinds)
            delay = round(self.rng.uniform(0, self.size.round_seconds / 5), 1)
            faults.append(Fault(f"{kind} (random)", self._after_work_started(delay), action))
        return faults

    def _after_work_started(self, delay: float) -> Callable[[], bool]:
        since: list[float] = []

        def ready() -> bool:
            if not since and self._ledger().count(BillState.READY, BillState.BATCHED, BillState.DELIVERED,
                                                  BillState.HELD, BillState.EXCLUDED):
                since.append(time.monotonic())
            return bool(since) and time.monotonic() - since[0] >= delay

        return ready

    def _kill(self, queue: str, when: str) -> str:
        self.cluster.kill_worker(queue)
        armed = self._failpoint_armed and queue == "sftp"  # a kill does not disarm the crash after rename
        self.cluster.start_worker(queue, {"CONNECTOR_FAILPOINTS": f"{FAILPOINT_AFTER_RENAME}=exit"} if armed else None)
        return f"{when}; restarted" + (" (still armed)" if armed else "")

    def _kill_random(self) -> str:
        queue = self.rng.choice(QUEUES)
        return self._kill(queue, f"{queue} worker at a random moment")

    def _arm_failpoint(self) -> str:
        if self._failpoint_armed:
            return "already armed"
        self.cluster.stop_worker("sftp")
        self.cluster.start_worker("sftp", {"CONNECTOR_FAILPOINTS": f"{FAILPOINT_AFTER_RENAME}=exit"})
        self._failpoint_armed = True
        return f"sftp worker restarted with CONNECTOR_FAILPOINTS={FAILPOINT_AFTER_RENAME}=exit"

    def _flush_broker(self) -> str:
        client = redis.Redis.from_url(self.broker_url)
        try:
            lost = client.dbsize()
            client.flushdb()
        finally:
            client.close()
        return f"broker DB emptied ({lost} keys)"

    def _sshd_outage(self, seconds: float | None = None) -> str | None:
        seconds = self.size.sshd_outage_seconds if seconds is None else seconds
        if not self.sshd.running:
            return None
        self.sshd.stop()

        def back() -> str:
            self.sshd.start()
            return f"sshd back on port {self.sshd.port}, same host key"

        self._after.append((time.monotonic() + seconds, "sshd up", back))
        return f"stopped for {seconds:.0f}s"

    def _second_beat(self) -> str:
        beat = self.cluster.start_beat()

        def stop() -> str:
            self.cluster.stop_beat(beat)
            return "second beat stopped"

        self._after.append((time.monotonic() + self.size.two_beats_seconds, "two beats end", stop))
        return f"a second beat for {self.size.two_beats_seconds:.0f}s"

    def _expire_tokens(self) -> str:
        return f"{self.sandbox.expire_tokens()} live access tokens expired"

    def _burst_429(self) -> str:
        count = self.rng.randint(1, 3)
        self.sandbox.faults.fail_next("/api.xro/2.0/Invoices", count, 429, retry_after=RETRY_AFTER_SECONDS,
                                       problem="minute")
        return f"next {count} Invoices calls answer 429, Retry-After {RETRY_AFTER_SECONDS}"

    def _burst_503(self) -> str:
        count = self.rng.randint(2, 5)
        self.sandbox.faults.fail_next("/api.xro/2.0", count, 503)
        return f"next {count} Accounting API calls answer 503"

    def _duplicate_poll(self) -> str:
        self.sender.send_task("connector.poll_tenant", args=[self.tenant_id], queue="poll")
        return f"poll_tenant({self.tenant_id}) sent again"

    def _duplicate_map(self) -> str | None:
        view = self._ledger(max_age=0.0)
        candidates = sorted(i for i, (state, *_) in view.bills.items() if state != BillState.DISCOVERED)
        if not candidates:
            return None
        invoice_id = self.rng.choice(candidates)
        version = view.bills[invoice_id][3]
        self.sender.send_task("connector.map_invoice", args=[self.tenant_id, invoice_id, version], queue="map")
        return f"map_invoice({invoice_id}, version {version}) sent again"

    def _duplicate_deliver(self) -> str | None:
        view = self._ledger(max_age=0.0)
        if not view.batches:
            return None
        sent = []
        delivered = sorted(i for i, (_, state, _) in view.batches.items() if state == BatchState.DELIVERED)
        staged = sorted(i for i, (_, state, _) in view.batches.items() if state == BatchState.STAGED)
        for batch_id in ([self.rng.choice(delivered)] if delivered else []) + staged[:2]:
            self.sender.send_task("connector.deliver_batch", args=[batch_id], queue="sftp")
            sent.append(f"{batch_id} ({view.batches[batch_id][1]})")
        return f"deliver_batch sent again for batches {', '.join(sent)}"
