"""Send pacing shared by every worker process (and machine) per connection.

GCRA without burst: each send owns a slot, slots are 1/rate apart, and a worker reserves a run
of slots with one atomic round trip (PostgreSQL `UPDATE … RETURNING`, or a Lua script in
Redis when REDIS_URL is set). Both use the server's clock, so workers on different machines
agree. A run of N slots starts `delay` seconds from now; slot i is at delay + i/rate.

Pacing runs slightly under the configured limit (PACING_FACTOR), so network jitter cannot
push a 1-second window at the provider above the limit (quality goal P2); the sender's Pacer
(broadcasts.pipeline) keeps a stalled event loop from catching up in a burst.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

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
    redis_url = settings.REDIS_URL
    delay = _reserve_redis(_key(connection_id), span) if redis_url else _reserve_postgres(connection_id, span)
    return Reservation(delay=max(0.0, delay), interval=1.0 / rate, count=count)


def _reserve_postgres(connection_id: int, span: float) -> float:
    # Runs in autocommit (or commits with the caller quickly): the row lock lasts one statement.
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


_LUA = """
local now = redis.call('TIME')
local now_s = tonumber(now[1]) + tonumber(now[2]) / 1000000
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now_s then tat = now_s end
local new_tat = tat + tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%.6f', new_tat), 'EX', 3600)
return tostring(tat - now_s)
"""


@lru_cache(maxsize=1)
def _redis() -> tuple[Any, Any]:
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    return client, client.register_script(_LUA)


def _key(connection_id: int) -> str:
    return f"{settings.RATELIMIT_KEY_PREFIX}:{tenant_connection.schema_name}:{connection_id}"


def _reserve_redis(key: str, span: float) -> float:
    _, script = _redis()
    return float(script(keys=[key], args=[repr(span)]))


def penalize(connection_id: int, seconds: float) -> None:
    """The provider said "too fast" (429 / 130429): push every worker's next slot back."""
    seconds = max(0.0, min(float(seconds), 300.0))
    if seconds <= 0:
        return
    if settings.REDIS_URL:
        client, _ = _redis()
        client.eval(_LUA_PENALIZE, 1, _key(connection_id), repr(seconds))
        return
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


_LUA_PENALIZE = """
local now = redis.call('TIME')
local now_s = tonumber(now[1]) + tonumber(now[2]) / 1000000
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local floor = now_s + tonumber(ARGV[1])
if tat < floor then tat = floor end
redis.call('SET', KEYS[1], string.format('%.6f', tat), 'EX', 3600)
return tostring(tat)
"""


def backlog(connection_id: int) -> float:
    """Seconds of send slots already reserved ahead of now (0 when the connection is idle)."""
    if settings.REDIS_URL:
        client, _ = _redis()
        value = client.get(_key(connection_id))
        if value is None:
            return 0.0
        now = client.time()
        return max(0.0, float(value) - (now[0] + now[1] / 1e6))
    with db_connection.cursor() as cursor:
        cursor.execute(
            "SELECT GREATEST(0, EXTRACT(EPOCH FROM (tat - clock_timestamp()))) FROM messengers_ratebucket "
            "WHERE connection_id = %s",
            [connection_id],
        )
        row = cursor.fetchone()
    return float(row[0]) if row else 0.0


def next_slot_at(connection_id: int) -> float | None:
    """The connection's theoretical arrival time (the end of its reserved slots) as a Unix
    timestamp on the limiter's clock, or None before its first reservation. For inspection."""
    if settings.REDIS_URL:
        client, _ = _redis()
        value = client.get(_key(connection_id))
        return None if value is None else float(value)
    with db_connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXTRACT(EPOCH FROM tat) FROM messengers_ratebucket WHERE connection_id = %s", [connection_id]
        )
        row = cursor.fetchone()
    return float(row[0]) if row else None
