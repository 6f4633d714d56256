"""The connector's exception tree, sorted by what the caller must do.

Every failure is either *retryable* (back off and try again: the world may change), *permanent* (stop
and record it: retrying cannot help until a human acts) or a *record problem* (one record is bad, the
rest of its page or batch goes on). Callers branch on the family, never on the message text.
"""

from __future__ import annotations

from typing import Final

#: What the `connector` command's exit status means, in one place: scripts branch on these, and each
#: exception type below carries its own (`exit_code`), so the status follows from what went wrong.
EXIT_CODES: dict[int, str] = {
    0: "done; for `connector check`, every check passed",
    1: "failed for a reason that may pass by itself (Xero, SFTP or the database unreachable): try again later",
    2: "the command was wrong: a usage error, an invalid setting or file, no such tenant, grant or target",
    3: "a person must act first: a check failed, a grant needs re-authorisation, a host key does not match",
    4: "refused by the ledger's state: the bill or file is not in a state that allows it (the message says why)",
    130: "interrupted (Ctrl-C)",
}


class ConnectorError(Exception):
    """Root of every error the connector raises on purpose."""

    exit_code: int = 1


class ActionRefused(ConnectorError):
    """An operator's action that the ledger's state does not allow (replay, release, rotation)."""

    exit_code = 4


class NotFound(ConnectorError):
    """The operator named something the ledger does not hold (a bill, a file, a grant, a target)."""

    exit_code = 2


class RetryableError(ConnectorError):
    """A transient failure: network, 5xx, rate limit. Retry with backoff, no earlier than `retry_after`."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class LedgerContention(RetryableError):
    """Other workers kept winning the same rows (a file's sequence number, the same READY bills): try again
    shortly, when they are done, rather than give up and leave the work to the sweeper."""


class PermanentError(ConnectorError):
    """Retrying cannot help until a human acts: bad credentials, pinned key mismatch, missing grant."""

    exit_code = 3


#: What our own code, or the data it was handed, raises when it is wrong: the world did not change in
#: between, so the next try meets the same error. Work that meets one stops as a `Defect` and waits for a
#: person (a fix, then a replay) instead of being tried again for ever.
DEFECTS: Final = (ValueError, TypeError, LookupError, AttributeError, ArithmeticError, AssertionError,
                  NotImplementedError)


class Defect(PermanentError):
    """One of `DEFECTS` met mid-work, named with the work it stopped and its cause (class and message)."""

    def __init__(self, work: str, cause: BaseException) -> None:
        super().__init__(f"{work}: {type(cause).__name__}: {str(cause)[:300]} (a bug or bad data: not tried again; "
                         "the worker's log says where)")


class ConfigurationError(PermanentError):
    """Settings or per-tenant configuration are missing or invalid; lists every problem at once."""

    exit_code = 2

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class RecordProblem(ConnectorError):
    """One record cannot be used; names the record and the field so an operator can act on it."""

    def __init__(self, record: str, field: str, problem: str) -> None:
        super().__init__(f"{record}: field {field!r}: {problem}")
        self.record = record
        self.field = field
        self.problem = problem


# --- Xero -------------------------------------------------------------------------------------------

class XeroError(ConnectorError):
    """Marker for failures talking to Xero."""


class XeroUnavailable(RetryableError, XeroError):
    """Xero answered 5xx, timed out, or the connection failed."""


class XeroTimedOut(XeroUnavailable):
    """Xero did not answer within the request timeout. Not tried again inline: an organisation whose calls
    hang would otherwise hold a poll worker for several timeouts per try, and two such tenants would hold
    every poll process while the other tenants wait; the task's backoff tries it again later instead."""


class XeroRateLimited(RetryableError, XeroError):
    """Xero answered 429; `problem` is X-Rate-Limit-Problem (minute, day, concurrent, appminute)."""

    def __init__(self, message: str, *, problem: str, retry_after: float | None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.problem = problem


class XeroTokenExpired(RetryableError, XeroError):
    """401: the access token expired or was revoked; refresh once and retry."""


class XeroGrantRevoked(PermanentError, XeroError):
    """The token endpoint answered invalid_grant: the grant needs re-authorisation by a person."""


class XeroTenantDisconnected(PermanentError, XeroError):
    """403 AuthenticationUnsuccessful: this tenant is not reachable with the grant."""


class XeroRequestRejected(PermanentError, XeroError):
    """Xero refused the request itself (400/404): a bug or a configuration problem on our side."""


# --- SFTP -------------------------------------------------------------------------------------------

class SftpError(ConnectorError):
    """Marker for failures delivering to the SFTP target."""

    #: Set when a failed rename left our `.part` in place: proof that the commit point was not passed.
    not_renamed: bool = False


class SftpUnavailable(RetryableError, SftpError):
    """Refused, timed out, reset, EOF, or the upload could not be verified: try again later."""


class SftpRejected(PermanentError, SftpError):
    """Authentication, host key, permission or a conflicting remote file: a person must act."""
