"""OAuth2 token custody: tokens live only in the database, encrypted; one refresher per grant.

Xero's refresh tokens rotate on every use and the old one dies, so:
- refreshes of one grant are serialised by a lease in the grant row (a conditional UPDATE, so it holds
  across processes on SQLite and PostgreSQL alike, and survives Redis losing its data);
- the rotated pair is committed, conditional on nobody having committed a newer pair (the `version`),
  before the new access token is used;
- a token is handed out with the version it belongs to (IssuedToken): a 401 on it forces a refresh only
  while the grant is still at that version (a newer stored token is simply used), and a fresh token
  refused again marks the grant only if the grant is still at that token's version;
- `invalid_grant` is believed only after re-reading the grant: if another worker rotated meanwhile, its
  token is used instead. Then the grant is marked NEEDS_REAUTH once, loudly, and never retried.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from oauthlib.oauth2 import BackendApplicationClient, InvalidGrantError, OAuth2Error
from requests import RequestException
from requests.auth import HTTPBasicAuth
from requests_oauthlib import OAuth2Session

from connector.crypto import Vault
from connector.errors import XeroGrantRevoked, XeroUnavailable
from connector.secret import Secret
from connector.settings import XeroUrls
from connector.store.db import Ledger, Session
from connector.store.grants import (
    GrantStatus,
    load_grant,
    mark_needs_reauth,
    release_refresh_lease,
    store_refreshed_pair,
    take_refresh_lease,
)
from connector.store.models import XeroGrant, utcnow
from connector.xero.transport import permit_loopback_http

log = logging.getLogger(__name__)

#: Called while a worker waits for another's token refresh: a poll renews its lease with it.
KeepAlive = Callable[[], None]

EARLY_REFRESH = timedelta(minutes=5)  # refresh when under 5 of the 30 minutes remain (i.e. at 25)


@dataclass(frozen=True)
class IssuedToken:
    """An access token and the grant version it belongs to: what a 401 on it proves depends on whether
    the grant has moved on since."""

    value: Secret
    version: int


class TokenKeeper:
    """Hands out a valid access token for a grant, refreshing it (once, by one worker) when due."""

    def __init__(self, ledger: Ledger, vault: Vault, urls: XeroUrls, timeout: float) -> None:
        self._ledger = ledger
        self._vault = vault
        self._urls = urls
        self._timeout = timeout
        self._lease = timedelta(seconds=max(60.0, 3 * timeout))  # longer than a token request can take
        permit_loopback_http(urls.token)

    def issue(self, grant_id: int, *, keep_alive: KeepAlive | None = None) -> IssuedToken:
        """A valid access token with its version: the stored one while fresh, else a refresh. `keep_alive`
        is called while this waits for another worker's refresh (see `_refresh`)."""
        with self._ledger.transaction() as session:
            stored = self.stored(session, grant_id)
            if stored is not None:
                return stored
            seen_version = _active(load_grant(session, grant_id)).version
        return self._refresh(grant_id, seen_version, keep_alive)

    def stored(self, session: Session, grant_id: int) -> IssuedToken | None:
        """The stored access token while it is fresh, read in the caller's transaction (a poll reads it with
        its lease, one transaction fewer); None when `issue` must refresh it or refuse the grant."""
        grant = load_grant(session, grant_id)
        if grant.status != GrantStatus.ACTIVE or not _fresh(grant, utcnow()) or not grant.access_token_enc:
            return None
        token = self._vault.decrypt(grant.access_token_enc, secret=f"grant {grant_id} (access token)")
        return IssuedToken(token, grant.version)

    def reissue(self, grant_id: int, refused: IssuedToken, *, keep_alive: KeepAlive | None = None) -> IssuedToken:
        """After a 401 on `refused`: refresh only if the grant is still at its version; if another worker
        refreshed since, its token is the answer (refreshing again would rotate the pair for nothing)."""
        with self._ledger.transaction() as session:
            moved_on = _active(load_grant(session, grant_id)).version != refused.version
        if moved_on:
            return self.issue(grant_id, keep_alive=keep_alive)
        return self._refresh(grant_id, refused.version, keep_alive)

    def access_token(self, grant_id: int, *, force_refresh: bool = False) -> Secret:
        """The token alone, for callers that do not retry on a 401 (the CLI); `force_refresh` rotates the
        pair now (adopting a grant another tool held), unless another worker is already doing so."""
        if not force_refresh:
            return self.issue(grant_id).value
        with self._ledger.transaction() as session:
            seen_version = _active(load_grant(session, grant_id)).version
        return self._refresh(grant_id, seen_version).value

    def refresh_if_due(self, grant_id: int) -> bool:
        """The scheduled refresh (every 25 minutes): keeps idle grants' refresh tokens alive."""
        with self._ledger.transaction() as session:
            grant = load_grant(session, grant_id)
            due = grant.status == GrantStatus.ACTIVE and not _fresh(grant, utcnow())
        if due:
            self.issue(grant_id)
        return due

    def mark_unauthorised(self, grant_id: int, refused: IssuedToken, detail: str) -> bool:
        """A fresh token refused again (401): a missing scope or a revoked app, so a person must act;
        unless the grant moved on since `refused` was issued (a replaced token proves nothing about it).
        True when the grant now needs re-authorisation."""
        with self._ledger.transaction() as session:
            marked = mark_needs_reauth(session, grant_id, refused.version,
                                       f"a freshly refreshed token was refused: {detail}")
            status = load_grant(session, grant_id).status
        if marked:
            log.error("Xero grant %s: a fresh token was refused (%s); marked NEEDS_REAUTH", grant_id, detail)
        elif status == GrantStatus.ACTIVE:
            log.warning("Xero grant %s: a token was refused (%s), but the grant was refreshed since; not marked",
                        grant_id, detail)
        return status == GrantStatus.NEEDS_REAUTH

    def _open(self, grant_id: int, ciphertext: bytes | None, what: str) -> Secret | None:
        """Decrypt one of the grant's secrets; an error names it (grant N, which secret), never its value."""
        return self._vault.decrypt(ciphertext, secret=f"grant {grant_id} ({what})") if ciphertext else None

    def _refresh(self, grant_id: int, seen_version: int, keep_alive: KeepAlive | None = None) -> IssuedToken:
        """Refresh under the grant's lease, or wait (up to a lease) for the worker that holds it. A refresher
        killed mid-refresh keeps every other worker waiting until its lease lapses (at least 60 s), longer
        than a poll's own lease may be: `keep_alive` (a poll's heartbeat) runs on every turn of the wait,
        so a waiting poll is not taken for a dead one."""
        deadline = time.monotonic() + self._lease.total_seconds()
        while time.monotonic() < deadline:
            if self._take_lease(grant_id, seen_version):
                return self._refresh_holding_lease(grant_id, seen_version)
            # Another worker holds the lease or already refreshed: use its result once committed.
            newer = self._newer_token(grant_id, seen_version)
            if newer is not None:
                return newer
            if keep_alive is not None:
                keep_alive()
            time.sleep(0.2)
        raise XeroUnavailable(f"Xero grant {grant_id}: another worker's token refresh did not finish")

    def _newer_token(self, grant_id: int, seen_version: int) -> IssuedToken | None:
        with self._ledger.transaction() as session:
            grant = _active(load_grant(session, grant_id))
            if grant.version != seen_version and grant.access_token_enc:
                token = self._vault.decrypt(grant.access_token_enc, secret=f"grant {grant_id} (access token)")
                return IssuedToken(token, grant.version)
            return None

    def _take_lease(self, grant_id: int, seen_version: int) -> bool:
        now = utcnow()
        with self._ledger.transaction() as session:
            return take_refresh_lease(session, grant_id, seen_version, now, now + self._lease)

    def _refresh_holding_lease(self, grant_id: int, seen_version: int) -> IssuedToken:
        with self._ledger.transaction() as session:
            grant = load_grant(session, grant_id)
            kind, client_id = grant.kind, grant.client_id
            secret = self._open(grant_id, grant.client_secret_enc, "client secret")
            refresh = self._open(grant_id, grant.refresh_token_enc, "refresh token")
        try:
            token = self._request_token(kind, client_id, secret, refresh)
        except InvalidGrantError:
            return self._refused(grant_id, seen_version)
        except (OAuth2Error, RequestException, ValueError) as exc:
            self._release_lease(grant_id)
            raise XeroUnavailable(f"Xero grant {grant_id}: token refresh failed ({type(exc).__name__})") from None
        access = Secret(str(token["access_token"]))
        rotated = token.get("refresh_token")
        with self._ledger.transaction() as session:
            stored = store_refreshed_pair(
                session, grant_id, seen_version, access_token=self._vault.encrypt(access.reveal()),
                access_expires_at=utcnow() + timedelta(seconds=float(str(token.get("expires_in", 1800)))),
                refresh_token=self._vault.encrypt(str(rotated)) if rotated else None, now=utcnow(),
            )
        if not stored:  # a newer pair was committed meanwhile: it wins
            log.warning("Xero grant %s: a concurrent refresh committed first; using its token", grant_id)
            newer = self._newer_token(grant_id, seen_version)
            if newer is not None:
                return newer
        log.info("Xero grant %s: token refreshed", grant_id)
        return IssuedToken(access, seen_version + 1)

    def _refused(self, grant_id: int, seen_version: int) -> IssuedToken:
        """invalid_grant: unless another worker rotated the token meanwhile, the grant needs a person."""
        newer = self._newer_token(grant_id, seen_version)
        if newer is not None:
            return newer
        with self._ledger.transaction() as session:
            mark_needs_reauth(session, grant_id, seen_version,
                              "Xero answered invalid_grant; this grant's tenants stop polling until it is "
                              f"re-authorised (connector auth connect --grant {grant_id})")
        log.error("Xero grant %s: invalid_grant on refresh; its tenants stop until re-authorised", grant_id)
        raise XeroGrantRevoked(f"Xero grant {grant_id} was refused (invalid_grant): re-authorise it")

    def _request_token(
        self, kind: str, client_id: str, secret: Secret | None, refresh: Secret | None
    ) -> dict[str, object]:
        auth = HTTPBasicAuth(client_id, secret.reveal() if secret else "")
        if kind == "client_credentials":
            session = OAuth2Session(client=BackendApplicationClient(client_id=client_id))
            token = session.fetch_token(self._urls.token, auth=auth, timeout=self._timeout, include_client_id=False)
        else:
            if refresh is None:
                raise InvalidGrantError(description="no refresh token stored")
            token = OAuth2Session(client_id).refresh_token(
                self._urls.token, refresh_token=refresh.reveal(), auth=auth, timeout=self._timeout
            )
        return dict(token)

    def _release_lease(self, grant_id: int) -> None:
        with self._ledger.transaction() as session:
            release_refresh_lease(session, grant_id)


def _active(grant: XeroGrant) -> XeroGrant:
    if grant.status != GrantStatus.ACTIVE:
        raise XeroGrantRevoked(f"Xero grant {grant.id} needs re-authorisation")
    return grant


def _fresh(grant: XeroGrant, now: datetime) -> bool:
    return grant.access_expires_at is not None and grant.access_expires_at - EARLY_REFRESH > now
