"""What every service needs, built once per process from the settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import redis
import requests

from connector.crypto import Vault
from connector.logs import quiet_leaky_loggers
from connector.settings import Settings
from connector.store.db import Ledger
from connector.store.models import utcnow
from connector.xero.auth import TokenKeeper
from connector.xero.budget import LocalLeases, RateBudget
from connector.xero.client import XeroApi
from connector.xero.redis_leases import RedisLeases


@dataclass
class Services:
    settings: Settings
    ledger: Ledger
    vault: Vault
    tokens: TokenKeeper
    xero: XeroApi
    clock: Callable[[], datetime] = field(default=utcnow)

    def close(self) -> None:
        self.ledger.dispose()


def rate_budget(settings: Settings) -> RateBudget:
    """Shared through Redis when there is one; per process in the embedded mode."""
    if settings.redis_url:
        return RateBudget(settings.redis_url, RedisLeases(redis.Redis.from_url(settings.redis_url)))
    return RateBudget("memory://", LocalLeases())


def build_services(settings: Settings, *, schema: str | None = None, run_migrations: bool = True,
                   ledger: Ledger | None = None, vault: Vault | None = None) -> Services:
    """`ledger` and `vault` are reused when the caller (the CLI's context) already holds them."""
    quiet_leaky_loggers()
    ledger = ledger or Ledger.connect(settings.database_url, schema=schema, run_migrations=run_migrations)
    vault = vault or Vault(settings.fernet_keys)
    http = requests.Session()
    return Services(
        settings=settings,
        ledger=ledger,
        vault=vault,
        tokens=TokenKeeper(ledger, vault, settings.xero, settings.xero_timeout_seconds),
        xero=XeroApi(http, settings.xero.api, settings.xero_timeout_seconds, rate_budget(settings)),
    )
