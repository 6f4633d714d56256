"""Leases and blocks in Redis, shared by every worker: the production `Leases`.

The semaphore is a sorted set of lease tokens scored by expiry; one Lua script drops expired leases,
counts, and adds ours atomically, so five workers can never all think they hold the fifth slot.
"""

from __future__ import annotations

import time
import uuid

import redis

_ACQUIRE = """
local key, now, limit, expires, token = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4]
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
if redis.call('ZCARD', key) >= limit then return 0 end
redis.call('ZADD', key, expires, token)
redis.call('PEXPIRE', key, math.ceil((tonumber(expires) - now) * 1000) + 1000)
return 1
"""

PREFIX = "connector:xero:"


class RedisLeases:
    def __init__(self, client: redis.Redis) -> None:
        self._redis = client
        self._acquire = client.register_script(_ACQUIRE)

    def acquire(self, key: str, limit: int, ttl: float) -> str | None:
        token = uuid.uuid4().hex
        now = time.time()
        taken = self._acquire(keys=[PREFIX + key], args=[now, limit, now + ttl, token])
        return token if int(str(taken)) == 1 else None

    def release(self, key: str, token: str) -> None:
        self._redis.zrem(PREFIX + key, token)

    def block(self, key: str, seconds: float) -> None:
        until = time.time() + seconds
        current = self._redis.get(PREFIX + key)
        if current is not None and float(str(current, "ascii") if isinstance(current, bytes) else current) >= until:
            return
        self._redis.set(PREFIX + key, f"{until:.3f}", px=max(1, int(seconds * 1000)))

    def blocked_for(self, key: str) -> float:
        value = self._redis.get(PREFIX + key)
        if value is None:
            return 0.0
        raw = value.decode("ascii") if isinstance(value, bytes) else str(value)
        return max(0.0, float(raw) - time.time())
