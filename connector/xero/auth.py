"""OAuth2 token custody: tokens live only in the database, encrypted; one refresher per grant.

Xero's refresh tokens rotate on every use and the old one dies, so the rotated pair is committed before
the new access token is used, and refreshes of one grant are serialised by a lease in the grant row
(a conditional UPDATE, so it holds across processes on SQLite and PostgreSQL alike).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from oauthlib.oauth2 import InvalidGrantError, OAuth2Error
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
LEASE = timedelta(seconds=60)


class TokenKeeper:
    """Hands out a valid access token for a grant, refreshing it (once, by one worker) when due."""

    def __init__(self, ledger: Ledger, vault: Vault, urls: XeroUrls, timeout: float) -> None:
        self._ledger = ledger
        self._vault = vault
        self._urls = urls
        self._timeout = timeout
        permit_loopback_http(urls.token)

    def access_token(self, grant_id: int, *, force_refresh: bool = False) -> Secret:
        with self._ledger.transaction() as session:
            grant = session.get_one(XeroGrant, grant_id)
            seen_version = grant.version
            if grant.status != "ACTIVE":
                raise XeroGrantRevoked(f"Xero grant {grant_id} needs re-authorisation")
            if not force_refresh and _fresh(grant, utcnow()) and grant.access_token_enc:
                return self._vault.decrypt(grant.access_token_enc)
        return self._refresh(grant_id, seen_version)

    def _refresh(self, grant_id: int, seen_version: int) -> Secret:
        deadline = time.monotonic() + LEASE.total_seconds()
        while time.monotonic() < deadline:
            if self._take_lease(grant_id, seen_version):
                return self._refresh_holding_lease(grant_id)
            # Another worker holds the lease or already refreshed: use its result once committed.
            with self._ledger.transaction() as session:
                grant = session.get_one(XeroGrant, grant_id)
                if grant.status != "ACTIVE":
                    raise XeroGrantRevoked(f"Xero grant {grant_id} needs re-authorisation")
                if grant.version != seen_version and grant.access_token_enc:
                    return self._vault.decrypt(grant.access_token_enc)
            time.sleep(0.2)
        raise XeroUnavailable(f"Xero grant {grant_id}: another worker's token refresh did not finish")

    def _take_lease(self, grant_id: int, seen_version: int) -> bool:
        now = utcnow()
        with self._ledger.transaction() as session:
            result = session.execute(
                update(XeroGrant)
                .where(XeroGrant.id == grant_id, XeroGrant.version == seen_version)
                .where(or_(XeroGrant.refreshing_until.is_(None), XeroGrant.refreshing_until < now))
                .values(refreshing_until=now + LEASE)
            )
            return bool(getattr(result, "rowcount", 0) == 1)

    def _refresh_holding_lease(self, grant_id: int) -> Secret:
        with self._ledger.transaction() as session:
            grant = session.get_one(XeroGrant, grant_id)
            kind, client_id = grant.kind, grant.client_id
            secret = self._vault.decrypt(grant.client_secret_enc) if grant.client_secret_enc else None
            refresh = self._vault.decrypt(grant.refresh_token_enc) if grant.refresh_token_enc else None
        try:
            token = self._request_token(kind, client_id, secret, refresh)
        except InvalidGrantError:
            self._mark_needs_reauth(grant_id)
            log.error("Xero grant %s: invalid_grant on refresh; its tenants stop until re-authorised", grant_id)
            raise XeroGrantRevoked(f"Xero grant {grant_id} was refused (invalid_grant): re-authorise it") from None
        except (OAuth2Error, RequestException) as exc:
            self._release_lease(grant_id)
            raise XeroUnavailable(f"Xero grant {grant_id}: token refresh failed ({type(exc).__name__})") from None
        access = str(token["access_token"])
        expires_in = float(str(token.get("expires_in", 1800)))
        with self._ledger.transaction() as session:
            grant = session.get_one(XeroGrant, grant_id)
            grant.access_token_enc = self._vault.encrypt(access)
            if token.get("refresh_token"):
                grant.refresh_token_enc = self._vault.encrypt(str(token["refresh_token"]))
            grant.access_expires_at = utcnow() + timedelta(seconds=expires_in)
            grant.version += 1
            grant.refreshing_until = None
            grant.refreshed_at = utcnow()
        log.info("Xero grant %s: token refreshed", grant_id)
        return Secret(access)

    def _request_token(
        self, kind: str, client_id: str, secret: Secret | None, refresh: Secret | None
    ) -> dict[str, object]:
        auth = HTTPBasicAuth(client_id, secret.reveal() if secret else "")
        session = OAuth2Session(client_id)
        if kind == "client_credentials":
            token = session.fetch_token(
                self._urls.token, auth=auth, timeout=self._timeout, include_client_id=False,
                body="grant_type=client_credentials",
            )
        else:
            if refresh is None:
                raise InvalidGrantError(description="no refresh token stored")
            token = session.refresh_token(
                self._urls.token, refresh_token=refresh.reveal(), auth=auth, timeout=self._timeout
            )
        return dict(token)

    def _mark_needs_reauth(self, grant_id: int) -> None:
        with self._ledger.transaction() as session:
            grant = session.get_one(XeroGrant, grant_id)
            grant.status = "NEEDS_REAUTH"
            grant.refreshing_until = None
            session.add(OperationalEvent(
                kind="grant_needs_reauth", grant_id=grant_id,
                message="Xero answered invalid_grant; this grant's tenants stop polling until it is re-authorised "
                        f"(connector auth connect --grant {grant_id})",
            ))

    def _release_lease(self, grant_id: int) -> None:
        with self._ledger.transaction() as session:
            session.execute(update(XeroGrant).where(XeroGrant.id == grant_id).values(refreshing_until=None))


def _fresh(grant: XeroGrant, now: datetime) -> bool:
    return grant.access_expires_at is not None and grant.access_expires_at - EARLY_REFRESH > now
