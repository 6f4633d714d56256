"""Why a bill is held, excluded or flagged: codes with parameters, each in a class a tenant sets a
policy for, rendered to operator text in this one place."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from connector.domain.rules import ReasonClass

# code: (class or None for fixed outcomes, operator text)
CATALOGUE: dict[str, tuple[ReasonClass | None, str]] = {
    "not_a_bill": (None, "Xero type {type} is not a vendor bill (ACCPAY)"),
    "not_a_supplier_credit": (None, "Xero type {type} is not a supplier credit note (ACCPAYCREDIT)"),
    "allocated_bill_not_delivered": (ReasonClass.ALLOCATION, "the credit note is allocated to bill {number}, "
                                                             "which Stampli does not have yet ({state})"),
    "allocated_bills_excluded": (None, "the credit note is applied in full to bills never sent to Stampli "
                                       "({numbers}: excluded)"),
    "attachment_unavailable": (None, "the supplier's document {name!r} could not be fetched from Xero: {problem}; "
                                     "the next poll tries again"),
    "attachment_over_cap": (None, "the supplier's document {name!r} ({size} bytes) is over the tenant's cap of "
                                  "{cap} bytes: not sent; the bill goes flagged"),
    "status_not_eligible": (None, "Xero status {status} is not sent to Stampli (eligible: {eligible})"),
    "bad_record": (None, "Xero record is unusable: {problem}"),
    "no_po": (ReasonClass.NO_PO, "no purchase order number found in {fields} ({reference!r})"),
    "unknown_po": (ReasonClass.UNKNOWN_PO, "purchase order {number} named in the bill is not in Xero"),
    "ambiguous_po": (ReasonClass.PO_MISMATCH, "{number} matches several purchase orders: {candidates}"),
    "po_other_supplier": (ReasonClass.PO_MISMATCH, "purchase order {number} belongs to another supplier"),
    "po_other_currency": (ReasonClass.PO_MISMATCH, "purchase order {number} is in {po_currency}, the bill in "
                                                   "{currency}"),
    "po_not_billable": (ReasonClass.PO_MISMATCH, "purchase order {number} is {status}, not billable"),
    "po_amount_variance": (ReasonClass.AMOUNT_VARIANCE, "bill total {bill_total} differs from its purchase "
                                                        "orders' {po_total} by {difference} (tolerance {tolerance})"),
    "po_over_billed": (ReasonClass.AMOUNT_VARIANCE, "bills against {numbers} come to {billed} with this one "
                                                    "({already} before it), over the purchase orders' {po_total} "
                                                    "(tolerance {tolerance})"),
    "line_without_account": (ReasonClass.UNMAPPED_GL, "line {line} has no account code"),
    "unmapped_gl": (ReasonClass.UNMAPPED_GL, "line {line}: Xero account {account} has no Stampli GL code"),
    "archived_account": (ReasonClass.UNMAPPED_GL, "line {line}: Xero account {account} is archived"),
    "unmapped_dimension": (ReasonClass.UNMAPPED_DIMENSION, "line {line}: tracking {category} / {option} has no "
                                                           "Stampli dimension"),
    "vendor_unknown": (ReasonClass.VENDOR, "vendor {contact} is not known to the connector yet"),
    "vendor_archived": (ReasonClass.VENDOR, "vendor {name} is archived in Xero"),
    "vendor_not_supplier": (ReasonClass.VENDOR, "contact {name} is not a supplier in Xero"),
    "vendor_no_tax_number": (ReasonClass.VENDOR, "vendor {name} has no tax number, which this tenant requires"),
    "vendor_unmapped": (ReasonClass.VENDOR, "vendor {name} has no Stampli vendor code in the vendor map"),
    "money_mismatch": (ReasonClass.MONEY, "{what}: {expected} expected, Xero says {actual}"),
    "released": (None, "released by {by}: {why}"),
    "unrenderable": (None, "the Stampli file cannot carry this bill: {problem}"),
    "crashed_worker": (None, "mapping this bill stopped its worker {runs} times without finishing; see the "
                             "worker logs, then `connector holds release`"),
}


@dataclass(frozen=True)
class Reason:
    code: str
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if "code" in self.params:
            raise ValueError("a reason's parameters cannot be named 'code': it is the reason's own code")
        if self.code not in CATALOGUE:
            raise ValueError(f"unknown reason code {self.code!r}")

    @property
    def reason_class(self) -> ReasonClass | None:
        return CATALOGUE[self.code][0]

    def as_json(self) -> dict[str, Any]:
        return {**self.params, "code": self.code}

    def text(self) -> str:
        return render(self.as_json())


def render(reason: dict[str, Any]) -> str:
    """Operator text for a stored reason; unknown codes or missing parameters still render, never raise."""
    params = {k: v for k, v in reason.items() if k != "code"}
    entry = CATALOGUE.get(str(reason.get("code")))
    if entry is None:
        return f"{reason.get('code')}: {params}"
    try:
        return entry[1].format(**params)
    except (KeyError, IndexError):
        return f"{reason.get('code')}: {params}"


def render_with_next_try(reasons: list[dict[str, Any]], documents_retry_at: datetime | None) -> list[str]:
    """Operator text for a held bill's reasons, a document Xero failed to serve saying when the poll asks
    for it again (its backoff: domain.backoff.documents_retry_wait)."""
    when = f" (next try at {documents_retry_at:%Y-%m-%d %H:%M} UTC, or at once on a new version in Xero or a " \
        "release)" if documents_retry_at is not None else ""
    return [render(r) + (when if r.get("code") == "attachment_unavailable" else "") for r in reasons]
