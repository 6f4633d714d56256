"""Master data in the ledger: which kinds a tenant sends and in which template, what each record's row
looked like when it was last put in a file (its fingerprint), the audit of every record sent, and the
facts the ordering rule of `connector.domain.masterdata` needs about a tenant's earlier files."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, delete, func, or_, select, tuple_, update
from sqlalchemy.orm import Session, aliased

from connector.domain.delivery import BatchState
from connector.domain.masterdata import DEPENDS_ON, MASTER_KINDS, EarlierFile, Kind, MasterRecord, TrackingOption
from connector.store.models import (
    AccountRow,
    Batch,
    ContactRow,
    MasterDataRecord,
    MasterDataSetting,
    MasterDataTransition,
    PurchaseOrderRow,
    TrackingCategoryRow,
    utcnow,
)

CLAIM_CHUNK = 500  # record keys per statement (well under every database's limit of bound values)


class LostRecordRace(Exception):
    """Another worker put one of these records in a file first: roll back and look again."""


@dataclass(frozen=True)
class KindSetting:
    kind: Kind
    enabled: bool
    template: str | None  # the customer's template (YAML); None = our default for the kind


def settings(session: Session, tenant_id: str) -> dict[Kind, KindSetting]:
    """Every master-data kind of the tenant: off, with our default template, unless set otherwise."""
    found = {Kind(r.kind): r for r in session.scalars(
        select(MasterDataSetting).where(MasterDataSetting.tenant_id == tenant_id))}
    return {kind: KindSetting(kind, bool(found[kind].enabled), found[kind].template) if kind in found
            else KindSetting(kind, False, None) for kind in MASTER_KINDS}


def enabled_kinds(session: Session, tenant_id: str) -> list[Kind]:
    """The kinds the tenant sends, in the order a cycle makes their files."""
    on = set(session.scalars(select(MasterDataSetting.kind).where(
        MasterDataSetting.tenant_id == tenant_id, MasterDataSetting.enabled.is_(True))))
    return [kind for kind in MASTER_KINDS if kind in on]


def covered_until(session: Session, tenant_id: str) -> tuple[bool, datetime | None]:
    """Whether the tenant sends master data, and if so the moment before which every record of every kind
    it sends was stored and is in a committed file (the earliest `read_from` of its kinds; None when a
    kind has had no finished assemble since it was turned on)."""
    marks = list(session.scalars(select(MasterDataSetting.read_from).where(
        MasterDataSetting.tenant_id == tenant_id, MasterDataSetting.enabled.is_(True))))
    if not marks:
        return False, None
    return True, None if any(m is None for m in marks) else min(m for m in marks if m is not None)


def mark_read_from(session: Session, tenant_id: str, kind: Kind, at: datetime) -> None:
    """The kind's assemble that began reading the ledger at `at` has finished: every record stored before
    then is in a committed file. Only ever moves forward (two assembles may finish out of order)."""
    session.execute(update(MasterDataSetting).where(
        MasterDataSetting.tenant_id == tenant_id, MasterDataSetting.kind == str(kind),
        MasterDataSetting.enabled.is_(True),
        or_(MasterDataSetting.read_from.is_(None), MasterDataSetting.read_from < at)).values(read_from=at))


def enabled_kinds_by_tenant(session: Session) -> dict[str, list[Kind]]:
    """Every tenant's kinds sent (in one query), each in the order a cycle makes their files."""
    on: dict[str, set[Kind]] = {}
    for tenant_id, kind in session.execute(select(MasterDataSetting.tenant_id, MasterDataSetting.kind).where(
            MasterDataSetting.enabled.is_(True))):
        on.setdefault(tenant_id, set()).add(Kind(kind))
    return {tenant_id: [k for k in MASTER_KINDS if k in kinds] for tenant_id, kinds in on.items()}


def set_kind(session: Session, tenant_id: str, kind: Kind, *, enabled: bool | None = None,
             template: str | None = None, default_template: bool = False) -> None:
    row = session.get(MasterDataSetting, (tenant_id, str(kind)))
    if row is None:
        row = MasterDataSetting(tenant_id=tenant_id, kind=str(kind), enabled=False, template=None)
        session.add(row)
    if enabled is not None:
        if enabled and not row.enabled:  # its records since it was off may be in no file
            row.read_from = None
        row.enabled = enabled
    if template is not None:
        row.template = template
    elif default_template:
        row.template = None


# --- what the rows are made from: what the polls and reference reads stored -----------------------------

def contacts(session: Session, tenant_id: str) -> list[dict[str, Any]]:
    return [dict(p) for p in session.scalars(select(ContactRow.payload).where(
        ContactRow.tenant_id == tenant_id, ContactRow.unusable_reason.is_(None)))]


def vendor_names(session: Session, tenant_id: str) -> dict[str, str]:
    return {i: n for i, n in session.execute(select(ContactRow.contact_id, ContactRow.name).where(
        ContactRow.tenant_id == tenant_id))}


def accounts(session: Session, tenant_id: str) -> list[dict[str, Any]]:
    """Accounts as Xero sent them; one stored before Xero's record was kept gives what its columns hold."""
    rows = session.scalars(select(AccountRow).where(AccountRow.tenant_id == tenant_id,
                                                    AccountRow.unusable_reason.is_(None)))
    return [dict(r.payload) if r.payload else {"AccountID": r.account_id, "Code": r.code, "Name": r.name,
                                               "Status": r.status} for r in rows]


def tracking_unreadable(session: Session, tenant_id: str) -> bool:
    """Whether Xero's last list of tracking categories had one the connector could not read."""
    return session.scalar(select(TrackingCategoryRow.category_id).where(
        TrackingCategoryRow.tenant_id == tenant_id, TrackingCategoryRow.unusable_reason.is_not(None)).limit(1)
    ) is not None


def tracking_options(session: Session, tenant_id: str) -> list[TrackingOption]:
    rows = session.scalars(select(TrackingCategoryRow).where(
        TrackingCategoryRow.tenant_id == tenant_id, TrackingCategoryRow.unusable_reason.is_(None)))
    return [TrackingOption(r.category_id, r.name, r.status, str(o.get("id") or ""), str(o.get("name") or ""),
                           str(o.get("status") or "ACTIVE"))
            for r in rows for o in r.options or [] if isinstance(o, dict) and o.get("id")]


def purchase_orders(session: Session, tenant_id: str) -> list[dict[str, Any]]:
    return [dict(p) for p in session.scalars(select(PurchaseOrderRow.payload).where(
        PurchaseOrderRow.tenant_id == tenant_id, PurchaseOrderRow.unusable_reason.is_(None)))]


# --- the fingerprints last put in a file -------------------------------------------------------------------

def sent_fingerprints(session: Session, tenant_id: str, kind: Kind) -> dict[str, str]:
    """Record key → the fingerprint of the row last put in a file (delivered or still on its way)."""
    return {k: f for k, f in session.execute(select(MasterDataRecord.record_key, MasterDataRecord.fingerprint).where(
        MasterDataRecord.tenant_id == tenant_id, MasterDataRecord.kind == str(kind)))}


def sent_labels(session: Session, tenant_id: str, kind: Kind) -> dict[str, str]:
    """Record key → its label when it was last put in a file."""
    return {k: label for k, label in session.execute(select(MasterDataRecord.record_key, MasterDataRecord.label).where(
        MasterDataRecord.tenant_id == tenant_id, MasterDataRecord.kind == str(kind)))}


def claim_records(session: Session, batch: Batch, records: Sequence[MasterRecord], previous: dict[str, str],
                  *, actor: str = "connector", reason: str | None = None) -> None:
    """Record that these rows are in `batch`, each only if its fingerprint is still the one read before
    (`previous`: the rows read are removed only if every one still holds it, then all are inserted anew,
    so a racing twin removes fewer or fails on the primary key): two workers can never put one change of
    a record in two files. Every record gets its BATCHED audit row. A few statements for any number."""
    now = utcnow()
    changed = [(r.key, previous[r.key]) for r in records if r.key in previous]
    for start in range(0, len(changed), CLAIM_CHUNK):  # one statement per chunk, not one per record
        chunk = changed[start:start + CLAIM_CHUNK]
        gone = session.execute(
            delete(MasterDataRecord)
            .where(MasterDataRecord.tenant_id == batch.tenant_id, MasterDataRecord.kind == str(batch.kind),
                   tuple_(MasterDataRecord.record_key, MasterDataRecord.fingerprint).in_(chunk))
            .execution_options(synchronize_session=False))
        if getattr(gone, "rowcount", 0) != len(chunk):
            raise LostRecordRace(f"{batch.kind} records of file {batch.name} were put in another file meanwhile")
    session.add_all([MasterDataRecord(tenant_id=batch.tenant_id, kind=str(r.kind), record_key=r.key,
                                      label=r.label[:255], fingerprint=r.fingerprint, batch_id=batch.id, at=now)
                     for r in records])
    session.add_all([MasterDataTransition(tenant_id=batch.tenant_id, kind=str(r.kind), record_key=r.key,
                                          fingerprint=r.fingerprint, to_state="BATCHED", batch_id=batch.id,
                                          file_name=batch.name, actor=actor, reason=reason, at=now)
                     for r in records])
    session.flush()


def record_file_outcome(session: Session, batch: Batch, to_state: str, *, reason: str | None = None,
                        actor: str = "connector") -> int:
    """The audit of a master-data file's end (DELIVERED, FAILED, or BATCHED again on a replay), one row
    per record it carries. Returns how many records."""
    carried = session.execute(select(MasterDataTransition.kind, MasterDataTransition.record_key,
                                     MasterDataTransition.fingerprint).where(
        MasterDataTransition.batch_id == batch.id, MasterDataTransition.to_state == "BATCHED",
        MasterDataTransition.file_name == batch.name).order_by(MasterDataTransition.id)).all()
    seen: set[str] = set()
    now = utcnow()
    for kind, key, fingerprint in carried:
        if key in seen:
            continue
        seen.add(key)
        session.add(MasterDataTransition(tenant_id=batch.tenant_id, kind=kind, record_key=key,
                                         fingerprint=fingerprint, to_state=to_state, batch_id=batch.id,
                                         file_name=batch.name, actor=actor, reason=reason, at=now))
    return len(seen)


def history(session: Session, tenant_id: str, kind: Kind, record_key: str) -> list[MasterDataTransition]:
    return list(session.scalars(select(MasterDataTransition).where(
        MasterDataTransition.tenant_id == tenant_id, MasterDataTransition.kind == str(kind),
        MasterDataTransition.record_key == record_key).order_by(MasterDataTransition.id)))


# --- the order of files -------------------------------------------------------------------------------------

def earlier_files(session: Session, batch: Batch) -> list[EarlierFile]:
    """The tenant's files made before this one that are not delivered (what the ordering rule reads)."""
    rows = session.execute(select(Batch.name, Batch.kind, Batch.state).where(
        Batch.tenant_id == batch.tenant_id, Batch.sequence < batch.sequence,
        Batch.state != BatchState.DELIVERED).order_by(Batch.sequence)).all()
    return [EarlierFile(name, Kind(kind), False, state) for name, kind, state in rows]


def defer(session: Session, batch_id: int, *, waits_for: Sequence[str], until: datetime, why: str) -> bool:
    """A file that waits for earlier ones (`waits_for`, their names): looked at again at `until` (or when
    they are delivered), or once its delivery backoff is over if that is later (`backoff_until`, which this
    leaves as it is). False, and the file left as it is, when none of them is still undelivered: one was
    delivered since the caller read them (by another worker, whose wake-up found this file not yet put off),
    and putting it off now would leave it to the sweeper for WAIT_SECONDS were both messages lost."""
    again = _after_backoff(until)
    earlier = aliased(Batch)
    still_waiting = select(earlier.id).where(earlier.name.in_(list(waits_for)),
                                             earlier.state != BatchState.DELIVERED).exists()
    deferred = session.execute(update(Batch).where(Batch.id == batch_id, Batch.state == BatchState.STAGED,
                                                   Batch.lease_owner.is_(None), still_waiting)
                               .values(next_attempt_at=again, last_error=why)
                               .execution_options(synchronize_session=False))
    if getattr(deferred, "rowcount", 0) == 1:
        return True
    return bool(session.scalar(still_waiting.select()))  # held by another attempt, or settled: still waits


def _after_backoff(at: datetime) -> Any:
    """`at`, or the file's delivery backoff's end when that is later (next_attempt_at never undercuts it)."""
    return case((Batch.backoff_until > at, Batch.backoff_until), else_=at)


def wake_waiting(session: Session, batch: Batch, *, now: datetime) -> None:
    """A master-data file was delivered: the tenant's later STAGED files of a kind that depends on it are
    due now (or when their delivery backoff ends) in the ledger, not only in the wake-up message its task
    sends. A waiting file is put off for WAIT_SECONDS and the sweeper sends only due files, so when that
    message and the file's own re-look are both lost (Redis emptied, the sftp worker holding the re-look
    killed) it would sit for minutes after what it waited for landed. One still waiting for another file
    is put off again when it looks."""
    kinds = [str(later) for later, needs in DEPENDS_ON.items() if Kind(batch.kind) in needs]
    due = _after_backoff(now)  # a backoff still holds
    session.execute(update(Batch).where(
        Batch.tenant_id == batch.tenant_id, Batch.sequence > batch.sequence, Batch.state == BatchState.STAGED,
        Batch.kind.in_(kinds), Batch.lease_owner.is_(None), Batch.next_attempt_at > now,
    ).values(next_attempt_at=due).execution_options(synchronize_session=False))


def staged_after(session: Session, batch: Batch) -> list[tuple[int, Kind]]:
    """The tenant's STAGED files made after this one: those that may have waited for it."""
    return [(i, Kind(k)) for i, k in session.execute(select(Batch.id, Batch.kind).where(
        Batch.tenant_id == batch.tenant_id, Batch.sequence > batch.sequence,
        Batch.state == BatchState.STAGED).order_by(Batch.sequence))]


# --- what `connector status` shows ------------------------------------------------------------------------

@dataclass(frozen=True)
class KindFiles:
    kind: Kind
    last_delivered: tuple[str, int, datetime | None] | None  # name, records, when
    waiting: list[tuple[str, int, str, str | None]]           # name, records, state, last error
    records_sent: int                                          # records whose last file was delivered


def kind_files(session: Session, tenant_id: str, kinds: Iterable[Kind]) -> list[KindFiles]:
    found = []
    for kind in kinds:
        last = session.execute(select(Batch.name, Batch.bill_count, Batch.delivered_at).where(
            Batch.tenant_id == tenant_id, Batch.kind == str(kind), Batch.state == BatchState.DELIVERED)
            .order_by(Batch.sequence.desc()).limit(1)).first()
        waiting = session.execute(select(Batch.name, Batch.bill_count, Batch.state, Batch.last_error).where(
            Batch.tenant_id == tenant_id, Batch.kind == str(kind), Batch.state != BatchState.DELIVERED)
            .order_by(Batch.sequence)).all()
        sent = session.scalar(select(func.count()).select_from(MasterDataRecord).join(
            Batch, Batch.id == MasterDataRecord.batch_id).where(
            MasterDataRecord.tenant_id == tenant_id, MasterDataRecord.kind == str(kind),
            Batch.state == BatchState.DELIVERED)) or 0
        found.append(KindFiles(kind, (last[0], last[1], last[2]) if last else None,
                               [(n, c, s, e) for n, c, s, e in waiting], int(sent)))
    return found


def master_file_kinds(session: Session, tenant_id: str | None = None) -> dict[str, str]:
    """File name → kind, for the master-data files (every other file carries bills)."""
    query = select(Batch.name, Batch.kind).where(Batch.kind != str(Kind.BILLS))
    if tenant_id:
        query = query.where(Batch.tenant_id == tenant_id)
    return {name: kind for name, kind in session.execute(query)}


def tenants_sending(session: Session, kind: Kind) -> list[str]:
    return sorted(session.scalars(select(MasterDataSetting.tenant_id).where(
        MasterDataSetting.kind == str(kind), MasterDataSetting.enabled.is_(True))))


def tenants_with_master_data(session: Session, tenant_id: str | None = None) -> list[str]:
    query = select(MasterDataSetting.tenant_id).where(MasterDataSetting.enabled.is_(True)).distinct()
    if tenant_id:
        query = query.where(MasterDataSetting.tenant_id == tenant_id)
    return sorted(session.scalars(query))
