"""Process settings: read once from the environment into one frozen, typed object.

Every problem is reported at once (a `ConfigurationError` listing them all). Secrets are `Secret`s, so
printing the settings never shows them. Per-tenant configuration lives in the database, not here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from connector.crypto import key_problems
from connector.errors import ConfigurationError
from connector.limits import COMMIT_FENCE_SLACK_SECONDS, TIME_LIMITS, soft_time_limit
from connector.secret import Secret
from connector.xero.client import INLINE_ATTEMPTS, INLINE_PAUSE_CAP

XERO_DEFAULT_URLS = {
    "authorize": "https://login.xero.com/identity/connect/authorize",
    "token": "https://identity.xero.com/connect/token",
    "revocation": "https://identity.xero.com/connect/revocation",
    "connections": "https://api.xero.com/connections",
    "api": "https://api.xero.com/api.xro/2.0",
}


@dataclass(frozen=True)
class XeroUrls:
    """Every Xero URL is a setting, so the same code runs against api.xero.com and the sandbox."""

    authorize: str = XERO_DEFAULT_URLS["authorize"]
    token: str = XERO_DEFAULT_URLS["token"]
    revocation: str = XERO_DEFAULT_URLS["revocation"]
    connections: str = XERO_DEFAULT_URLS["connections"]
    api: str = XERO_DEFAULT_URLS["api"]


@dataclass(frozen=True)
class Settings:
    # URLs may carry passwords: kept out of repr, and masked by describe().
    database_url: str = field(repr=False)
    broker_url: str = field(repr=False)
    broker_dir: Path
    redis_url: str | None = field(repr=False)
    fernet_keys: tuple[Secret, ...]
    staging_dir: Path
    xero: XeroUrls = field(default_factory=XeroUrls)
    xero_timeout_seconds: float = 30.0
    xero_page_size: int = 1000
    watermark_overlap_seconds: int = 300
    sftp_timeout_seconds: float = 15.0
    beat_tick_seconds: float = 60.0
    poll_lease_seconds: float = 120.0
    poll_handover_seconds: float = 240.0
    sweep_interval_seconds: float = 60.0
    sweep_stale_seconds: float = 300.0
    delivery_max_countdown_seconds: float = 600.0
    delivery_backoff_cap_seconds: float = 900.0
    delivery_lease_seconds: float = 1200.0
    sftp_time_limit_seconds: float = float(TIME_LIMITS["sftp"])
    log_level: str = "INFO"
    xero_webhook_key: Secret | None = None
    webhook_coalesce_seconds: float = 2.0
    webhook_silence_seconds: float = 3600.0
    reconcile_interval_seconds: float = 86400.0
    credit_note_interval_seconds: float = 3600.0
    max_file_document_bytes: int = 16 * 1024 * 1024

    def describe(self) -> dict[str, str]:
        """A printable view (secrets and URL passwords masked), for start-up logs and support."""
        return {f.name: mask_url_password(str(getattr(self, f.name))) for f in fields(self)}


#: Query parameters that carry a secret in the URLs we are given (libpq's `password` and `sslpassword`,
#: token-style parameters of other drivers); matched without regard to case.
SECRET_QUERY_PARAMETERS = frozenset({"password", "passwd", "pwd", "pass", "sslpassword", "secret", "client_secret",
                                     "token", "access_token", "auth_token", "api_key", "apikey"})
_QUERY_PAIR = re.compile(r"(?P<name>[^&=;]+)=(?P<value>[^&;]*)")


def mask_url_password(text: str) -> str:
    """Every secret-bearing part of a URL masked: `postgresql://app:hunter2@db/x` → `postgresql://app:***@db/x`,
    and `?password=hunter2&sslmode=require` → `?password=***&sslmode=require`; anything else unchanged."""
    parts = urlsplit(text)
    if not parts.scheme:
        return text
    netloc = parts.netloc
    if parts.password is not None:
        netloc = netloc.replace(f":{parts.password}@", ":***@", 1)

    def masked(pair: re.Match[str]) -> str:
        name = pair["name"]
        return f"{name}=***" if unquote(name).strip().lower() in SECRET_QUERY_PARAMETERS and pair["value"] else pair[0]

    query = _QUERY_PAIR.sub(masked, parts.query)
    if netloc == parts.netloc and query == parts.query:
        return text
    return urlunsplit(parts._replace(netloc=netloc, query=query))


# One table of environment variables: name, attribute, parser. The README's configuration section
# is checked against it by a test, so the two cannot drift.
ENV_VARS: dict[str, str] = {
    "CONNECTOR_DATABASE_URL": "SQLAlchemy URL of the ledger (default: SQLite under ./var)",
    "CONNECTOR_BROKER_URL": "Celery broker URL (default: filesystem:// under CONNECTOR_BROKER_DIR)",
    "CONNECTOR_BROKER_DIR": "folder of the embedded file broker (default ./var/broker)",
    "CONNECTOR_REDIS_URL": (
        "Redis for the rate budget shared by all workers (default: the broker URL when it is Redis;"
        " otherwise budgets are per worker process, fine for the embedded mode)"
    ),
    "CONNECTOR_FERNET_KEYS": "comma-separated Fernet keys, newest first; encrypts secrets at rest (required)",
    "CONNECTOR_STAGING_DIR": "where batch files are staged before upload (default ./var/staging)",
    "CONNECTOR_XERO_AUTHORIZE_URL": "Xero consent URL",
    "CONNECTOR_XERO_TOKEN_URL": "Xero token URL",
    "CONNECTOR_XERO_REVOCATION_URL": "Xero token revocation URL",
    "CONNECTOR_XERO_CONNECTIONS_URL": "Xero connections (tenants) URL",
    "CONNECTOR_XERO_API_URL": "Xero Accounting API base URL",
    "CONNECTOR_XERO_TIMEOUT_SECONDS": "timeout of every Xero request (default 30)",
    "CONNECTOR_XERO_PAGE_SIZE": "records per Xero page, at most 1000 (default 1000)",
    "CONNECTOR_WATERMARK_OVERLAP_SECONDS": "how far before the watermark each delta poll re-reads (default 300)",
    "CONNECTOR_SFTP_TIMEOUT_SECONDS": "SFTP connect and operation timeout (default 15)",
    "CONNECTOR_BEAT_TICK_SECONDS": "how often beat looks for tenants due a poll (default 60)",
    "CONNECTOR_POLL_LEASE_SECONDS": (
        "how long a poll that stopped renewing its lease (its worker died) keeps its tenant before the next tick"
        " polls it again; must be above one Xero request with its inline retries (default 120)"
    ),
    "CONNECTOR_POLL_HANDOVER_SECONDS": (
        "how long a poll reads pages before it stops at a page boundary and hands the rest to a fresh poll of the"
        " same tenant; at most half the poll queue's soft time limit, so the page it is reading, its suppliers and"
        " the poll's wrap-up fit in the other half (default 240, at most 285)"
    ),
    "CONNECTOR_SWEEP_INTERVAL_SECONDS": "how often the sweeper re-enqueues stalled work (default 60)",
    "CONNECTOR_SWEEP_STALE_SECONDS": "how old unfinished work must be before the sweeper re-enqueues it (default 300)",
    "CONNECTOR_DELIVERY_MAX_COUNTDOWN_SECONDS": (
        "longest retry wait kept in a Celery countdown; longer waits park in the DB (default 600)"
    ),
    "CONNECTOR_DELIVERY_BACKOFF_CAP_SECONDS": (
        "longest wait between two tries of one file's delivery: 5 s doubling with each failed try up to this"
        " (default 900)"
    ),
    "CONNECTOR_DELIVERY_LEASE_SECONDS": (
        "how long one attempt owns a batch's delivery before another may take over; must be above the"
        " delivery time limit plus two SFTP timeouts and 5 s (default 1200)"
    ),
    "CONNECTOR_SFTP_TIME_LIMIT_SECONDS": (
        "hard time limit of one delivery, in a worker or the CLI; a delivery past it is stopped (default 900)"
    ),
    "CONNECTOR_PROBE_DIR": "where workers write their readiness and liveness probe files (default /tmp)",
    "CONNECTOR_LOG_LEVEL": "log level (default INFO)",
    "CONNECTOR_XERO_WEBHOOK_KEY": (
        "the Xero app's webhook key (developer portal, Webhooks); the receiver refuses every request without it"
    ),
    "CONNECTOR_WEBHOOK_COALESCE_SECONDS": (
        "a webhook wakes its tenant's poll this long after the first event, so a burst asks for one poll (default 2)"
    ),
    "CONNECTOR_WEBHOOK_SILENCE_SECONDS": (
        "`connector status` warns when a tenant's bills changed this long after its last webhook (default 3600)"
    ),
    "CONNECTOR_RECONCILE_INTERVAL_SECONDS": (
        "how often beat reconciles every active tenant with Xero, through the same rate budget as the polls;"
        " at least 3600 (default 86400, daily)"
    ),
    "CONNECTOR_CREDIT_NOTE_INTERVAL_SECONDS": (
        "how often a poll reads the tenant's supplier credit notes when Xero announced none (a CREDITNOTE"
        " webhook, or a bill whose AmountCredited moved, makes the next poll read them at once); at least 60"
        " (default 3600)"
    ),
    "CONNECTOR_MAX_FILE_DOCUMENT_BYTES": (
        "a file carrying suppliers' documents closes when they reach this many bytes together, and the next"
        " READY bills go in the next file (a bill whose documents alone pass it goes alone); bounds the memory"
        " of the workers that build and send a ZIP (default 16777216, 16 MiB)"
    ),
}


def xero_url_environment(urls: Mapping[str, str]) -> dict[str, str]:
    """The CONNECTOR_XERO_*_URL variables for a set of Xero URLs (e.g. the sandbox's consent `urls`)."""
    return {f"CONNECTOR_XERO_{name.upper()}_URL": urls[name] for name in XERO_DEFAULT_URLS if name in urls}


def load_settings(environ: Mapping[str, str] | None = None, *, base_dir: Path | None = None) -> Settings:
    """Build Settings from the environment; raise one ConfigurationError naming every bad variable."""
    env = os.environ if environ is None else environ
    base = (base_dir or Path.cwd()) / "var"
    problems: list[str] = []

    def number(name: str, default: float, *, minimum: float = 0.0, maximum: float | None = None) -> float:
        raw = env.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = float(raw)
        except ValueError:
            problems.append(f"{name} must be a number, got {raw!r}")
            return default
        if value < minimum:
            problems.append(f"{name} must be at least {minimum:g}, got {raw!r}")
        if maximum is not None and value > maximum:
            problems.append(f"{name} must be at most {maximum:g}, got {raw!r}")
        return value

    keys = tuple(Secret(k.strip()) for k in env.get("CONNECTOR_FERNET_KEYS", "").split(",") if k.strip())
    if not keys:
        problems.append("CONNECTOR_FERNET_KEYS is required (generate one with `connector keys new`)")
    problems.extend(key_problems(keys))  # every key, at start: a malformed one is never found at first use
    broker_dir = Path(env.get("CONNECTOR_BROKER_DIR") or base / "broker")
    page_size = int(number("CONNECTOR_XERO_PAGE_SIZE", 1000, minimum=1))
    if page_size > 1000:
        problems.append(f"CONNECTOR_XERO_PAGE_SIZE must be at most 1000 (Xero's cap), got {page_size}")
    xero = XeroUrls(
        authorize=env.get("CONNECTOR_XERO_AUTHORIZE_URL") or XERO_DEFAULT_URLS["authorize"],
        token=env.get("CONNECTOR_XERO_TOKEN_URL") or XERO_DEFAULT_URLS["token"],
        revocation=env.get("CONNECTOR_XERO_REVOCATION_URL") or XERO_DEFAULT_URLS["revocation"],
        connections=env.get("CONNECTOR_XERO_CONNECTIONS_URL") or XERO_DEFAULT_URLS["connections"],
        api=(env.get("CONNECTOR_XERO_API_URL") or XERO_DEFAULT_URLS["api"]).rstrip("/"),
    )
    for name, url in vars(xero).items():
        if not url.startswith(("http://", "https://")):
            problems.append(f"CONNECTOR_XERO_{name.upper()}_URL must be an http(s) URL, got {url!r}")
    broker_url = env.get("CONNECTOR_BROKER_URL") or "filesystem://"
    redis_url = env.get("CONNECTOR_REDIS_URL") or (broker_url if broker_url.startswith("redis") else None)
    settings = Settings(
        database_url=env.get("CONNECTOR_DATABASE_URL") or f"sqlite:///{base / 'connector.db'}",
        broker_url=broker_url,
        broker_dir=broker_dir,
        redis_url=redis_url,
        fernet_keys=keys,
        staging_dir=Path(env.get("CONNECTOR_STAGING_DIR") or base / "staging"),
        xero=xero,
        xero_timeout_seconds=number("CONNECTOR_XERO_TIMEOUT_SECONDS", 30.0, minimum=0.1),
        xero_page_size=page_size,
        watermark_overlap_seconds=int(number("CONNECTOR_WATERMARK_OVERLAP_SECONDS", 300)),
        sftp_timeout_seconds=number("CONNECTOR_SFTP_TIMEOUT_SECONDS", 15.0, minimum=0.1),
        beat_tick_seconds=number("CONNECTOR_BEAT_TICK_SECONDS", 60.0, minimum=0.1),
        poll_lease_seconds=number("CONNECTOR_POLL_LEASE_SECONDS", 120.0, minimum=1),
        poll_handover_seconds=number("CONNECTOR_POLL_HANDOVER_SECONDS", 240.0, minimum=0.1,
                                     maximum=soft_time_limit(TIME_LIMITS["poll"]) / 2),
        sweep_interval_seconds=number("CONNECTOR_SWEEP_INTERVAL_SECONDS", 60.0, minimum=0.1),
        sweep_stale_seconds=number("CONNECTOR_SWEEP_STALE_SECONDS", 300.0),
        delivery_max_countdown_seconds=number("CONNECTOR_DELIVERY_MAX_COUNTDOWN_SECONDS", 600.0, minimum=1),
        delivery_backoff_cap_seconds=number("CONNECTOR_DELIVERY_BACKOFF_CAP_SECONDS", 900.0, minimum=5),
        delivery_lease_seconds=number("CONNECTOR_DELIVERY_LEASE_SECONDS", 1200.0, minimum=1),
        sftp_time_limit_seconds=number("CONNECTOR_SFTP_TIME_LIMIT_SECONDS", float(TIME_LIMITS["sftp"]), minimum=1),
        log_level=(env.get("CONNECTOR_LOG_LEVEL") or "INFO").upper(),
        xero_webhook_key=Secret(env["CONNECTOR_XERO_WEBHOOK_KEY"]) if env.get("CONNECTOR_XERO_WEBHOOK_KEY") else None,
        webhook_coalesce_seconds=number("CONNECTOR_WEBHOOK_COALESCE_SECONDS", 2.0, minimum=0.1),
        webhook_silence_seconds=number("CONNECTOR_WEBHOOK_SILENCE_SECONDS", 3600.0, minimum=60),
        reconcile_interval_seconds=number("CONNECTOR_RECONCILE_INTERVAL_SECONDS", 86400.0, minimum=3600),
        credit_note_interval_seconds=number("CONNECTOR_CREDIT_NOTE_INTERVAL_SECONDS", 3600.0, minimum=60),
        max_file_document_bytes=int(number("CONNECTOR_MAX_FILE_DOCUMENT_BYTES", 16 * 1024 * 1024, minimum=1)),
    )
    problems.extend(_inconsistencies(settings))
    if problems:
        raise ConfigurationError(problems)
    return settings


def longest_xero_request_seconds(settings: Settings) -> float:
    """One Xero request with its inline tries and the pauses between them, at the worst."""
    return settings.xero_timeout_seconds * INLINE_ATTEMPTS + INLINE_PAUSE_CAP * (INLINE_ATTEMPTS - 1)


def _inconsistencies(settings: Settings) -> list[str]:
    """Settings that are each valid but wrong together."""
    found: list[str] = []
    # A delivery lease must outlive any delivery: a delivery is stopped at its hard time limit, so an
    # attempt whose lease ran out can no longer reach the commit point while another one takes over.
    floor = settings.sftp_time_limit_seconds + 2 * settings.sftp_timeout_seconds + COMMIT_FENCE_SLACK_SECONDS
    if settings.delivery_lease_seconds <= floor:
        found.append(
            "CONNECTOR_DELIVERY_LEASE_SECONDS must be above the delivery time limit"
            f" ({settings.sftp_time_limit_seconds:g}s) plus two SFTP timeouts and {COMMIT_FENCE_SLACK_SECONDS:g}s,"
            f" i.e. above {floor:g}, got {settings.delivery_lease_seconds:g}")
    # A poll renews its lease before each Xero request, so the lease must outlast the longest request.
    request = longest_xero_request_seconds(settings)
    if settings.poll_lease_seconds <= request:
        found.append(
            f"CONNECTOR_POLL_LEASE_SECONDS must be above one Xero request with its {INLINE_ATTEMPTS} inline tries"
            f" (CONNECTOR_XERO_TIMEOUT_SECONDS x {INLINE_ATTEMPTS} plus pauses: {request:g}s),"
            f" got {settings.poll_lease_seconds:g}")
    return found
