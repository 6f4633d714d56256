"""The delivery life cycle as a table: how an attempt settles, whoever holds the lease by then."""

from __future__ import annotations

import pytest

from connector.domain.backoff import backoff
from connector.domain.delivery import (
    AttemptFacts,
    AttemptOutcome,
    BatchState,
    Commit,
    Evidence,
    Failure,
    batch_can_move,
    commit_from_evidence,
    settle,
)

STAGED, DELIVERED, FAILED = BatchState.STAGED, BatchState.DELIVERED, BatchState.FAILED


def facts(commit: Commit, failure: Failure | None = None, *, owns: bool = True, state: BatchState = STAGED,
          attempts: int = 1) -> AttemptFacts:
    return AttemptFacts(batch_state=state, owns_lease=owns, commit=commit, failure=failure, attempts=attempts)


@pytest.mark.parametrize(
    ("case", "given", "outcome", "batch"),
    [
        ("our rename, our lease", facts(Commit.RENAMED), AttemptOutcome.UPLOADED, DELIVERED),
        ("our rename after the lease passed on", facts(Commit.RENAMED, owns=False), AttemptOutcome.UPLOADED,
         DELIVERED),
        ("our rename after the batch was given up", facts(Commit.RENAMED, owns=False, state=FAILED),
         AttemptOutcome.UPLOADED, DELIVERED),
        ("the whole file already there", facts(Commit.FOUND_WHOLE), AttemptOutcome.ALREADY_PRESENT, DELIVERED),
        ("an earlier rename, file since taken", facts(Commit.TAKEN), AttemptOutcome.TAKEN, DELIVERED),
        ("a late record of a delivered batch", facts(Commit.RENAMED, owns=False, state=DELIVERED),
         AttemptOutcome.UPLOADED, DELIVERED),
        ("refused before the commit point", facts(Commit.NOT_REACHED, Failure.TRANSIENT), AttemptOutcome.RETRY,
         STAGED),
        ("rename refused, .part still there", facts(Commit.NOT_RENAMED, Failure.TRANSIENT), AttemptOutcome.RETRY,
         STAGED),
        ("lost sight at the commit point", facts(Commit.UNKNOWN, Failure.TRANSIENT), AttemptOutcome.COMMIT_UNKNOWN,
         STAGED),
        ("a bug or a time limit", facts(Commit.NOT_REACHED, Failure.INTERRUPTED), AttemptOutcome.RETRY, STAGED),
        ("a person must act", facts(Commit.NOT_REACHED, Failure.PERMANENT), AttemptOutcome.FAILED, FAILED),
        ("refused at the commit point, not renamed", facts(Commit.NOT_RENAMED, Failure.PERMANENT),
         AttemptOutcome.FAILED, FAILED),
        ("refused after the commit point: the folder decides, not a person",
         facts(Commit.UNKNOWN, Failure.PERMANENT), AttemptOutcome.COMMIT_UNKNOWN, STAGED),
        ("failed after losing the lease", facts(Commit.NOT_REACHED, Failure.PERMANENT, owns=False),
         AttemptOutcome.SUPERSEDED, STAGED),
        ("lost sight after losing the lease keeps the doubt", facts(Commit.UNKNOWN, Failure.TRANSIENT, owns=False),
         AttemptOutcome.COMMIT_UNKNOWN, STAGED),
        ("a failure never undoes a delivery", facts(Commit.NOT_REACHED, Failure.TRANSIENT, owns=False,
                                                     state=DELIVERED), AttemptOutcome.SUPERSEDED, DELIVERED),
    ],
)
def test_an_attempt_settles_by_what_happened(case: str, given: AttemptFacts, outcome: AttemptOutcome,
                                             batch: BatchState) -> None:
    decided = settle(given, backoff=lambda n: 10.0)
    assert (decided.outcome, decided.batch_state) == (outcome, batch), case
    assert batch_can_move(given.batch_state, decided.batch_state), case


def test_only_the_owner_releases_the_lease_and_only_a_retry_is_scheduled() -> None:
    assert settle(facts(Commit.RENAMED, owns=False)).release_lease is False
    retry = settle(facts(Commit.NOT_REACHED, Failure.TRANSIENT, attempts=3), backoff=lambda n: n * 100.0)
    assert (retry.release_lease, retry.retry_in) == (True, 300.0)
    failed = settle(facts(Commit.NOT_REACHED, Failure.PERMANENT))
    assert (failed.retry_in, failed.announce) == (None, True)


def test_an_attempt_that_neither_committed_nor_failed_is_a_bug() -> None:
    with pytest.raises(ValueError, match="must say how it failed"):
        settle(facts(Commit.NOT_REACHED))


def test_a_delivered_batch_never_moves_again() -> None:
    assert not batch_can_move(DELIVERED, STAGED)
    assert not batch_can_move(DELIVERED, FAILED)
    assert batch_can_move(FAILED, STAGED)  # a replay
    assert batch_can_move(FAILED, DELIVERED)  # a rename proven after a give-up


@pytest.mark.parametrize(
    ("evidence", "commit"),
    [(Evidence.NOTHING, Commit.TAKEN), (Evidence.FINAL_WHOLE, Commit.FOUND_WHOLE), (Evidence.PART_ONLY, None),
     (Evidence.NO_DOUBT, None)],
)
def test_the_folder_settles_a_doubt_about_the_rename(evidence: Evidence, commit: Commit | None) -> None:
    assert commit_from_evidence(evidence) == commit


def test_backoff_doubles_within_jitter_and_stops_at_its_cap() -> None:
    highest = lambda low, high: high  # noqa: E731
    lowest = lambda low, high: low  # noqa: E731
    assert [backoff(n, base=5, cap=60, rand=highest) for n in (1, 2, 3, 4, 5, 6)] == [5, 10, 20, 40, 60, 60]
    assert backoff(3, base=5, cap=60, rand=lowest) == 10
    assert backoff(10_000, base=5, cap=60, rand=highest) == 60  # no overflow on absurd counts
    assert backoff(1, base=5, cap=60, retry_after=30, rand=lowest) == 30  # the server's Retry-After wins
    assert backoff(1, base=5, cap=60, retry_after=600, rand=lowest) == 60  # but never past the cap
