"""A sender's life: one event loop and one HTTP client session, batch after batch on the
connections with rows ready, while the broadcast is sending and the time budget lasts; pause and
cancel are watched once a second.
"""

from __future__ import annotations

import asyncio
import logging
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
from broadcasts.pipeline.batch import ON_THE_WIRE_MAX, WINDOWS_IN_FLIGHT, AnswerTimes, BatchReport, send_rows
from broadcasts.pipeline.composer import Composer
from broadcasts.pipeline.dbthread import DbThread
from broadcasts.pipeline.rows import batch_size_for, ready_connections
from messengers import ratelimit
from messengers.adapters import get_adapter
from messengers.adapters.base import Adapter
from messengers.models import Connection
from messengers.selectors import connection_config

logger = logging.getLogger(__name__)

PAUSE_ERROR_RATE = 0.5  # a batch with more errors than this pauses the broadcast
PAUSE_MIN_ATTEMPTS = 50
GAVE_WAY = "gave way"  # SenderReport.stopped_reason when the sender ended for waiting work
GIVE_WAY_SECONDS = 0.1  # how often a sender asks whether other work waits for its worker
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

    def add(self, batch: BatchReport) -> None:
        self.batches += 1
        self.sent += batch.sent
        self.failed += batch.failed
        self.retry += batch.retry
        self.skipped += batch.skipped


def run_sender(
    *,
    broadcast_id: int,
    tenant: Any,
    worker: str,
    time_budget: float,
    after_batch: Callable[[Connection, BatchReport], bool],
    heartbeat: Callable[[], Any] | None = None,
    give_way: Callable[[], str | None] | None = None,
) -> SenderReport:
    """A sender's life: one event loop and one HTTP client session, batch after batch (windows
    claimed straight to `sending` → sent → results) while rows are ready and the time budget lasts. `after_batch`
    runs on the database thread and may stop the sender (auto-pause). `give_way` is asked
    every GIVE_WAY_SECONDS whether other work waits for this worker (core.tasks.give_way); if
    so the sender ends after the windows in flight, as if its time were up (out_of_time: it is
    queued again, behind that work)."""
    sender = _Sender(
        broadcast_id=broadcast_id,
        tenant=tenant,
        worker=worker,
        time_budget=time_budget,
        after_batch=after_batch,
        heartbeat=heartbeat,
        give_way=give_way,
    )
    try:
        asyncio.run(sender.main())
    finally:
        sender.dbt.close()
    return sender.totals


class _Sender:
    """What one sender keeps while its event loop runs: its database threads, its totals, the
    stop flag (set by the watcher on pause or cancel), and what it built once and reuses (the
    composer, an adapter per connection)."""

    def __init__(
        self,
        *,
        broadcast_id: int,
        tenant: Any,
        worker: str,
        time_budget: float,
        after_batch: Callable[[Connection, BatchReport], bool],
        heartbeat: Callable[[], Any] | None,
        give_way: Callable[[], str | None] | None = None,
    ) -> None:
        self.broadcast_id = broadcast_id
        self.tenant = tenant
        self.worker = worker
        self.time_budget = time_budget
        self.after_batch = after_batch
        self.heartbeat = heartbeat
        self.give_way = give_way
        self.dbt = DbThread(tenant, threads=WINDOWS_IN_FLIGHT)  # one per window in flight
        self.totals = SenderReport()
        self.last_beat = time.monotonic()
        self.stopped = False
        self.composer: Composer | None = None
        self.adapters: dict[int, Adapter] = {}
        self.answer_times: dict[int, AnswerTimes] = {}  # per connection

    async def main(self) -> None:
        """Turn after turn until the budget is spent, nothing is ready, or something stops us."""
        started = time.monotonic()
        async with _client_session() as session:
            watcher = asyncio.create_task(self.watch())
            try:
                while not self.stopped:
                    if time.monotonic() - started >= self.time_budget:
                        self.totals.out_of_time = True
                        break
                    if not await self.turn(session):
                        break
            finally:
                self.stopped = True
                watcher.cancel()

    async def watch(self) -> None:
        # pause and cancel take effect within a second, between windows; the heartbeat tells
        # the tick this sender is alive (a silent one died with its worker); waiting work gets
        # the worker within GIVE_WAY_SECONDS plus the windows in flight
        last_status = time.monotonic()
        while not self.stopped:
            await asyncio.sleep(GIVE_WAY_SECONDS)
            if self.give_way is not None and (waiting := await self.dbt.run(self.give_way)):
                logger.info("sender of broadcast %s gives its worker up to %s", self.broadcast_id, waiting)
                self.totals.out_of_time = True
                self.totals.stopped_reason = GAVE_WAY
                self.stopped = True
                return
            if time.monotonic() - last_status < 1.0:
                continue
            last_status = time.monotonic()
            if self.heartbeat is not None and time.monotonic() - self.last_beat > 5.0:
                self.last_beat = time.monotonic()
                await self.dbt.run(self.heartbeat)
            broadcast = await self.dbt.run(_broadcast_get, self.broadcast_id)
            if broadcast is None or broadcast.status != Broadcast.Status.SENDING:
                self.stopped = True

    async def turn(self, session: aiohttp.ClientSession) -> bool:
        """Pick a connection with ready rows and send a batch on it. False: the sender is done."""
        broadcast, ready = await self.dbt.run(_sending_state, self.broadcast_id)
        if broadcast is None or not ready:
            self.totals.stopped_reason = "nothing ready" if broadcast else "gone"
            return False
        connection_id = random.choice(ready)
        connection = await self.dbt.run(_connection_get, connection_id)
        if connection.status != Connection.Status.ACTIVE:
            await self.dbt.run(_defer_connection, self.broadcast_id, connection_id)
            return True
        if self.composer is None:
            self.composer = await self.dbt.run(Composer.build, broadcast, self.tenant)
        adapter = await self.adapter_for(connection)
        if await self.dbt.run(ratelimit.backlog, connection_id) > BUSY_SECONDS:
            # another sender already owns this connection's next slots: sleeping here would only
            # hold a worker other tenants need
            ready.remove(connection_id)
            if not ready:
                self.totals.stopped_reason = "connection busy"
                return False
            return True
        return await self.send_batch(connection, adapter, self.composer, session)

    async def adapter_for(self, connection: Connection) -> Adapter:
        adapter = self.adapters.get(connection.pk)
        if adapter is None:
            # built on the database thread: inside the event loop Django's connection is a
            # different (context-local) object, which knows nothing of the tenant
            adapter = self.adapters[connection.pk] = await self.dbt.run(_adapter_build, connection)
        return adapter

    async def send_batch(
        self, connection: Connection, adapter: Adapter, composer: Composer, session: aiohttp.ClientSession
    ) -> bool:
        """Send a batch on the connection (claimed window by window) and let `after_batch` judge
        it. False: the sender is done."""
        report = await send_rows(
            limit=batch_size_for(float(connection.rate_limit_per_second)),
            broadcast_id=self.broadcast_id,
            connection=connection,
            adapter=adapter,
            composer=composer,
            dbt=self.dbt,
            worker=self.worker,
            session=session,
            should_stop=lambda: self.stopped,
            answer_times=self.answer_times.setdefault(connection.pk, AnswerTimes()),
        )
        if not report.claimed:
            return True
        self.totals.add(report)
        if not await self.dbt.run(self.after_batch, connection, report):
            self.totals.stopped_reason = "stopped after a batch"
            return False
        return True


def _client_session() -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=ON_THE_WIRE_MAX, ttl_dns_cache=300, keepalive_timeout=30)
    # no cookies, no automatic decompression: provider APIs need neither, and they cost per request
    return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False)


# What the sender does on its database threads
def _broadcast_get(broadcast_id: int) -> Broadcast | None:
    return Broadcast.objects.filter(pk=broadcast_id).first()


def _sending_state(broadcast_id: int) -> tuple[Broadcast | None, list[int]]:
    """The broadcast, and its connections with rows ready now (none unless it is sending)."""
    broadcast = _broadcast_get(broadcast_id)
    if broadcast is None or broadcast.status != Broadcast.Status.SENDING:
        return broadcast, []
    return broadcast, ready_connections(broadcast_id)


def _connection_get(connection_id: int) -> Connection:
    return Connection.objects.get(pk=connection_id)


def _adapter_build(connection: Connection) -> Adapter:
    return get_adapter(connection_config(connection))


def _defer_connection(broadcast_id: int, connection_id: int) -> None:
    Delivery.objects.filter(
        broadcast_id=broadcast_id, connection_id=connection_id, status=Delivery.Status.QUEUED
    ).update(next_attempt_at=timezone.now() + timedelta(seconds=30))


def estimated_seconds(count: int, rate: float) -> float:
    return math.ceil(count / ratelimit.effective_rate(rate)) if count else 0.0
