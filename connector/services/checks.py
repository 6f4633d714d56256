"""Pre-flight checks an operator runs on demand (`connector check`) and before storing a target
(`connector sftp add`): each answers one question with one line, and none changes what the ledger holds.

- the ledger: reachable, and its schema at the revision this code expects;
- the broker: reachable (Redis answers PING; the embedded file broker's folder is writable);
- each grant: its access token (refreshed if due) reaches Xero, one cheap call (GET /connections), and
  every tenant synced with it is among the tenants it reaches;
- each SFTP target: connect, the pinned host key, the login, the import folder writable.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass

from connector.errors import ConnectorError
from connector.services.context import Services
from connector.settings import Settings, mask_url_password
from connector.sftp.connection import open_session
from connector.sftp.target import SftpTarget
from connector.store.db import Ledger, LedgerError
from connector.store.inventory import grant_listings, schema_revisions, sftp_target_row, target_listings
from connector.xero.consent import list_connections


@dataclass(frozen=True)
class Check:
    subject: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'OK  ' if self.ok else 'FAIL'} {self.subject}: {self.detail}"


def _failure(exc: BaseException) -> str:
    """A failure as one line an operator can act on, never a secret (URL passwords masked)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return mask_url_password(text)


def check_ledger(ledger: Ledger) -> Check:
    try:
        current, head = schema_revisions(ledger.engine)
    except LedgerError as exc:
        return Check("database", False, _failure(exc))
    if current != head:
        return Check("database", False, f"schema at {current}, this code expects {head}: run the migrations")
    return Check("database", True, f"reachable, schema at {current} (newest)")


def check_broker(settings: Settings) -> Check:
    url = settings.broker_url
    if url.startswith("filesystem://"):
        try:
            settings.broker_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=settings.broker_dir, prefix=".check-"):
                pass
        except OSError as exc:
            return Check("broker", False, f"file broker folder {settings.broker_dir}: {exc.strerror or exc}")
        return Check("broker", True, f"file broker folder {settings.broker_dir} writable")
    if url.startswith(("redis://", "rediss://")):
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)
        try:
            client.ping()
        except redis.RedisError as exc:
            return Check("broker", False, f"{mask_url_password(url)}: {_failure(exc)}")
        finally:
            client.close()
        return Check("broker", True, f"{mask_url_password(url)} answers")
    from kombu.connection import Connection

    try:
        with Connection(url, connect_timeout=5) as connection:  # type: ignore[no-untyped-call]
            connection.ensure_connection(max_retries=1)
    except Exception as exc:  # any transport failure is one FAIL line
        return Check("broker", False, f"{mask_url_password(url)}: {_failure(exc)}")
    return Check("broker", True, f"{mask_url_password(url)} answers")


def check_grants(services: Services) -> list[Check]:
    with services.ledger.transaction() as session:
        grants = grant_listings(session)
    checks = []
    for grant in grants:
        subject = f"grant {grant.id} ({grant.client_id})"
        if not grant.tenant_ids:
            checks.append(Check(subject, True, "used by no tenant (remove it with `connector auth remove "
                                               f"{grant.id}` if it is left over)"))
            continue
        try:
            access = services.tokens.access_token(grant.id)
            reached = {c.tenant_id for c in list_connections(services.settings.xero, access,
                                                             services.settings.xero_timeout_seconds)}
        except ConnectorError as exc:
            checks.append(Check(subject, False, _failure(exc)))
            continue
        lost = [t for t in grant.tenant_ids if t not in reached]
        if lost:
            checks.append(Check(subject, False, f"no longer reaches tenant(s) {', '.join(lost)}: re-consent with "
                                                f"`connector auth connect --grant {grant.id}`"))
        else:
            checks.append(Check(subject, True, f"Xero answers; reaches its {len(grant.tenant_ids)} tenant(s)"))
    return checks


def check_sftp(target: SftpTarget, subject: str) -> Check:
    try:
        with open_session(target, check_writable=True):
            pass
    except ConnectorError as exc:
        return Check(subject, False, _failure(exc))
    except OSError as exc:
        return Check(subject, False, f"connecting to {target.address}: {exc.strerror or type(exc).__name__}")
    return Check(subject, True, f"host key matches, login accepted, {target.import_dir} writable")


def stored_target(services: Services, target_id: int) -> SftpTarget:
    """A stored target with its credentials decrypted, as delivery would use it."""
    with services.ledger.transaction() as session:
        row = sftp_target_row(session, target_id)
        vault, name = services.vault, f"SFTP target {target_id}"
        return SftpTarget(host=row.host, port=row.port, username=row.username, import_dir=row.import_dir,
                          host_key=row.host_key,
                          password=vault.decrypt(row.password_enc, secret=f"{name} (password)")
                          if row.password_enc else None,
                          private_key=vault.decrypt(row.private_key_enc, secret=f"{name} (private key)")
                          if row.private_key_enc else None,
                          timeout=services.settings.sftp_timeout_seconds)


def check_targets(services: Services) -> list[Check]:
    with services.ledger.transaction() as session:
        targets = target_listings(session)
    checks = []
    for listing in targets:
        subject = f"sftp target {listing.id} ({listing.username}@{listing.host}:{listing.port})"
        try:
            target = stored_target(services, listing.id)
        except ConnectorError as exc:
            checks.append(Check(subject, False, _failure(exc)))
            continue
        checks.append(check_sftp(target, subject))
    return checks


def run_checks(services: Services) -> list[Check]:
    """Every check, in the order a person would fix things: ledger, broker, Xero, SFTP."""
    ledger = check_ledger(services.ledger)
    if not ledger.ok:
        return [ledger, check_broker(services.settings)]
    return [ledger, check_broker(services.settings), *check_grants(services), *check_targets(services)]


def ledger_unreachable(settings: Settings, exc: BaseException) -> Check:
    """The line for a ledger that could not even be opened (connect or migrate failed)."""
    del settings
    return Check("database", False, _failure(exc))
