"""A bill's life cycle as an explicit table of allowed transitions."""

from __future__ import annotations

from enum import StrEnum

from connector.domain.delivery import BatchState

__all__ = ["IN_A_FILE", "IN_FLIGHT", "REMAPPABLE", "BatchState", "BillState", "can_move"]


class BillState(StrEnum):
    DISCOVERED = "DISCOVERED"              # read from Xero, not yet mapped (or changed since)
    READY = "READY"                        # mapped; waits for a batch
    HELD = "HELD"                          # needs a person: reasons say why
    EXCLUDED = "EXCLUDED"                  # not for Stampli (status, policy): reasons say why
    BATCHED = "BATCHED"                    # claimed into one batch file
    DELIVERED = "DELIVERED"                # its file was committed on the SFTP target
    FAILED = "FAILED"                      # delivery gave up; replayable
    CHANGED_AFTER_DELIVERY = "CHANGED_AFTER_DELIVERY"  # Xero edited a bill Stampli already has


_ALLOWED: dict[BillState, frozenset[BillState]] = {
    BillState.DISCOVERED: frozenset({BillState.READY, BillState.HELD, BillState.EXCLUDED}),
    BillState.READY: frozenset({BillState.BATCHED, BillState.DISCOVERED, BillState.HELD}),
    BillState.HELD: frozenset({BillState.DISCOVERED, BillState.READY}),
    BillState.EXCLUDED: frozenset({BillState.DISCOVERED}),
    BillState.BATCHED: frozenset({BillState.DELIVERED, BillState.FAILED}),
    BillState.DELIVERED: frozenset({BillState.CHANGED_AFTER_DELIVERY, BillState.BATCHED}),
    # DELIVERED: a superseded attempt's rename, proven after the batch was given up.
    BillState.FAILED: frozenset({BillState.BATCHED, BillState.DISCOVERED, BillState.DELIVERED}),
    BillState.CHANGED_AFTER_DELIVERY: frozenset({BillState.DISCOVERED}),
}

# States whose bill is still moving by itself; anything else waits for Xero or a person.
IN_FLIGHT = frozenset({BillState.DISCOVERED, BillState.READY, BillState.BATCHED})

# States a new version from Xero re-opens for mapping (never a bill Stampli already has).
REMAPPABLE = frozenset({BillState.DISCOVERED, BillState.READY, BillState.HELD, BillState.EXCLUDED})

# States whose bill was put in a file, whose bytes are fixed: Stampli has, or will have by a delivery or a
# replay, the bill as it was mapped then (a change in Xero after that is compared with what it was sent as).
IN_A_FILE = frozenset(BillState) - REMAPPABLE


def can_move(source: BillState, target: BillState) -> bool:
    return target in _ALLOWED[source]
