"""map_invoice: turn one DISCOVERED bill into READY, HELD or EXCLUDED, with reasons and an audit row."""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from connector.domain.backoff import documents_retry_wait
from connector.domain.credit_notes import CREDIT_NOTE, credit_note_fields, map_credit_note, parse_credit_note
from connector.domain.intake import decision_failed
from connector.domain.mapping import MERGE_DEPTH, MappingContext, MappingOutcome, map_bill, po_keys_in
from connector.domain.reasons import Reason
from connector.domain.records import (
    Account,
    PurchaseOrder,
    Vendor,
    XeroBill,
    parse_bill,
    parse_purchase_order,
    parse_vendor,
)
from connector.domain.rules import Maps, TenantRules
from connector.domain.states import BillState
from connector.errors import RecordProblem, XeroRateLimited
from connector.failpoints import failpoint
from connector.services import attachments
from connector.services.batch import asks_after_mapping
from connector.services.context import Services
from connector.services.mapping_cache import CACHE, CachedContact, TenantReference
from connector.services.messages import Message
from connector.services.profiles import EffectiveMapping, effective_mapping
from connector.store import attachments as attachments_store
from connector.store import backlog
from connector.store import mapping_inputs as inputs
from connector.store.audit import record
from connector.store.credit_notes import bill_states
from connector.store.db import CONCURRENT_WRITE, LedgerError, NeedsTransaction, Session, needs_transaction
from connector.store.map_run import count_run_and_read, write_decision
from connector.store.mapping_inputs import BillRead
from connector.store.models import Bill, OperationalEvent
from connector.store.profiles import MappingHeads, mapping_heads

log = logging.getLogger(__name__)


MAP_RUNS_LIMIT: Final = 3  # runs that never finished (each stopped its worker) before a bill is held
BILL_HELD_CRASHED_WORKER: Final = "bill_held_crashed_worker"  # OperationalEvent kind
BILL_HELD_BAD_RECORD: Final = "bill_held_bad_record"  # OperationalEvent kind: mapping the bill raised


def map_invoice(services: Services, tenant_id: str, invoice_id: str, version: int) -> list[Message]:
    """Idempotent: a message for an older version, or a bill no longer DISCOVERED, does nothing. If a poll
    stores a newer version meanwhile, this transaction loses the race and is re-run (and then does nothing).

    Each run is counted first, in its own committed transaction, and the decision resets the count: a
    bill whose runs keep stopping their worker (the OOM killer on a huge bill) would otherwise be
    redelivered for ever; past MAP_RUNS_LIMIT it is held for a person instead of mapped again."""
    ledger = services.ledger.kept()  # every bill passes here: a kept connection, commits not waiting for a flush
    read = ledger.autocommitted(lambda s: _count_and_read(s, tenant_id, invoice_id, version, services.clock()))
    if read is None:
        return []
    counted, heads, documents, locks = read
    runs = counted.map_runs
    if runs > MAP_RUNS_LIMIT:
        unfinished = runs - 1
        return ledger.retrying(lambda s: _hold_crashed(s, tenant_id, invoice_id, version, unfinished))
    failpoint("map.decide")  # a fault test arms this one (any bill) or the next (one bill)
    failpoint(f"map.decide.{invoice_id}")
    # The supplier's documents, fetched before the bill is decided READY (a batch never claims it first).
    would_go: list[bool] = []  # what the fetch was decided on (asked only for a bill with documents)

    def asked_would_go() -> bool:
        would_go.append(_would_go(services, tenant_id, invoice_id))
        return would_go[-1]

    try:
        missing = attachments.prepare(services, tenant_id, documents, would_go=asked_would_go)
    except XeroRateLimited:  # the budget's, not the bill's: this run does not count towards holding it
        services.ledger.retrying(lambda s: attachments_store.uncount_map_run(s, tenant_id, invoice_id, version))
        raise
    as_counted = [(counted, heads)]  # the bill and mapping heads as the run count read them; a retry reads again

    def work(session: Session) -> list[Message]:
        # The first try writes the bill as the run count read it, without reading it again: its row
        # version makes the write lose (and this run again, reading afresh) if anything wrote it since.
        bill: BillRead | None
        bill, read_heads = as_counted[-1] if as_counted else (inputs.bill(session, tenant_id, invoice_id), None)
        if bill is None or bill.version != version or bill.state != BillState.DISCOVERED:
            return []
        try:
            outcome, effective = _decide(session, tenant_id, bill, read_heads)
        except (LedgerError, NeedsTransaction):
            raise  # the ledger's trouble, not the bill's: retried or reported as before
        except Exception as error:  # never left DISCOVERED: held, explained, and the batch asked for as usual
            needs_transaction(session)  # the event is a write of its own, with the bill's
            held_for = decision_failed(error, f"tenant {tenant_id} invoice {invoice_id}")
            outcome, effective = MappingOutcome(BillState.HELD, (held_for,), None), None
            session.add(OperationalEvent(kind=BILL_HELD_BAD_RECORD, tenant_id=tenant_id,
                                         message=f"bill {invoice_id}: {held_for.text()}"))
            log.exception("bill %s of tenant %s HELD: %s", invoice_id, tenant_id, held_for.text())
        # Nothing fetched because the bill would not go, yet it goes: the map in force changed between the
        # two reads. Never without its documents: it waits as for a document not had, and the next poll
        # maps it (and fetches) again.
        waits_for = attachments.not_fetched() if would_go == [False] else missing
        if waits_for is not None and outcome.state == BillState.READY:  # only its own bill waits for a document
            outcome = MappingOutcome(BillState.HELD, (*outcome.reasons, waits_for), outcome.record)
        if outcome.state == BillState.READY and outcome.record is not None:
            left_out = attachments.over_cap(session, bill)
            if left_out:  # a document too big to send: the bill goes flagged, saying which
                outcome = MappingOutcome(BillState.READY, (*outcome.reasons, *left_out),
                                         attachments.flagged_for_size(outcome.record, left_out))
        documents = _documents_retry(bill, outcome, tried=missing is not None, now=services.clock())
        reason = "; ".join(r.text() for r in outcome.reasons) or None
        # A credit note never counts against a PO's total (see domain.credit_notes). A bill never mapped
        # before has no links to replace (links are made only here, with mapped_version).
        linked = outcome.record if bill.document_type != CREDIT_NOTE else None
        try:
            left = write_decision(session, bill, outcome.state, {
                "reasons": [r.as_json() for r in outcome.reasons], "mapping": outcome.record,
                "mapped_version": bill.version, "mapping_version": effective.own_version if effective else None,
                "mapping_profile_id": effective.profile_id if effective else None,
                "mapping_profile_version": effective.profile_version if effective else None, "map_runs": 0,
                **documents,
            }, reason=reason, mapped_with=effective.described if effective else None,
                po_ids=(linked or {}).get("po_ids", []), amount=str(linked["total"] if linked else "0"),
                had_links=bill.mapped_version is not None)
        except CONCURRENT_WRITE:
            as_counted.clear()  # lost the race for the bill's row: the next try reads it afresh
            raise
        if left < 0:  # decided at once, its tenant's count below zero: recounted in a transaction of its own
            left = ledger.retrying(lambda s: backlog.recount(s, tenant_id))  # (its lock held to the count)
        log.info("bill %s of tenant %s: %s", invoice_id, tenant_id, outcome.state)
        return asks_after_mapping(tenant_id, left)  # the files it asks for: see _batch_once_all_mapped

    # A decision that locks no PO and has no links to replace is one statement: committed by itself.
    return ledger.retrying(work) if locks else ledger.at_once(work)


def _documents_retry(bill: BillRead, outcome: MappingOutcome, *, tried: bool, now: datetime) -> dict[str, Any]:
    """When a bill held for a document Xero failed to serve is tried again: after `failures` tries in a row
    at this version, on the backoff (domain.backoff.documents_retry_wait), so a document that stays broken
    costs a few calls a day rather than two a poll. A new version counts from the start (a release sets
    it back too); a bill held because the map changed meanwhile (nothing was asked of Xero) keeps its
    count and is tried at the next poll. Any other decision clears both."""
    if outcome.state != BillState.HELD or not any(r.code == attachments.UNAVAILABLE for r in outcome.reasons):
        return {"documents_failures": 0, "documents_retry_at": None}
    before = bill.documents_failures if bill.mapped_version == bill.version else 0
    if not tried:
        return {"documents_failures": before, "documents_retry_at": now}
    return {"documents_failures": before + 1, "documents_retry_at": now + documents_retry_wait(before + 1)}


def _count_and_read(session: Session, tenant_id: str, invoice_id: str, version: int, now: datetime,
                    ) -> tuple[BillRead, MappingHeads, attachments.Wanted | None, bool] | None:
    """What comes before the decision: the run counted by one statement committed by itself (so a
    worker that dies mid-mapping leaves it counted), the bill and its tenant's mapping heads read back by
    that same statement, for a bill with documents what fetching them starts from, and whether its
    decision will lock POs or replace PO links (so it needs a transaction). None when there is nothing
    to do."""
    read = count_run_and_read(session, tenant_id, invoice_id, version, now)
    if read is None:
        return None
    counted, heads = read
    return counted, heads, attachments.wanted(session, tenant_id, counted, heads), \
        _decision_locks(session, tenant_id, counted, heads)


def _decision_locks(session: Session, tenant_id: str, bill: BillRead, heads: MappingHeads) -> bool:
    """Whether deciding the bill locks POs (it names PO numbers) or replaces its PO links (mapped before):
    then the decision is a transaction; else its one write commits by itself. A payload too broken to
    say is decided in a transaction (and held there)."""
    if bill.mapped_version is not None:
        return True
    try:
        fields = credit_note_fields(bill.payload) if bill.document_type == CREDIT_NOTE else bill_fields(bill.payload)
        return bool(po_keys_in(fields, effective_mapping(session, tenant_id, heads).rules.po_fields))
    except LedgerError:
        raise
    except Exception:  # the decision says what is wrong with it
        return True


def _hold_crashed(session: Session, tenant_id: str, invoice_id: str, version: int, runs: int) -> list[Message]:
    bill = inputs.bill(session, tenant_id, invoice_id)
    if bill is None or bill.version != version or bill.state != BillState.DISCOVERED:
        return []
    held_for = Reason("crashed_worker", {"runs": runs})
    bill.reasons = [held_for.as_json()]
    bill.mapping = None
    bill.map_runs = 0
    record(session, bill, BillState.HELD, reason=held_for.text())
    session.add(OperationalEvent(kind=BILL_HELD_CRASHED_WORKER, tenant_id=tenant_id,
                                 message=f"bill {invoice_id}: {held_for.text()}"))
    session.flush()
    log.error("bill %s of tenant %s HELD: %s", invoice_id, tenant_id, held_for.text())
    return _batch_once_all_mapped(session, tenant_id)


def _batch_once_all_mapped(session: Session, tenant_id: str) -> list[Message]:
    """The last bill of the tenant to be mapped asks for the cycle's files, and some before it for the files
    already full (services.batch.asks_after_mapping). The tenant's map backlog says how many are left in
    one row (never a count over its bills). If the last message is lost, the sweeper asks for it once the
    READY bills are stale."""
    return asks_after_mapping(tenant_id, backlog.still_to_map(session, tenant_id))


def _would_go(services: Services, tenant_id: str, invoice_id: str) -> bool:
    """Whether mapping would send the bill now (its documents are fetched only then)."""
    with services.ledger.transaction() as session:
        bill = inputs.bill(session, tenant_id, invoice_id)
        return bill is not None and _decide(session, tenant_id, bill)[0].state == BillState.READY


def decide_without_storing(session: Session, tenant_id: str, bill: Bill) -> MappingOutcome:
    """What mapping would decide for the bill under the mapping set the session sees; changes nothing
    (a mapping import's dry run)."""
    return _decide(session, tenant_id, bill)[0]


def _decide(session: Session, tenant_id: str, bill: BillRead,
            heads: MappingHeads | None = None) -> tuple[MappingOutcome, EffectiveMapping]:
    heads = heads or mapping_heads(session, tenant_id)  # one row: is what this worker holds still current?
    effective = effective_mapping(session, tenant_id, heads)  # the one resolution of own set and profile
    version, rules, maps = effective.own_version, effective.rules, effective.maps
    if bill.document_type == CREDIT_NOTE:
        reference = CACHE.reference(tenant_id, heads.reference_version)
        return _decide_credit_note(session, tenant_id, bill, version, rules, maps, reference), effective
    try:
        parsed = parse_bill(bill.payload, tenant_id=tenant_id)
    except RecordProblem as problem:
        return MappingOutcome(BillState.HELD, (Reason("bad_record", {"problem": str(problem)}),), None), effective
    reference = CACHE.reference(tenant_id, heads.reference_version)
    fields = bill_fields(bill.payload)
    keys = po_keys_in(fields, rules.po_fields)
    orders, billed = _purchase_orders(session, tenant_id, keys, billed=True)
    po_ids = [po.purchase_order_id for group in orders.values() for po in group]
    context = MappingContext(
        rules=rules, maps=maps, version=version,
        vendors=_vendors(session, tenant_id, parsed.contact_id, reference),
        accounts=_accounts(session, tenant_id, parsed, reference),
        purchase_orders=orders,
        billed_against=billed if billed is not None else _billed_against(session, tenant_id, po_ids),
    )
    return map_bill(parsed, context, fields), effective


def _decide_credit_note(session: Session, tenant_id: str, row: BillRead, version: int, rules: TenantRules,
                        maps: Maps, reference: TenantReference) -> MappingOutcome:
    """A supplier credit note, by the rules of bills (domain.credit_notes), with the ledger state of each
    bill it is allocated to."""
    try:
        credit = parse_credit_note(row.payload, tenant_id=tenant_id)
    except RecordProblem as problem:
        return MappingOutcome(BillState.HELD, (Reason("bad_record", {"problem": str(problem)}),), None)
    fields = credit_note_fields(row.payload)
    keys = po_keys_in(fields, rules.po_fields)
    context = MappingContext(
        rules=rules, maps=maps, version=version,
        vendors=_vendors(session, tenant_id, credit.note.contact_id, reference),
        accounts=_accounts(session, tenant_id, credit.note, reference),
        purchase_orders=_purchase_orders(session, tenant_id, keys)[0],
    )
    states = bill_states(session, tenant_id, [a.invoice_id for a in credit.allocations])
    return map_credit_note(credit, context, fields, states)


def bill_fields(payload: dict[str, Any]) -> dict[str, str]:
    """The bill's text fields a tenant may name as carrying PO numbers."""
    lines = payload.get("LineItems") or []
    return {
        "InvoiceNumber": str(payload.get("InvoiceNumber") or ""),
        "Reference": str(payload.get("Reference") or ""),
        "LineDescriptions": "\n".join(str(line.get("Description") or "") for line in lines),
    }


def _vendors(session: Session, tenant_id: str, contact_id: str, reference: TenantReference) -> dict[str, Vendor]:
    """The bill's contact and the chain of contacts it was merged into (from the worker's copy when it
    holds them under the tenant's current reference version)."""
    found: dict[str, Vendor] = {}
    wanted: str | None = contact_id
    for _ in range(MERGE_DEPTH + 1):
        if wanted is None or wanted in found:
            break
        cached = reference.contacts.get(wanted)
        if cached is None:
            row = inputs.contact(session, tenant_id, wanted)
            usable = row is not None and not row.unusable_reason  # Xero sent it unusable: unknown until fixed
            cached = CachedContact(parse_vendor(row.payload) if row is not None and usable else None,
                                   row.merged_to if row is not None and usable else None)
            reference.contacts[wanted] = cached
        if cached.vendor is None:
            break
        found[wanted] = cached.vendor
        wanted = cached.merged_to
    return found


def _accounts(session: Session, tenant_id: str, bill: XeroBill, reference: TenantReference) -> dict[str, Account]:
    codes = {line.account_code for line in bill.lines if line.account_code}
    missing = codes - reference.accounts.keys()
    if missing:
        rows = inputs.accounts_by_code(session, tenant_id, missing)
        reference.accounts.update(dict.fromkeys(missing))
        reference.accounts.update({row.code: Account(row.code, row.status) for row in rows if row.code})
    return {code: account for code in codes if (account := reference.accounts.get(code)) is not None}


def _purchase_orders(session: Session, tenant_id: str, keys: list[str], *, billed: bool = False,
                     ) -> tuple[dict[str, list[PurchaseOrder]], dict[str, dict[Any, Decimal]] | None]:
    """The POs with these keys, locked until this mapping commits (the second of two bills against one PO
    sees the first in its total); with `billed`, also what is billed against them when the same statement
    could read it (see store.mapping_inputs.purchase_orders_locked_and_billed), else None."""
    if not keys:
        return {}, {}
    found: dict[str, list[PurchaseOrder]] = {}
    rows, billed_against = (inputs.purchase_orders_locked_and_billed(session, tenant_id, keys) if billed
                            else (inputs.purchase_orders_locked(session, tenant_id, keys), None))
    for key, payload in rows:
        if not key:
            continue
        try:
            found.setdefault(key, []).append(parse_purchase_order(payload, tenant_id=tenant_id))
        except RecordProblem as problem:  # one bad PO must not stop every bill that names it
            log.warning("%s; the PO is left out of matching", problem)
    return found, billed_against


def _billed_against(session: Session, tenant_id: str, po_ids: list[str]) -> dict[str, dict[str, Decimal]]:
    return inputs.billed_against(session, tenant_id, po_ids) if po_ids else {}


