"""The delivery life cycle of a batch file, as pure tables: the one owner of "never twice, never lost".

A batch is STAGED until the remote rename of its file (the commit point) is known to have happened,
then DELIVERED; FAILED waits for a person. Every delivery attempt ends with one `settle` decision made
from what happened to it, never from who happens to hold the lease: once the rename is known to have
happened the batch is DELIVERED, whoever owns it by then. Backoff for every retry site lives here too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from connector.domain.backoff import backoff


class BatchState(StrEnum):
    STAGED = "STAGED"            # bytes rendered, stored and staged; not yet known to be committed remotely
    DELIVERED = "DELIVERED"      # the remote rename happened (or the file was found whole, or taken)
    FAILED = "FAILED"            # a person must act; the stored bytes stay for replay


_BATCH_MOVES: Final[dict[BatchState, frozenset[BatchState]]] = {
    BatchState.STAGED: frozenset({BatchState.DELIVERED, BatchState.FAILED}),
    # Evidence of a rename outranks an earlier give-up; a replay puts a failed file back in line.
    BatchState.FAILED: frozenset({BatchState.DELIVERED, BatchState.STAGED}),
    BatchState.DELIVERED: frozenset(),
}


def batch_can_move(source: BatchState, target: BatchState) -> bool:
    return source == target or target in _BATCH_MOVES[source]


class AttemptOutcome(StrEnum):
    STARTED = "STARTED"                  # written before any network call
    COMMITTING = "COMMITTING"            # written just before the remote rename: the file may be visible
    UPLOADED = "UPLOADED"                # we renamed our `.part` into place
    ALREADY_PRESENT = "ALREADY_PRESENT"  # the whole file was already in the folder (an earlier commit)
    TAKEN = "TAKEN"                      # an earlier attempt renamed and the importer has since taken it
    RETRY = "RETRY"                      # failed before the commit point; tried again later
    COMMIT_UNKNOWN = "COMMIT_UNKNOWN"    # lost sight of the server at the commit point; the folder decides
    SUPERSEDED = "SUPERSEDED"            # failed after losing the lease; the owner's outcome stands
    ABANDONED = "ABANDONED"              # its worker died before the commit point (found by the next one)
    FAILED = "FAILED"                    # gave up; a person acts, then replays
    UNKNOWN_REPLAYED = "UNKNOWN_REPLAYED"  # a doubt a person resolved by replaying


#: Outcomes that leave a doubt: the rename may have happened. The next attempt reads the folder.
DOUBTFUL: Final = frozenset({AttemptOutcome.COMMITTING, AttemptOutcome.COMMIT_UNKNOWN})


class Commit(StrEnum):
    """What an attempt knows about the commit point when it ends."""

    NOT_REACHED = "not_reached"        # failed before marking COMMITTING
    NOT_RENAMED = "not_renamed"        # reached it, and the folder shows the rename did not happen
    RENAMED = "renamed"                # our rename went through
    FOUND_WHOLE = "found_whole"        # the final file was already there with our bytes
    TAKEN = "taken"                    # an earlier attempt's rename is proven by its vanished `.part`
    UNKNOWN = "unknown"                # reached it, then the connection or the process failed


COMMITTED: Final = frozenset({Commit.RENAMED, Commit.FOUND_WHOLE, Commit.TAKEN})


class Failure(StrEnum):
    TRANSIENT = "transient"      # network, server hiccup: try again later
    PERMANENT = "permanent"      # a person must act (credentials, host key, full disk, conflicting file)
    INTERRUPTED = "interrupted"  # a bug, a time limit or a lost lease: let a later attempt try


@dataclass(frozen=True)
class AttemptFacts:
    """Everything `settle` may look at: what the attempt saw, and the batch as it is now."""

    batch_state: BatchState
    owns_lease: bool
    commit: Commit
    failure: Failure | None
    attempts: int  # attempts made on this batch so far, this one included


@dataclass(frozen=True)
class Settlement:
    outcome: AttemptOutcome
    batch_state: BatchState
    retry_in: float | None = None   # seconds until the next attempt is due; None: nothing scheduled
    release_lease: bool = False
    announce: bool = False          # a batch newly FAILED: an operational event and a line in status


def settle(facts: AttemptFacts, *, backoff: Callable[[int], float] | None = None) -> Settlement:
    """Decide an attempt's outcome and the batch's next state from the facts alone."""
    wait = backoff or delivery_backoff
    if facts.commit in COMMITTED:
        outcome = {Commit.RENAMED: AttemptOutcome.UPLOADED, Commit.FOUND_WHOLE: AttemptOutcome.ALREADY_PRESENT,
                   Commit.TAKEN: AttemptOutcome.TAKEN}[facts.commit]
        return Settlement(outcome, BatchState.DELIVERED, release_lease=facts.owns_lease)
    if facts.failure is None:
        raise ValueError(f"an attempt that did not commit must say how it failed: {facts}")
    doubtful = facts.commit is Commit.UNKNOWN
    if not facts.owns_lease or facts.batch_state != BatchState.STAGED:
        # Someone else owns the batch now (or it is settled): their outcome stands; a doubt is kept.
        return Settlement(AttemptOutcome.COMMIT_UNKNOWN if doubtful else AttemptOutcome.SUPERSEDED,
                          facts.batch_state)
    if facts.failure is Failure.PERMANENT and not doubtful:
        return Settlement(AttemptOutcome.FAILED, BatchState.FAILED, release_lease=True, announce=True)
    # A doubt is never handed to a person while the folder can settle it: the next attempt reads it first
    # (and if the rename did not happen, the permanent failure comes back before the commit point).
    return Settlement(AttemptOutcome.COMMIT_UNKNOWN if doubtful else AttemptOutcome.RETRY, BatchState.STAGED,
                      retry_in=wait(facts.attempts), release_lease=True)


class Evidence(StrEnum):
    """What the import folder shows for a batch whose earlier attempt may have renamed its file."""

    FINAL_WHOLE = "final_whole"      # our file, whole: delivered
    PART_ONLY = "part_only"          # our `.part` is still there: the rename never happened
    NOTHING = "nothing"              # neither: the rename happened and the importer took the file
    NO_DOUBT = "no_doubt"            # no earlier attempt reached the commit point


def commit_from_evidence(evidence: Evidence) -> Commit | None:
    """Read the folder after a crash at the commit point; None: upload (again) as usual.

    Safe because of two rules we keep: a `.part` is only ever renamed or removed by us, and never removed
    after COMMITTING without first seeing that the rename did not happen; and the importer takes only
    finished files. So a vanished `.part` with no final file can only mean the rename happened."""
    if evidence is Evidence.NOTHING:
        return Commit.TAKEN
    if evidence is Evidence.FINAL_WHOLE:
        return Commit.FOUND_WHOLE
    return None


#: Redeliveries of one batch whose worker died mid-attempt before the batch is parked as FAILED.
MAX_ABANDONED_ATTEMPTS: Final = 3


DELIVERY_BACKOFF_BASE_SECONDS: Final = 5.0
#: At most 15 minutes between tries: a server that comes back after a long outage gets its files within a
#: quarter of an hour, and a server that stays down sees one connection per file every 15 minutes.
DELIVERY_BACKOFF_CAP_SECONDS: Final = 15 * 60.0


def delivery_backoff(attempt: int, cap: float = DELIVERY_BACKOFF_CAP_SECONDS) -> float:
    """How long a batch waits after its `attempt`-th failed delivery: 5 s doubling up to `cap` (15 minutes
    unless CONNECTOR_DELIVERY_BACKOFF_CAP_SECONDS says otherwise)."""
    return backoff(attempt, base=DELIVERY_BACKOFF_BASE_SECONDS, cap=cap)
