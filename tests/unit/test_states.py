"""The bill life cycle is an explicit table; anything else is refused."""

from __future__ import annotations

import pytest

from connector.domain.states import BillState, can_move


@pytest.mark.parametrize(
    ("source", "target", "allowed"),
    [
        (BillState.DISCOVERED, BillState.READY, True),
        (BillState.READY, BillState.BATCHED, True),
        (BillState.BATCHED, BillState.DELIVERED, True),
        (BillState.DELIVERED, BillState.CHANGED_AFTER_DELIVERY, True),
        (BillState.DELIVERED, BillState.READY, False),
        (BillState.HELD, BillState.BATCHED, False),
        (BillState.EXCLUDED, BillState.READY, False),
        (BillState.DISCOVERED, BillState.DELIVERED, False),
    ],
)
def test_transition_table(source: BillState, target: BillState, allowed: bool) -> None:
    assert can_move(source, target) is allowed
