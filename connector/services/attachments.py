"""The supplier's documents for the bills and supplier credit notes that will go to Stampli: listed and
fetched before one is decided READY, so a batch never claims a bill whose documents are not in the ledger
yet. A credit note's come from `CreditNotes/{id}/Attachments`, a bill's from `Invoices/{id}/Attachments`;
everything else is the same for both.

Only for a tenant that asked for them (`attachments` in its settings), only for bills Xero says have them
(`HasAttachments`) and that mapping would send (READY), and each attachment once: its AttachmentID and
sha256 are kept with its bytes, and a bill mapped again reuses them. What Xero lists for a bill is kept
per bill version, so a bill mapped again at the same version costs no call. Each call goes through the
tenant's rate budget like every other (one for the list, one per file). A document Xero does not serve
(an error after the inline retries, a 404, bytes of another length than listed) holds only its own bill,
`attachment_unavailable` with the reason; the poll sends such bills to be tried again on a backoff (at the
next poll, then 15 minutes on, doubling, at most a day: services.map keeps when, per bill) rather than at
every poll (after a 404 or another length, listed again: Xero may drop or replace a file without a new
version of the bill). The
rate budget spent is no fault of the bill: mapping it waits (the task is retried after Retry-After, its
run not counted), so a first sync with many documents drains at the tenant's 60 calls a minute.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from functools import partial
from typing import Any, Final, TypeVar

from connector.domain.attachments import AttachmentMode, AttachmentPolicy, Listed, choose, parse_listing
from connector.domain.reasons import Reason
from connector.domain.states import BillState
from connector.errors import (
    ConnectorError,
    XeroGrantRevoked,
    XeroRateLimited,
    XeroRequestRejected,
    XeroTokenExpired,
)
from connector.secret import Secret
from connector.services.context import Services
from connector.services.holds import reopen_held
from connector.services.messages import Message
from connector.services.profiles import effective_mapping
from connector.store import attachments as store
from connector.store.db import Session
from connector.store.mapping_inputs import BillRead
from connector.store.profiles import MappingHeads
from connector.store.tenants import get_tenant

log = logging.getLogger(__name__)

UNAVAILABLE: Final = "attachment_unavailable"
#: Document type -> where Xero serves its attachments (`<collection>/{id}/Attachments[/{AttachmentID}]`).
COLLECTIONS: Final = {"BILL": "Invoices", "CREDIT_NOTE": "CreditNotes"}
OVER_CAP: Final = "attachment_over_cap"
T = TypeVar("T")


@dataclass(frozen=True)
class Wanted:
    """What fetching one bill's documents starts from, read in the transaction that counted its run."""

    invoice_id: str
    version: int
    policy: AttachmentPolicy
    listed: list[dict[str, Any]] | None  # what Xero listed for this version, None when not asked yet
    grant_id: int
    collection: str = "Invoices"  # where Xero keeps its attachments: Invoices, or CreditNotes for a credit note

    @property
    def described(self) -> str:
        return f"{'credit note' if self.collection == 'CreditNotes' else 'bill'} {self.invoice_id}"


def wanted(session: Session, tenant_id: str, bill: BillRead, heads: MappingHeads | None = None) -> Wanted | None:
    """Whether this DISCOVERED bill may need documents fetched (a bill Xero says has them, in a tenant that
    sends them), and what is known of them; None, with no statement, for a bill without documents (nor
    for the tenant's settings, when the caller read its mapping `heads` already)."""
    if bill.state != BillState.DISCOVERED or bill.document_type not in COLLECTIONS \
            or bill.payload.get("HasAttachments") is not True:
        return None
    policy = AttachmentPolicy.from_settings(effective_mapping(session, tenant_id, heads).data.settings)
    if policy.mode is AttachmentMode.OFF:
        return None
    return Wanted(bill.invoice_id, bill.version, policy, store.listing(session, tenant_id, bill.invoice_id,
                                                                       bill.version),
                  get_tenant(session, tenant_id).grant_id, COLLECTIONS[bill.document_type])


def prepare(services: Services, tenant_id: str, bill: Wanted | None, would_go: Callable[[], bool]) -> Reason | None:
    """Fetch what this bill's documents need before it is decided; the reason that holds it when one of
    them cannot be had, else None. `would_go` says whether mapping would make it READY: asked only for a
    bill with documents in a tenant that sends them (`bill`, from `wanted`), and nothing is fetched otherwise."""
    if bill is None or not would_go():
        return None
    invoice_id, version, policy, listed, grant_id = bill.invoice_id, bill.version, bill.policy, bill.listed, \
        bill.grant_id
    files = _Files(services, tenant_id, grant_id)
    name = ""
    try:
        if listed is None:
            body = files.json(f"{bill.collection}/{invoice_id}/Attachments")
            found = parse_listing(body, bill.described)
            send, too_big = choose(policy, found)
            listed = [{**asdict(a), "id": a.attachment_id, "send": a in send}
                      | ({"over_cap": policy.max_bytes} if a in too_big else {}) for a in found]
            for skipped in too_big:  # the bill goes flagged with it (over_cap)
                log.warning("tenant %s %s: attachment %r (%s bytes) is over the tenant's cap of %s bytes; "
                            "not sent, flagged", tenant_id, bill.described, skipped.file_name,
                            skipped.content_length, policy.max_bytes)
            services.ledger.retrying(partial(store.save_listing, tenant_id=tenant_id, invoice_id=invoice_id,
                                             version=version, listed=listed, now=services.clock()))
        wanted = [Listed(i["attachment_id"], i["file_name"], i["mime_type"], i["content_length"])
                  for i in listed if i.get("send")]
        with services.ledger.transaction() as session:
            have = store.fetched_ids(session, tenant_id, [a.attachment_id for a in wanted])
        for attachment in wanted:
            if attachment.attachment_id in have:
                continue
            name = attachment.file_name
            content = files.content(f"{bill.collection}/{invoice_id}/Attachments/{attachment.attachment_id}",
                                    attachment.mime_type)
            if attachment.content_length and len(content) != attachment.content_length:
                raise ValueError(f"Xero sent {len(content):,} bytes where it listed {attachment.content_length:,}")
            if len(content) > policy.max_bytes:  # listed without its length: judged on its bytes, not kept
                log.warning("tenant %s %s: attachment %r (%s bytes, not listed) is over the tenant's cap of %s "
                            "bytes; not sent, flagged", tenant_id, bill.described, name, len(content), policy.max_bytes)
                # The listing says so at once (before the next document, which may fail and hold the bill):
                # the bill goes flagged (over_cap), and this document is never downloaded again.
                listed = [{**i, "content_length": len(content), "send": False, "over_cap": policy.max_bytes}
                          if i["attachment_id"] == attachment.attachment_id else i for i in listed]
                services.ledger.retrying(partial(store.save_listing, tenant_id=tenant_id, invoice_id=invoice_id,
                                                 version=version, listed=listed, now=services.clock()))
                continue
            digest = hashlib.sha256(content).hexdigest()

            def work(session: Session, a: Listed = attachment, data: bytes = content, sha: str = digest) -> bool:
                return store.keep(session, tenant_id=tenant_id, invoice_id=invoice_id, attachment_id=a.attachment_id,
                                  file_name=a.file_name, mime_type=a.mime_type, content=data, sha256=sha,
                                  now=services.clock())
            services.ledger.retrying(work)
            log.info("tenant %s %s: attachment %r fetched (%s bytes, sha256 %s)", tenant_id, bill.described,
                     attachment.file_name, len(content), digest)
    except (XeroGrantRevoked, XeroRateLimited):
        raise  # the grant's trouble, or the budget's: the bill is not to blame (map_invoice retries later)
    except (ConnectorError, ValueError) as failure:
        problem = str(failure).splitlines()[0][:500]
        log.error("tenant %s %s: attachment %r not fetched: %s", tenant_id, bill.described, name, problem)
        if name and isinstance(failure, XeroRequestRejected | ValueError):
            # Gone (404) or not as listed: Xero may drop or replace a file without a new version of the
            # bill, so the next try lists it again rather than ask for this file at every poll for ever.
            services.ledger.retrying(lambda s: store.forget_listing(s, tenant_id, invoice_id))
        return Reason(UNAVAILABLE, {"name": name or "(the list)", "problem": problem})
    return None


def not_fetched() -> Reason:
    """Why a bill with documents waits when mapping would send it though none was fetched for it (whether it
    would go was read under another map than its decision): as for a document not had, the next poll
    maps it again and fetches what it sends."""
    return Reason(UNAVAILABLE, {"name": "(the list)",
                                "problem": "the map in force changed while its documents were looked at"})


def over_cap(session: Session, bill: BillRead) -> list[Reason]:
    """A reason for each of the bill's documents left out for the tenant's size cap (when it was listed):
    the bill goes flagged with them, in the ledger and in its file, never silently without them. A bill
    Xero says has no documents was never listed: no statement."""
    if bill.payload.get("HasAttachments") is not True:
        return []
    listed = store.listing(session, bill.tenant_id, bill.invoice_id, bill.version) or []
    return [Reason(OVER_CAP, {"name": str(item.get("file_name")), "size": item.get("content_length"),
                              "cap": item["over_cap"]}) for item in listed if item.get("over_cap") is not None]


def flagged_for_size(record: dict[str, Any], reasons: list[Reason]) -> dict[str, Any]:
    """The mapped record flagged for the documents left out, which its Documents column names too."""
    return {**record, "flagged": True, "flags": [*record.get("flags", []), *(r.text() for r in reasons)],
            "documents_left_out": [f"not sent (over {r.params['cap']} bytes): {r.params['name']}" for r in reasons]}


def reopen_unavailable(session: Session, tenant_id: str, now: datetime) -> list[Message]:
    """Bills held because a document could not be had go back to be mapped (and fetched) again once their
    next try is due (`documents_retry_at`, on a backoff: see services.map); their map messages, to be sent
    once the caller's transaction has committed."""
    return reopen_held(session, tenant_id, {UNAVAILABLE}, why="their documents are asked for again", due_by=now)


class _Files:
    """GETs of one tenant's attachment lists and files with its token, replaced once on a 401."""

    def __init__(self, services: Services, tenant_id: str, grant_id: int) -> None:
        self._services, self._tenant_id, self._grant_id = services, tenant_id, grant_id
        self._token = services.tokens.issue(grant_id)

    def json(self, endpoint: str) -> dict[str, Any]:
        return self._again(lambda token: self._services.xero.get(token, self._tenant_id, endpoint, {}))

    def content(self, endpoint: str, mime_type: str) -> bytes:
        return self._again(lambda token: self._services.xero.get_file(token, self._tenant_id, endpoint, mime_type))

    def _again(self, call: Callable[[Secret], T]) -> T:
        try:
            return call(self._token.value)
        except XeroTokenExpired:
            self._token = self._services.tokens.reissue(self._grant_id, self._token)
        return call(self._token.value)
