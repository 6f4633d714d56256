"""A tenant's mapping rules and maps, as typed values. Loaded from YAML/CSV elsewhere; pure here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum


class Policy(StrEnum):
    """What a reason does to a bill: keep it for a person, leave it out of Stampli, or send it flagged."""

    HOLD = "hold"
    EXCLUDE = "exclude"
    DELIVER_FLAGGED = "deliver_flagged"


class ReasonClass(StrEnum):
    """The groups of reasons a tenant sets a policy for."""

    NO_PO = "no_po"
    UNKNOWN_PO = "unknown_po"
    PO_MISMATCH = "po_mismatch"          # other supplier, other currency, not billable, ambiguous number
    AMOUNT_VARIANCE = "amount_variance"  # bill total differs from its POs' beyond the tolerance
    UNMAPPED_GL = "unmapped_gl"          # no account code, unmapped code, archived account
    UNMAPPED_DIMENSION = "unmapped_dimension"
    VENDOR = "vendor"                    # unknown, archived, not a supplier, missing tax number, unmapped
    MONEY = "money"                      # lines, tax and totals do not add up to Xero's own totals
    ALLOCATION = "allocation"            # a credit note applied to a bill Stampli does not have yet


DEFAULT_POLICIES: Mapping[ReasonClass, Policy] = {reason_class: Policy.HOLD for reason_class in ReasonClass}


class UnmappedTracking(StrEnum):
    HOLD = "hold"                  # an unmapped option is a reason (class unmapped_dimension)
    IGNORE = "ignore"              # the dimension is left empty
    PASS_THROUGH = "pass_through"  # noqa: S105 (not a secret) the Xero category and option names go as they are


@dataclass(frozen=True)
class TenantRules:
    eligible_statuses: tuple[str, ...] = ("AUTHORISED",)
    # a supplier credit note applied in full to bills is PAID at once in Xero, so PAID is eligible too
    credit_note_statuses: tuple[str, ...] = ("AUTHORISED", "PAID")
    po_fields: tuple[str, ...] = ("InvoiceNumber",)  # bill fields searched for PO numbers
    billable_po_statuses: tuple[str, ...] = ("AUTHORISED", "BILLED")
    amount_tolerance: Decimal = Decimal("0.00")          # absolute, in the bill's currency
    amount_tolerance_percent: Decimal = Decimal("0")     # of the POs' total; the larger tolerance wins
    allow_partial_billing: bool = True  # a bill below its POs' total is a partial delivery, not a variance
    require_tax_number: bool = False
    require_vendor_map: bool = False
    unmapped_tracking: UnmappedTracking = UnmappedTracking.HOLD
    policies: Mapping[ReasonClass, Policy] = field(default_factory=lambda: dict(DEFAULT_POLICIES))

    def policy(self, reason_class: ReasonClass) -> Policy:
        return self.policies.get(reason_class, Policy.HOLD)


@dataclass(frozen=True)
class Maps:
    gl: Mapping[str, str] = field(default_factory=dict)  # Xero account code → Stampli GL code
    # (Xero tracking category, option) → (Stampli dimension, value); option "*" maps a whole category
    tracking: Mapping[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    vendors: Mapping[str, str] = field(default_factory=dict)  # Xero ContactID → Stampli vendor code
