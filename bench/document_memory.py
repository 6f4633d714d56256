"""Peak resident memory of a batch worker and an SFTP worker sending suppliers' documents in the `zip`
layout: what a file's documents cost the workers that build and send it.

The Xero sandbox, the bundled SFTP server and the ledger's set-up (PostgreSQL) run in this process: a
tenant polled and mapped with its documents on, then `--documents` of its documents made `--mib` MiB
each in the ledger (bytes, size and sha256, as if Xero had served them so). Each phase's work runs in a
child process of its own, as in the batch and the sftp worker's pool processes, so its memory is its
own; each child reports its peak RSS at start and over its phase (VmHWM, reset before the phase through
/proc/self/clear_refs):
1. `start`: imports and services built (the assembling child's);
2. `assemble`: every READY bill put in files (rendered, archived, stored, staged);
3. `deliver_start`, `deliver`: in a second child, every STAGED file sent (look first, `.part`, size and
   sha256 check, rename), its staged copies removed first so each is staged again from the ledger.
Then the delivered archives are checked: each bill once, each document with the ledger's sha256.
`--code PATH` runs the child on another checkout's `connector` (the code before a change), beside this one
in the same run: compare the two as a ratio (the machine is shared).

    .venv/bin/python bench/document_memory.py [--documents 200] [--mib 2] [--bills 700] [--code PATH]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

import psycopg
import requests

REPO = Path(__file__).resolve().parents[1]
PG_URL = os.environ.get("CONNECTOR_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("CONNECTOR_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")


def _status() -> dict[str, int]:
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {k: int(fields[k].split()[0]) for k in ("VmRSS", "VmHWM")}


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS (Linux)


def child(tenant_id: str, schema: str, phase: str) -> None:
    """Assemble, or deliver, in this process; print one JSON line per phase."""
    import shutil

    from sqlalchemy import select

    from connector.services import batch, deliver
    from connector.services.context import build_services
    from connector.services.messages import DeliverBatch
    from connector.settings import load_settings
    from connector.store.models import Batch

    services = build_services(load_settings(), schema=schema, run_migrations=False)

    def report(phase: str, started: float, extra: dict[str, Any]) -> None:
        status = _status()
        print(json.dumps({"phase": phase, "peak_mib": status["VmHWM"] / 1024, "rss_after_mib": status["VmRSS"] / 1024,
                          "seconds": time.perf_counter() - started, **extra}), flush=True)

    if phase == "assemble":
        report("start", time.perf_counter(), {})
        _reset_peak()
        started = time.perf_counter()
        files = [m.batch_id for m in batch.assemble_batches(services, tenant_id) if isinstance(m, DeliverBatch)]
        report("assemble", started, {"files": len(files)})
    else:
        shutil.rmtree(services.settings.staging_dir, ignore_errors=True)  # a new pod: staged from the ledger
        with services.ledger.transaction() as session:
            files = list(session.scalars(select(Batch.id).where(Batch.tenant_id == tenant_id,
                                                                 Batch.state == "STAGED").order_by(Batch.id)))
        report("deliver_start", time.perf_counter(), {})
        _reset_peak()
        started = time.perf_counter()
        for batch_id in files:
            deliver.deliver_batch(services, batch_id)
        report("deliver", started, {"files": len(files)})
    services.close()


def _big(attachment_id: str, size: int) -> bytes:
    return random.Random(attachment_id).randbytes(size)


def _enlarge(services: Any, tenant_id: str, documents: int, size: int) -> int:
    """Make the first `documents` documents of the ledger `size` bytes each (listing included)."""
    from sqlalchemy import select

    from connector.store.models import AttachmentListing, AttachmentRow

    with services.ledger.transaction() as session:
        ids = list(session.scalars(select(AttachmentRow.attachment_id).where(AttachmentRow.tenant_id == tenant_id)
                                   .order_by(AttachmentRow.attachment_id).limit(documents)))
    for attachment_id in ids:  # one at a time: this process holds one document's bytes
        content = _big(attachment_id, size)
        with services.ledger.transaction() as session:
            row = session.get(AttachmentRow, (tenant_id, attachment_id))
            row.content, row.size, row.sha256 = content, size, hashlib.sha256(content).hexdigest()
            listing = session.get(AttachmentListing, (tenant_id, row.invoice_id))
            listing.listed = [{**item, "content_length": size} if str(item["id"]) == attachment_id else item
                              for item in listing.listed]
            session.expunge_all()
    return len(ids)


def _check(folder: Path, services: Any, tenant_id: str) -> dict[str, Any]:
    """Each bill once over the delivered files; each document with the ledger's sha256."""
    import csv
    import io

    from sqlalchemy import select

    from connector.store.models import AttachmentRow

    with services.ledger.transaction() as session:
        shas = set(session.scalars(select(AttachmentRow.sha256).where(AttachmentRow.tenant_id == tenant_id)))
    seen: list[str] = []
    documents = archives = 0
    biggest = 0
    for path in sorted(folder.iterdir()):
        if path.suffix != ".zip":
            continue
        archives += 1
        biggest = max(biggest, path.stat().st_size)
        with zipfile.ZipFile(path) as archive:
            text = archive.read(path.stem + ".csv").decode("utf-8")
            for name in archive.namelist():
                if name.startswith("documents/"):
                    digest = hashlib.sha256()
                    with archive.open(name) as member:
                        while chunk := member.read(1 << 20):
                            digest.update(chunk)
                    assert digest.hexdigest() in shas, name
                    documents += 1
        seen += list({row["XeroInvoiceID"]: None for row in csv.DictReader(io.StringIO(text, newline=""))})
    assert len(seen) == len(set(seen)), "a bill went in two files"
    return {"archives": archives, "documents": documents, "bills": len(seen), "largest_archive_mib": biggest / 2**20}


def run(documents: int, mib: float, bills: int, code: Path | None) -> list[dict[str, Any]]:
    sys.path.insert(0, str(REPO))
    from connector.crypto import Vault
    from connector.secret import Secret
    from connector.services.context import build_services
    from connector.settings import load_settings, xero_url_environment
    from connector.sftp import SftpTarget
    from connector.xero.budget import Limits, LocalLeases, RateBudget
    from connector.xero.client import XeroApi
    from sandbox.sftp import BundledSftpServer
    from sandbox.xero import XeroSandbox
    from tests.support.pipeline import onboard, poll_and_map, with_documents

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    home = Path(tempfile.mkdtemp(prefix="bench-document-memory-"))
    try:
        server = BundledSftpServer(home / "sftp-root", "stampli", "bench-password", None)
        server.ensure_dir("/stampli/import")
        with server, XeroSandbox(seed=11, tenants=1, bills=bills) as sandbox:
            env = {"CONNECTOR_DATABASE_URL": f"{PG_URL}?options=-csearch_path%3D{schema}",
                   "CONNECTOR_FERNET_KEYS": Vault.new_key(), "CONNECTOR_BROKER_URL": REDIS_URL,
                   **xero_url_environment(sandbox.urls), "CONNECTOR_STAGING_DIR": str(home / "staging")}
            services = build_services(load_settings(env), schema=schema)
            sandbox.set_limits(minute=1_000_000, day=1_000_000, app_minute=1_000_000)
            unlimited = Limits(per_minute=1_000_000, per_day=1_000_000, app_per_minute=1_000_000)
            services = dataclasses.replace(services, xero=XeroApi(  # the set-up is not what is measured
                requests.Session(), services.settings.xero.api, services.settings.xero_timeout_seconds,
                RateBudget("memory://", LocalLeases(), unlimited)))
            target = SftpTarget(host=server.host, port=server.port, username="stampli", import_dir="/stampli/import",
                                host_key=server.host_key, password=Secret("bench-password"))
            tenant_id = onboard(services, sandbox, target)
            with_documents(services, tenant_id)
            poll_and_map(services, tenant_id)
            enlarged = _enlarge(services, tenant_id, documents, int(mib * 2**20))
            child_path = f"{code}{os.pathsep}{REPO}" if code else str(REPO)
            lines = []
            for phase in ("assemble", "deliver"):
                output = subprocess.run([sys.executable, __file__, "--child", tenant_id, schema, phase],
                                        env={**os.environ, **env, "PYTHONPATH": child_path}, check=True,
                                        capture_output=True, text=True, cwd=code or REPO).stdout
                lines += [json.loads(line) for line in output.splitlines() if line.startswith("{")]
            lines.append({"phase": "checked", "enlarged": enlarged,
                          **_check(server.local_path("/stampli/import"), services, tenant_id)})
            services.close()
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        import shutil
        shutil.rmtree(home, ignore_errors=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=200)
    parser.add_argument("--mib", type=float, default=2.0, help="each enlarged document's size in MiB")
    parser.add_argument("--bills", type=int, default=700)
    parser.add_argument("--code", type=Path, help="run the work on this checkout's code (the code before)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    lines = run(args.documents, args.mib, args.bills, args.code)
    with open("/proc/loadavg") as load:
        print(f"load average {load.read().split()[0]}; {args.documents} documents of {args.mib:g} MiB, "
              f"code {args.code or 'this checkout'}")
    for line in lines:
        print(json.dumps(line))
    if args.json:
        args.json.write_text(json.dumps(lines, indent=2))


if __name__ == "__main__":
    main()
