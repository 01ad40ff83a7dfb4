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
    report = BatchReport(claimed=len(rows))
    provider = connection.provider_enum
    rate = float(connection.rate_limit_per_second)
    window_size = window_size_for(rate)
    windows = [rows[i : i + window_size] for i in range(0, len(rows), window_size)]
    gate = asyncio.Semaphore(WINDOWS_IN_FLIGHT)
    loop = asyncio.get_running_loop()
    stop_at: list[int] = []
    channel_ids = composer.channel_ids
    slot = await dbt.run(ratelimit.reserve, connection.pk, rate, len(rows))
    pacer = Pacer(loop.time() + slot.delay, slot.interval)
    lease_at = [loop.time()]

    async def run_window(index: int, window: list[ClaimedRow]) -> None:
        ok = await dbt.run(mark_sending, [r.delivery_id for r in window], worker, channel_ids)
        report.skipped += len(window) - len(ok)
        if loop.time() - lease_at[0] > LEASE_SECONDS / 3:
            lease_at[0] = loop.time()
            await dbt.run(extend_lease, worker)
        todo = [r for r in window if r.delivery_id in ok]
        if not todo:
            return

        async def one(row: ClaimedRow) -> Outcome:
            await pacer.wait()
            result = await _send_one(adapter, session, composer.message(row, provider))
            if isinstance(result, ProviderError):
                if result.kind == ErrorKind.RATE_LIMITED:
                    pacer.back_off(result.retry_after or 1.0)
                return classify(row, result, timezone.now())
            return Outcome(delivery_id=row.delivery_id, status="sent", provider_message_id=result.provider_message_id)

        outcomes = await asyncio.gather(*(one(r) for r in todo))
        await dbt.run(write_outcomes, outcomes)
        limited = [o.retry_after or 1.0 for o in outcomes if o.error_kind == ErrorKind.RATE_LIMITED]
        if limited:
            await dbt.run(ratelimit.penalize, connection.pk, max(limited))
        for o in outcomes:
            if o.status == "sent":
                report.sent += 1
            elif o.status == "failed":
                report.failed += 1
            else:
                report.retry += 1
        broken = [o for o in outcomes if o.error_kind in CONNECTION_KINDS]
        if broken:
            report.connection_error = f"{broken[0].error_kind} ({broken[0].error_code}): {broken[0].error_detail}"
            stop_at.append(index)

    async def guarded(index: int, window: list[ClaimedRow]) -> None:
        async with gate:
            if stop_at or should_stop():
                return
            await run_window(index, window)

    await asyncio.gather(*(guarded(i, w) for i, w in enumerate(windows)))
    return report
