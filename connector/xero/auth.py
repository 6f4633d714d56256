"""OAuth2 token custody: tokens live only in the database, encrypted; one refresher per grant.

Xero's refresh tokens rotate on every use and the old one dies, so:
- refreshes of one grant are serialised by a lease in the grant row (a conditional UPDATE, so it holds
  across processes on SQLite and PostgreSQL alike, and survives Redis losing its data);
- the rotated pair is committed, conditional on nobody having committed a newer pair (the `version`),
  before the new access token is used;
- `invalid_grant` is believed only after re-reading the grant: if another worker rotated meanwhile, its
  token is used instead. Then the grant is marked NEEDS_REAUTH once, loudly, and never retried.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from oauthlib.oauth2 import BackendApplicationClient, InvalidGrantError, OAuth2Error
from requests import RequestException
from requests.auth import HTTPBasicAuth
from requests_oauthlib import OAuth2Session
from sqlalchemy import or_, update

from connector.crypto import Vault
from connector.errors import XeroGrantRevoked, XeroUnavailable
from connector.secret import Secret
from connector.settings import XeroUrls
from connector.store.db import Ledger
from connector.store.models import OperationalEvent, XeroGrant, utcnow
from connector.xero.transport import permit_loopback_http

log = logging.getLogger(__name__)

EARLY_REFRESH = timedelta(minutes=5)  # refresh when under 5 of the 30 minutes remain (i.e. at 25)


class TokenKeeper:
    """Hands out a valid access token for a grant, refreshing it (once, by one worker) when due."""

    def __init__(self, ledger: Ledger, vault: Vault, urls: XeroUrls, timeout: float) -> None:
        self._ledger = ledger
        self._vault = vault
        self._urls = urls
        self._timeout = timeout
        self._lease = timedelta(seconds=max(60.0, 3 * timeout))  # longer than a token request can take
        permit_loopback_http(urls.token)

    def access_token(self, grant_id: int, *, force_refresh: bool = False) -> Secret:
        """A valid access token; `force_refresh` after a 401 (a refresh another worker made meanwhile counts)."""
        with self._ledger.transaction() as session:
            grant = session.get_one(XeroGrant, grant_id)
            seen_version = grant.version
            if grant.status != "ACTIVE":
                raise XeroGrantRevoked(f"Xero grant {grant_id} needs re-authorisation")
            if not force_refresh and _fresh(grant, utcnow()) and grant.access_token_enc:
                return self._vault.decrypt(grant.access_token_enc)
        return self._refresh(grant_id, seen_version)

    def refresh_if_due(self, grant_id: int) -> bool:
        """The scheduled refresh (every 25 minutes): keeps idle grants' refresh tokens alive."""
        with self._ledger.transaction() as session:
            grant = session.get_one(XeroGrant, grant_id)
            due = grant.status == "ACTIVE" and not _fresh(grant, utcnow())
        if due:
            self.access_token(grant_id)
        return due

    def _refresh(self, grant_id: int, seen_version: int) -> Secret:
        deadline = time.monotonic() + self._lease.total_seconds()
        while time.monotonic() < deadline:
            if self._take_lease(grant_id, seen_version):
                return self._refresh_holding_lease(grant_id, seen_version)
            # Another worker holds the lease or already refreshed: use its result once committed.
            newer = self._newer_token(grant_id, seen_version)
            if newer is not None:
                return newer
            time.sleep(0.2)
        raise XeroUnavailable(f"Xero grant {grant_id}: another worker's token refresh did not finish")

    def _newer_token(self, grant_id: int, seen_version: int) -> Secret | None:
        with self._ledger.transaction() as session:
            grant = session.get_one(XeroGrant, grant_id)
            if grant.version != seen_version and grant.access_token_enc and grant.status == "ACTIVE":
                return self._vault.decrypt(grant.access_token_enc)
            if grant.status != "ACTIVE":
                raise XeroGrantRevoked(f"Xero grant {grant_id} needs re-authorisation")
            return None

    def _take_lease(self, grant_id: int, seen_version: int) -> bool:
        now = utcnow()
        with self._ledger.transaction() as session:
            result = session.execute(
                update(XeroGrant)
                .where(XeroGrant.id == grant_id, XeroGrant.version == seen_version, XeroGrant.status == "ACTIVE")
                .where(or_(XeroGrant.refreshing_until.is_(None), XeroGrant.refreshing_until < now))
                .values(refreshing_until=now + self._lease)
            )
            return bool(getattr(result, "rowcount", 0) == 1)

    def _refresh_holding_lease(self, grant_id: int, seen_version: int) -> Secret:
        with self._ledger.transaction() as session:
            grant = session.get_one(XeroGrant, grant_id)
            kind, client_id = grant.kind, grant.client_id
            secret = self._vault.decrypt(grant.client_secret_enc) if grant.client_secret_enc else None
            refresh = self._vault.decrypt(grant.refresh_token_enc) if grant.refresh_token_enc else None
        try:
            token = self._request_token(kind, client_id, secret, refresh)
        except InvalidGrantError:
            return self._refused(grant_id, seen_version)
        except (OAuth2Error, RequestException, ValueError) as exc:
            self._release_lease(grant_id)
            raise XeroUnavailable(f"Xero grant {grant_id}: token refresh failed ({type(exc).__name__})") from None
        access = Secret(str(token["access_token"]))
        rotated = token.get("refresh_token")
        values: dict[str, object] = {
            "access_token_enc": self._vault.encrypt(access.reveal()),
            "access_expires_at": utcnow() + timedelta(seconds=float(str(token.get("expires_in", 1800)))),
            "version": seen_version + 1,
            "refreshing_until": None,
            "refreshed_at": utcnow(),
            "status": "ACTIVE",  # a working pair in hand outranks a stale worker's invalid_grant
        }
        if rotated:
            values["refresh_token_enc"] = self._vault.encrypt(str(rotated))
        with self._ledger.transaction() as session:
            stored = session.execute(
                update(XeroGrant).where(XeroGrant.id == grant_id, XeroGrant.version == seen_version).values(**values)
            )
            if getattr(stored, "rowcount", 0) != 1:  # a newer pair was committed meanwhile: it wins
                log.warning("Xero grant %s: a concurrent refresh committed first; using its token", grant_id)
        if getattr(stored, "rowcount", 0) != 1:
            newer = self._newer_token(grant_id, seen_version)
            if newer is not None:
                return newer
        log.info("Xero grant %s: token refreshed", grant_id)
        return access

    def _refused(self, grant_id: int, seen_version: int) -> Secret:
        """invalid_grant: unless another worker rotated the token meanwhile, the grant needs a person."""
        newer = self._newer_token(grant_id, seen_version)
        if newer is not None:
            return newer
        with self._ledger.transaction() as session:
            marked = session.execute(
                update(XeroGrant).where(XeroGrant.id == grant_id, XeroGrant.version == seen_version)
                .values(status="NEEDS_REAUTH", refreshing_until=None)
            )
            if getattr(marked, "rowcount", 0) == 1:
                session.add(OperationalEvent(
                    kind="grant_needs_reauth", grant_id=grant_id,
                    message="Xero answered invalid_grant; this grant's tenants stop polling until it is "
                            f"re-authorised (connector auth connect --grant {grant_id})",
                ))
        log.error("Xero grant %s: invalid_grant on refresh; its tenants stop until re-authorised", grant_id)
        raise XeroGrantRevoked(f"Xero grant {grant_id} was refused (invalid_grant): re-authorise it")

    def mark_unauthorised(self, grant_id: int, detail: str) -> None:
        """A fresh token refused again (401): a missing scope or a revoked app; a person must act."""
        with self._ledger.transaction() as session:
            session.execute(update(XeroGrant).where(XeroGrant.id == grant_id).values(status="NEEDS_REAUTH"))
            session.add(OperationalEvent(kind="grant_needs_reauth", grant_id=grant_id,
                                         message=f"a freshly refreshed token was refused: {detail}"))
        log.error("Xero grant %s: a fresh token was refused (%s); marked NEEDS_REAUTH", grant_id, detail)

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
            session.execute(update(XeroGrant).where(XeroGrant.id == grant_id).values(refreshing_until=None))


def _fresh(grant: XeroGrant, now: datetime) -> bool:
    return grant.access_expires_at is not None and grant.access_expires_at - EARLY_REFRESH > now
