"""One claimed batch, sent: windows of requests (several in flight), each moved to `sending`
right before it goes, paced from one reservation of the connection's shared send slots, its
outcomes written in one UPDATE. A 429 pushes the slot clock back for everyone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from broadcasts.pipeline.composer import Composer
from broadcasts.pipeline.dbthread import DbThread
from broadcasts.pipeline.rows import (
    LEASE_SECONDS,
    ClaimedRow,
    Outcome,
    classify,
    extend_lease,
    mark_sending,
    write_outcomes,
)
from messengers import ratelimit
from messengers.adapters.base import CONNECTION_KINDS, Adapter, ErrorKind, OutgoingMessage, ProviderError, SendResult
from messengers.models import Connection

logger = logging.getLogger(__name__)

WINDOW_MAX = 100  # requests per window
WINDOW_SECONDS = 0.25  # at low rates keep windows short, so an opt-out is re-checked often
WINDOWS_IN_FLIGHT = 3  # windows sending at once (up to 300 concurrent requests)


@dataclass
class BatchReport:
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    retry: int = 0
    skipped: int = 0
    released: int = 0
    connection_error: str = ""

    @property
    def errors(self) -> int:
        return self.failed + self.retry

    @property
    def attempted(self) -> int:
        return self.sent + self.failed + self.retry


async def _send_one(adapter: Adapter, session: Any, message: OutgoingMessage) -> SendResult | ProviderError:
    try:
        if adapter.native_async:
            return await adapter.send_async(session, message)
        return await asyncio.to_thread(adapter.send, message)
    except ProviderError as exc:
        return exc
    except Exception as exc:  # an adapter bug must not lose the row: classify as temporary
        logger.exception("adapter %s raised unexpectedly", adapter.provider)
        return ProviderError(ErrorKind.TEMPORARY, f"unexpected {exc.__class__.__name__}")


class Pacer:
    """Hands out send times one at a time, `interval` apart, starting at the reserved slot.

    Slots are taken right before each request, in order, and a late wake-up (a busy event loop,
    a 429 back-off) moves the following slots back instead of letting them catch up: a stall
    can never turn into a burst above the provider's limit (quality goal P2)."""

    def __init__(
        self,
        start: float,
        interval: float,
        *,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.next = start
        self.interval = interval
        self.lock = asyncio.Lock()
        # the event loop's clock; a test brings its own clock and sleep to check the schedule
        self.clock = clock or _loop_time
        self.sleep = sleep

    async def wait(self) -> None:
        async with self.lock:
            now = self.clock()
            if self.next > now:
                await self.sleep(self.next - now)
                now = self.clock()
            # a little lateness is made up (one and a half slots), more moves the schedule back
            self.next = max(self.next, now - self.slack) + self.interval

    @property
    def slack(self) -> float:
        return 1.5 * self.interval

    def back_off(self, seconds: float) -> None:
        self.next = max(self.next, self.clock() + seconds)


def _loop_time() -> float:
    return asyncio.get_running_loop().time()


def window_size_for(rate: float) -> int:
    """Requests per window at this connection rate: about WINDOW_SECONDS of sending, at most WINDOW_MAX."""
    return max(1, min(WINDOW_MAX, int(ratelimit.effective_rate(rate) * WINDOW_SECONDS) or 1))


async def send_rows(
    *,
    rows: list[ClaimedRow],
    connection: Connection,
    adapter: Adapter,
    composer: Composer,
    dbt: DbThread,
    worker: str,
    session: Any,
    should_stop: Callable[[], bool],
) -> BatchReport:
    """Send one claimed batch in windows, several in flight at once, paced from one reservation
    of send slots for the whole batch (one round trip to the shared limiter per batch)."""
    batch = _Batch(connection=connection, adapter=adapter, composer=composer, dbt=dbt, worker=worker, session=session)
    await batch.send(rows, should_stop)
    return batch.report


class _Batch:
    """One batch on its way out: the windows share the pacer, the lease clock and the report."""

    def __init__(
        self, *, connection: Connection, adapter: Adapter, composer: Composer, dbt: DbThread, worker: str, session: Any
    ) -> None:
        self.connection = connection
        self.provider = connection.provider_enum
        self.rate = float(connection.rate_limit_per_second)
        self.adapter = adapter
        self.composer = composer
        self.dbt = dbt
        self.worker = worker
        self.session = session
        self.report = BatchReport()

    async def send(self, rows: list[ClaimedRow], should_stop: Callable[[], bool]) -> None:
        self.report.claimed = len(rows)
        size = window_size_for(self.rate)
        windows = [rows[i : i + size] for i in range(0, len(rows), size)]
        gate = asyncio.Semaphore(WINDOWS_IN_FLIGHT)
        loop = asyncio.get_running_loop()
        slot = await self.dbt.run(ratelimit.reserve, self.connection.pk, self.rate, len(rows))
        self.pacer = Pacer(loop.time() + slot.delay, slot.interval)
        self.lease_at = loop.time()

        async def guarded(window: list[ClaimedRow]) -> None:
            async with gate:
                # a connection error (bad credentials, account problem) stops the windows not yet begun
                if self.report.connection_error or should_stop():
                    return
                await self.send_window(window)

        await asyncio.gather(*(guarded(w) for w in windows))

    async def send_window(self, window: list[ClaimedRow]) -> None:
        """Move the window to `sending` (skipping who opted out), send it, write its outcomes."""
        ok = await self.dbt.run(mark_sending, [r.delivery_id for r in window], self.worker, self.composer.channel_ids)
        self.report.skipped += len(window) - len(ok)
        loop = asyncio.get_running_loop()
        if loop.time() - self.lease_at > LEASE_SECONDS / 3:
            self.lease_at = loop.time()
            await self.dbt.run(extend_lease, self.worker)
        todo = [r for r in window if r.delivery_id in ok]
        if not todo:
            return
        outcomes = await asyncio.gather(*(self.send_one(r) for r in todo))
        await self.dbt.run(write_outcomes, outcomes)
        limited = [o.retry_after or 1.0 for o in outcomes if o.error_kind == ErrorKind.RATE_LIMITED]
        if limited:
            await self.dbt.run(ratelimit.penalize, self.connection.pk, max(limited))
        self.count(outcomes)

    async def send_one(self, row: ClaimedRow) -> Outcome:
        await self.pacer.wait()
        result = await _send_one(self.adapter, self.session, self.composer.message(row, self.provider))
        if isinstance(result, ProviderError):
            if result.kind == ErrorKind.RATE_LIMITED:
                self.pacer.back_off(result.retry_after or 1.0)
            return classify(row, result, timezone.now())
        return Outcome(delivery_id=row.delivery_id, status="sent", provider_message_id=result.provider_message_id)

    def count(self, outcomes: list[Outcome]) -> None:
        for o in outcomes:
            if o.status == "sent":
                self.report.sent += 1
            elif o.status == "failed":
                self.report.failed += 1
            else:
                self.report.retry += 1
        broken = [o for o in outcomes if o.error_kind in CONNECTION_KINDS]
        if broken:
            self.report.connection_error = f"{broken[0].error_kind} ({broken[0].error_code}): {broken[0].error_detail}"
