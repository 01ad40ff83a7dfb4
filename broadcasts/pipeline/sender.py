"""A sender's life: one event loop and one HTTP client session, batch after batch on the
connections with rows ready, while the broadcast is sending and the time budget lasts; pause and
cancel are watched once a second.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp
from django.utils import timezone

from broadcasts.models import Broadcast, Delivery
from broadcasts.pipeline.batch import WINDOW_MAX, WINDOWS_IN_FLIGHT, BatchReport, send_rows
from broadcasts.pipeline.composer import Composer, email_urls
from broadcasts.pipeline.dbthread import DbThread
from broadcasts.pipeline.rows import batch_size_for, claim, ready_connections, release
from messengers import ratelimit
from messengers.adapters import get_adapter
from messengers.adapters.base import Adapter, Provider
from messengers.models import Connection
from messengers.selectors import connection_config

PAUSE_ERROR_RATE = 0.5  # a batch with more errors than this pauses the broadcast
PAUSE_MIN_ATTEMPTS = 50
SENDER_RATE = 800.0  # messages/s one sender comfortably drives; faster connections get several
BUSY_SECONDS = 3.0


@dataclass
class SenderReport:
    batches: int = 0
    sent: int = 0
    failed: int = 0
    retry: int = 0
    skipped: int = 0
    out_of_time: bool = False
    stopped_reason: str = ""


def run_sender(
    *,
    broadcast_id: int,
    tenant: Any,
    worker: str,
    time_budget: float,
    after_batch: Callable[[Connection, BatchReport], bool],
    heartbeat: Callable[[], Any] | None = None,
) -> SenderReport:
    """A sender's life: one event loop and one HTTP client session, batch after batch (claim →
    send in windows → results) while rows are ready and the time budget lasts. `after_batch`
    runs on the database thread and may stop the sender (auto-pause)."""
    dbt = DbThread(tenant, threads=WINDOWS_IN_FLIGHT)  # one per window in flight
    totals = SenderReport()
    beats = [time.monotonic()]

    def state() -> tuple[Broadcast | None, list[int]]:
        broadcast = Broadcast.objects.filter(pk=broadcast_id).first()
        if broadcast is None or broadcast.status != Broadcast.Status.SENDING:
            return broadcast, []
        return broadcast, ready_connections(broadcast_id)

    def prepare(connection_id: int) -> Connection:
        return Connection.objects.get(pk=connection_id)

    def release_leftover(ids: list[int]) -> int:
        leftover = list(
            Delivery.objects.filter(pk__in=ids, status=Delivery.Status.CLAIMED, claimed_by=worker).values_list(
                "pk", flat=True
            )
        )
        return release(leftover, worker)

    async def main() -> None:
        started = time.monotonic()
        adapters: dict[int, Adapter] = {}
        composer: Composer | None = None
        stop = [False]

        async def watch() -> None:
            # pause and cancel take effect within a second, between windows; the heartbeat tells
            # the tick this sender is alive (a silent one died with its worker)
            while not stop[0]:
                await asyncio.sleep(1.0)
                if heartbeat is not None and time.monotonic() - beats[0] > 5.0:
                    beats[0] = time.monotonic()
                    await dbt.run(heartbeat)
                broadcast_now, _ = await dbt.run(lambda: (Broadcast.objects.filter(pk=broadcast_id).first(), []))
                if broadcast_now is None or broadcast_now.status != Broadcast.Status.SENDING:
                    stop[0] = True

        connector = aiohttp.TCPConnector(limit=WINDOW_MAX * WINDOWS_IN_FLIGHT, ttl_dns_cache=300, keepalive_timeout=30)
        # no cookies, no automatic decompression: provider APIs need neither, and they cost per request
        async with aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False
        ) as session:
            watcher = asyncio.create_task(watch())
            try:
                while not stop[0]:
                    if time.monotonic() - started >= time_budget:
                        totals.out_of_time = True
                        break
                    broadcast, ready = await dbt.run(state)
                    if broadcast is None or not ready:
                        totals.stopped_reason = "nothing ready" if broadcast else "gone"
                        break
                    connection_id = random.choice(ready)
                    connection = await dbt.run(prepare, connection_id)
                    if connection.status != Connection.Status.ACTIVE:
                        await dbt.run(_defer_connection, broadcast_id, connection_id)
                        continue
                    if composer is None:
                        composer = await dbt.run(Composer.build, broadcast, tenant)
                    adapter = adapters.get(connection_id)
                    if adapter is None:
                        # built on the database thread: inside the event loop Django's connection is a
                        # different (context-local) object, which knows nothing of the tenant
                        adapter = adapters[connection_id] = await dbt.run(
                            lambda c=connection: get_adapter(connection_config(c))
                        )
                    if await dbt.run(ratelimit.backlog, connection_id) > BUSY_SECONDS:
                        # another sender already owns this connection's next slots: sleeping here
                        # would only hold a worker other tenants need
                        ready.remove(connection_id)
                        if not ready:
                            totals.stopped_reason = "connection busy"
                            break
                        continue
                    rows = await dbt.run(
                        claim,
                        broadcast_id,
                        connection_id,
                        batch_size_for(float(connection.rate_limit_per_second)),
                        worker,
                    )
                    if not rows:
                        continue
                    if connection.provider == Provider.EMAIL:
                        composer.email_urls.update(
                            await dbt.run(email_urls, [r.subscriber_id for r in rows if r.subscriber_id])
                        )
                    report = await send_rows(
                        rows=rows,
                        connection=connection,
                        adapter=adapter,
                        composer=composer,
                        dbt=dbt,
                        worker=worker,
                        session=session,
                        should_stop=lambda: stop[0],
                    )
                    report.released = await dbt.run(release_leftover, [r.delivery_id for r in rows])
                    totals.batches += 1
                    totals.sent += report.sent
                    totals.failed += report.failed
                    totals.retry += report.retry
                    totals.skipped += report.skipped
                    if not await dbt.run(after_batch, connection, report):
                        totals.stopped_reason = "stopped after a batch"
                        break
            finally:
                stop[0] = True
                watcher.cancel()

    try:
        asyncio.run(main())
    finally:
        dbt.close()
    return totals


def _defer_connection(broadcast_id: int, connection_id: int) -> None:
    Delivery.objects.filter(
        broadcast_id=broadcast_id, connection_id=connection_id, status=Delivery.Status.QUEUED
    ).update(next_attempt_at=timezone.now() + timedelta(seconds=30))


def estimated_seconds(count: int, rate: float) -> float:
    return math.ceil(count / ratelimit.effective_rate(rate)) if count else 0.0
