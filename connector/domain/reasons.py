"""Why a bill is held or excluded: codes with parameters, rendered to operator text in one place."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TEXTS: dict[str, str] = {
    "not_a_bill": "Xero type {type} is not a vendor bill (ACCPAY)",
    "status_not_eligible": "Xero status {status} is not sent to Stampli (eligible: {eligible})",
    "bad_record": "Xero record is unusable: {problem}",
    "no_po": "no purchase order number found in the bill's reference {reference!r}",
    "unknown_po": "purchase order {number} named in the reference is not in Xero",
    "line_without_account": "line {line} has no account code",
    "unmapped_gl": "line {line}: Xero account {account} has no Stampli GL code",
}


@dataclass(frozen=True)
class Reason:
    code: str
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if "code" in self.params:
            raise ValueError("a reason's parameters cannot be named 'code': it is the reason's own code")

    def as_json(self) -> dict[str, Any]:
        return {**self.params, "code": self.code}


def render(reason: dict[str, Any]) -> str:
    """Operator text for a stored reason; unknown codes still render, never raise."""
    params = {k: v for k, v in reason.items() if k != "code"}
    template = TEXTS.get(str(reason.get("code")))
    if template is None:
        return f"{reason.get('code')}: {params}"
    try:
        return template.format(**params)
    except (KeyError, IndexError):
        return f"{reason.get('code')}: {params}"
