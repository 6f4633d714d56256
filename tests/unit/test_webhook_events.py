"""Which Xero webhook events wake a tenant's poll, and which also ask it to read supplier credit notes.

Every data event wakes the poll (the poll is the one reader of Xero). A CREDITNOTE event also asks for
the credit notes to be read at once, unless Xero says it is a sales credit note (`data.Type`
ACCRECCREDIT): those are never read, so asking would spend a CreditNotes call for nothing. An event
without `data` asks, to be safe."""

from __future__ import annotations

import json
from typing import Any

import pytest

from connector.domain.webhooks import announces_credit_notes, parse_payload, wakes_a_poll

TENANT = "aef86862-2015-4b6b-88bc-d89032cecc50"


def event(category: str, **extra: Any) -> dict[str, Any]:
    """As Xero's webhooks spec shows one (xero-webhooks.yaml, the credit note example)."""
    return {"resourceUrl": "https://api.xero.com/api.xro/2.0/CreditNotes/55d84274-a3da-4829-a7c0-0cab601b95cc",
            "resourceId": "55d84274-a3da-4829-a7c0-0cab601b95cc", "tenantId": TENANT, "tenantType": "ORGANISATION",
            "eventCategory": category, "eventType": "CREATE", "eventDateUtc": "2025-12-02T00:44:09.923", **extra}


@pytest.mark.parametrize(("sent", "wakes", "asks"), [
    (event("CREDITNOTE", data={"Type": "ACCPAYCREDIT", "Status": "DRAFT"}), True, True),
    (event("CREDITNOTE", data={"Type": "ACCPAYCREDIT", "Status": "AUTHORISED"}), True, True),
    (event("CREDITNOTE", data={"Type": "ACCRECCREDIT", "Status": "AUTHORISED"}), True, False),
    (event("CREDITNOTE"), True, True),
    (event("CREDITNOTE", data="not an object"), True, True),
    (event("INVOICE"), True, False),
    (event("CONTACT"), True, False),
    (event("SUBSCRIPTION"), False, False),
])
def test_what_an_event_wakes_and_asks(sent: dict[str, Any], wakes: bool, asks: bool) -> None:
    body = json.dumps({"events": [sent], "firstEventSequence": 76, "lastEventSequence": 76,
                       "entropy": "FXNGWLCCGVANWHKILRUB"}).encode()
    [parsed] = parse_payload(body).events
    assert (wakes_a_poll(parsed), announces_credit_notes(parsed)) == (wakes, asks)
