"""Xero grants in the ledger: the refresh lease, the committed pair, the NEEDS_REAUTH mark, and key
rotation's rewrite.

Every change is a conditional UPDATE on what the caller read (the grant's `version`, bumped by each
committed refresh, and for rotation the ciphertexts themselves), so a worker acting on an old read can
never overwrite what another worker committed since: it learns it lost (False) and reads again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from connector.store.models import OperationalEvent, XeroGrant


class GrantStatus(StrEnum):
    """ACTIVE grants are used and refreshed; NEEDS_REAUTH ones wait for a person (`auth connect --grant`)."""

    ACTIVE = "ACTIVE"
    NEEDS_REAUTH = "NEEDS_REAUTH"


@dataclass(frozen=True)
class GrantCiphertexts:
    """A grant's encrypted columns as read at one version: what key rotation re-encrypts."""

    grant_id: int
    version: int
    client_secret: bytes | None
    refresh_token: bytes | None
    access_token: bytes | None


def load_grant(session: Session, grant_id: int) -> XeroGrant:
    return session.get_one(XeroGrant, grant_id)


def refreshable_grant_ids(session: Session) -> list[int]:
    """Active grants whose refresh token must be kept alive (client credentials have none)."""
    return list(session.scalars(select(XeroGrant.id).where(
        XeroGrant.status == GrantStatus.ACTIVE, XeroGrant.kind == "authorization_code").order_by(XeroGrant.id)))


def take_refresh_lease(session: Session, grant_id: int, seen_version: int, now: datetime, until: datetime) -> bool:
    """The one refresher of an active grant still at `seen_version`, until `until` (or a later taker)."""
    result = session.execute(
        update(XeroGrant)
        .where(XeroGrant.id == grant_id, XeroGrant.version == seen_version, XeroGrant.status == GrantStatus.ACTIVE)
        .where(or_(XeroGrant.refreshing_until.is_(None), XeroGrant.refreshing_until < now))
        .values(refreshing_until=until)
    )
    return _changed_one(result)


def release_refresh_lease(session: Session, grant_id: int) -> None:
    session.execute(update(XeroGrant).where(XeroGrant.id == grant_id).values(refreshing_until=None))


def store_refreshed_pair(
    session: Session, grant_id: int, seen_version: int, *, access_token: bytes, access_expires_at: datetime,
    refresh_token: bytes | None, now: datetime,
) -> bool:
    """Commit a rotated pair as `seen_version + 1`, unless a newer pair was committed meanwhile (it wins).

    The grant becomes ACTIVE again: a working pair in hand outranks a stale worker's invalid_grant."""
    values: dict[str, object] = {
        "access_token_enc": access_token, "access_expires_at": access_expires_at, "version": seen_version + 1,
        "refreshing_until": None, "refreshed_at": now, "status": GrantStatus.ACTIVE,
    }
    if refresh_token is not None:
        values["refresh_token_enc"] = refresh_token
    result = session.execute(
        update(XeroGrant).where(XeroGrant.id == grant_id, XeroGrant.version == seen_version).values(**values)
    )
    return _changed_one(result)


def mark_needs_reauth(session: Session, grant_id: int, version: int, message: str) -> bool:
    """NEEDS_REAUTH, announced once, only if the grant is still at `version`: the version whose token was
    refused. A grant another worker moved on since is not judged by its old token."""
    result = session.execute(
        update(XeroGrant)
        .where(XeroGrant.id == grant_id, XeroGrant.version == version, XeroGrant.status == GrantStatus.ACTIVE)
        .values(status=GrantStatus.NEEDS_REAUTH, refreshing_until=None)
    )
    marked = _changed_one(result)
    if marked:
        session.add(OperationalEvent(kind="grant_needs_reauth", grant_id=grant_id, message=message))
    return marked


def all_grant_ids(session: Session) -> list[int]:
    return list(session.scalars(select(XeroGrant.id).order_by(XeroGrant.id)))


def read_ciphertexts(session: Session, grant_id: int) -> GrantCiphertexts | None:
    grant = session.get(XeroGrant, grant_id)
    if grant is None:
        return None
    return GrantCiphertexts(grant.id, grant.version, grant.client_secret_enc, grant.refresh_token_enc,
                            grant.access_token_enc)


def replace_ciphertexts(session: Session, read: GrantCiphertexts, rotated: GrantCiphertexts) -> bool:
    """Write re-encrypted values only over exactly what was read: same version, same ciphertexts."""
    result = session.execute(
        update(XeroGrant)
        .where(XeroGrant.id == read.grant_id, XeroGrant.version == read.version,
               _holds(XeroGrant.client_secret_enc, read.client_secret),
               _holds(XeroGrant.refresh_token_enc, read.refresh_token),
               _holds(XeroGrant.access_token_enc, read.access_token))
        .values(client_secret_enc=rotated.client_secret, refresh_token_enc=rotated.refresh_token,
                access_token_enc=rotated.access_token)
    )
    return _changed_one(result)


def _holds(column: InstrumentedAttribute[bytes | None], value: bytes | None) -> ColumnElement[bool]:
    return column.is_(None) if value is None else column == value


def _changed_one(result: object) -> bool:
    return bool(getattr(result, "rowcount", 0) == 1)


def add_grant(
    session: Session, *, kind: str, client_id: str, client_secret_enc: bytes, refresh_token_enc: bytes | None,
) -> int:
    """Store a new grant (onboarding) and return its id."""
    grant = XeroGrant(kind=kind, client_id=client_id, client_secret_enc=client_secret_enc,
                      refresh_token_enc=refresh_token_enc)
    session.add(grant)
    session.flush()
    return grant.id


def reauthorise(session: Session, grant_id: int, refresh_token_enc: bytes | None) -> None:
    """A person consented again: the new refresh token replaces the old one, the cached access token is
    dropped, and the version moves on so a refresh that began with the old token cannot overwrite it."""
    grant = load_grant(session, grant_id)
    grant.refresh_token_enc = refresh_token_enc
    grant.access_token_enc = None
    grant.status = GrantStatus.ACTIVE
    grant.version += 1
