"""Send pacing shared by every worker process (and machine) per connection.

GCRA without burst: each send owns a slot, slots are 1/rate apart, and a worker reserves a run
of slots with one atomic round trip. Where the buckets live is a backend (`RateBackend`):
PostgreSQL (`UPDATE … RETURNING` on messengers_ratebucket) or Redis (Lua scripts) when
REDIS_URL is set, chosen once per process (`backend()`). Both use the server's clock, so
workers on different machines agree. A run of N slots starts `delay` seconds from now; slot i is at delay + i/rate.

Pacing runs slightly under the configured limit (PACING_FACTOR), so network jitter cannot
push a 1-second window at the provider above the limit (quality goal P2); the sender's Pacer
(broadcasts.pipeline) keeps a stalled event loop from catching up in a burst.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

import redis
from django.conf import settings
from django.db import connection as db_connection

from core.tenancy import connection as tenant_connection

PACING_FACTOR = 0.975


@dataclass(frozen=True)
class Reservation:
    delay: float  # seconds from now until the first slot
    interval: float  # seconds between slots
    count: int

    def offset(self, index: int) -> float:
        return self.delay + index * self.interval


def effective_rate(limit_per_second: float) -> float:
    return max(0.1, float(limit_per_second) * PACING_FACTOR)


def reserve(connection_id: int, limit_per_second: float, count: int = 1) -> Reservation:
    """Reserve `count` consecutive send slots for a connection of the current tenant schema."""
    rate = effective_rate(limit_per_second)
    span = count / rate
    delay = backend().reserve(connection_id, span)
    return Reservation(delay=max(0.0, delay), interval=1.0 / rate, count=count)


def penalize(connection_id: int, seconds: float) -> None:
    """The provider said "too fast" (429 / 130429): push every worker's next slot back."""
    seconds = max(0.0, min(float(seconds), 300.0))
    if seconds <= 0:
        return
    backend().penalize(connection_id, seconds)


def backlog(connection_id: int) -> float:
    """Seconds of send slots already reserved ahead of now (0 when the connection is idle)."""
    return backend().backlog(connection_id)


def next_slot_at(connection_id: int) -> float | None:
    """The connection's theoretical arrival time (the end of its reserved slots) as a Unix
    timestamp on the limiter's clock, or None before its first reservation. For inspection."""
    return backend().next_slot_at(connection_id)


class RateBackend(Protocol):
    """Where the connections' buckets (their theoretical arrival times) live. Connection ids are
    those of the current tenant schema; every method is one atomic round trip."""

    def reserve(self, connection_id: int, span: float) -> float:
        """Move the bucket `span` seconds on from max(itself, now); return the seconds from now
        until the reserved run starts (negative when the bucket was idle)."""
        ...

    def penalize(self, connection_id: int, seconds: float) -> None:
        """Make the bucket at least now + `seconds`."""
        ...

    def backlog(self, connection_id: int) -> float: ...

    def next_slot_at(self, connection_id: int) -> float | None: ...


@lru_cache(maxsize=1)
def backend() -> RateBackend:
    """The process's backend, chosen from settings on first use: Redis when REDIS_URL is set."""
    if settings.REDIS_URL:
        return RedisRateBackend(settings.REDIS_URL)
    return PostgresRateBackend()


class PostgresRateBackend:
    """One row per connection in the tenant's messengers_ratebucket. Runs in autocommit (or
    commits with the caller quickly): the row lock lasts one statement."""

    def reserve(self, connection_id: int, span: float) -> float:
        with db_connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO messengers_ratebucket (connection_id, tat)
                VALUES (%s, clock_timestamp() + make_interval(secs => %s))
                ON CONFLICT (connection_id) DO UPDATE
                   SET tat = GREATEST(messengers_ratebucket.tat, clock_timestamp()) + make_interval(secs => %s)
                RETURNING EXTRACT(EPOCH FROM (tat - clock_timestamp()))
                """,
                [connection_id, span, span],
            )
            remaining = float(cursor.fetchone()[0])
        return remaining - span

    def penalize(self, connection_id: int, seconds: float) -> None:
        with db_connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO messengers_ratebucket (connection_id, tat)
                VALUES (%s, clock_timestamp() + make_interval(secs => %s))
                ON CONFLICT (connection_id) DO UPDATE
                   SET tat = GREATEST(messengers_ratebucket.tat, clock_timestamp() + make_interval(secs => %s))
                """,
                [connection_id, seconds, seconds],
            )

    def backlog(self, connection_id: int) -> float:
        with db_connection.cursor() as cursor:
            cursor.execute(
                "SELECT GREATEST(0, EXTRACT(EPOCH FROM (tat - clock_timestamp()))) FROM messengers_ratebucket "
                "WHERE connection_id = %s",
                [connection_id],
            )
            row = cursor.fetchone()
        return float(row[0]) if row else 0.0

    def next_slot_at(self, connection_id: int) -> float | None:
        with db_connection.cursor() as cursor:
            cursor.execute(
                "SELECT EXTRACT(EPOCH FROM tat) FROM messengers_ratebucket WHERE connection_id = %s", [connection_id]
            )
            row = cursor.fetchone()
        return float(row[0]) if row else None


_LUA_RESERVE = """
local now = redis.call('TIME')
local now_s = tonumber(now[1]) + tonumber(now[2]) / 1000000
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now_s then tat = now_s end
local new_tat = tat + tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%.6f', new_tat), 'EX', 3600)
return tostring(tat - now_s)
"""

_LUA_PENALIZE = """
local now = redis.call('TIME')
local now_s = tonumber(now[1]) + tonumber(now[2]) / 1000000
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local floor = now_s + tonumber(ARGV[1])
if tat < floor then tat = floor end
redis.call('SET', KEYS[1], string.format('%.6f', tat), 'EX', 3600)
return tostring(tat)
"""


class RedisRateBackend:
    """One key per (tenant schema, connection), RATELIMIT_KEY_PREFIX:<schema>:<id>, holding the
    theoretical arrival time on Redis's clock; idle keys expire after an hour."""

    def __init__(self, url: str) -> None:
        self.client: Any = redis.Redis.from_url(url)
        self._reserve = self.client.register_script(_LUA_RESERVE)

    @staticmethod
    def key(connection_id: int) -> str:
        return f"{settings.RATELIMIT_KEY_PREFIX}:{tenant_connection.schema_name}:{connection_id}"

    def reserve(self, connection_id: int, span: float) -> float:
        return float(self._reserve(keys=[self.key(connection_id)], args=[repr(span)]))

    def penalize(self, connection_id: int, seconds: float) -> None:
        self.client.eval(_LUA_PENALIZE, 1, self.key(connection_id), repr(seconds))

    def backlog(self, connection_id: int) -> float:
        value = self.client.get(self.key(connection_id))
        if value is None:
            return 0.0
        now = self.client.time()
        return max(0.0, float(value) - (now[0] + now[1] / 1e6))

    def next_slot_at(self, connection_id: int) -> float | None:
        value = self.client.get(self.key(connection_id))
        return None if value is None else float(value)
