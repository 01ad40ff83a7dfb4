"""One batch, sent: windows of requests (several in flight), each claimed straight to `sending`
right before it goes and reserving its slots of the connection's shared send clock, one pacer
for the batch, each window's outcomes written in one UPDATE. A 429 pushes the slot clock back
for everyone.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from broadcasts.pipeline.composer import Composer, email_urls
from broadcasts.pipeline.dbthread import DbThread
from broadcasts.pipeline.rows import (
    LEASE_SECONDS,
    ClaimedRow,
    Outcome,
    claim_window,
    classify,
    extend_lease,
    write_outcomes,
)
from messengers import ratelimit
from messengers.adapters.base import (
    CONNECTION_KINDS,
    Adapter,
    ErrorKind,
    OutgoingMessage,
    Provider,
    ProviderError,
    SendResult,
)
from messengers.models import Connection

logger = logging.getLogger(__name__)

WINDOW_MAX = 200  # requests per window
WINDOW_SECONDS = 0.25  # at low rates keep windows short, so an opt-out is re-checked often
WINDOWS_IN_FLIGHT = 3  # windows sending at once (up to 600 requests between claim and answer)
# Requests on the wire at once per sender: enough for the connection's rate at the provider's
# answer time, twice over (see AnswerTimes), never fewer than ON_THE_WIRE_MIN, never more than
# the windows hold. On loopback 64 instead of 600 sent 15 % more (docs/operations.md).
ON_THE_WIRE_MIN = 32
ON_THE_WIRE_MAX = WINDOW_MAX * WINDOWS_IN_FLIGHT
ANSWERS_TIMED_MIN = 64  # answers timed before the limit follows them


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


class AnswerTimes:
    """A sender's recent provider answer times, and from them how many requests it keeps on the
    wire in its next batch. The fastest recent answer is the provider's time without queueing
    (the mean would grow with every request added, and so would the limit); the rate needs
    rate × that time in flight (Little's law), and twice that leaves room for jitter. Until
    answers were timed, and with a provider far away, the windows' whole 600. A provider that
    slows down raises the limit within `sample` answers (4 s at the lowest limit and 1 s answers):
    each window looks again before it starts."""

    def __init__(self, sample: int = 128) -> None:
        self.recent: deque[float] = deque(maxlen=sample)

    def add(self, seconds: float) -> None:
        self.recent.append(seconds)

    def on_the_wire(self, rate: float) -> int:
        if len(self.recent) < ANSWERS_TIMED_MIN:
            return ON_THE_WIRE_MAX
        needed = math.ceil(2 * ratelimit.effective_rate(rate) * min(self.recent))
        return max(ON_THE_WIRE_MIN, min(ON_THE_WIRE_MAX, needed))


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
    can never turn into a burst above the provider's limit (quality goal P2). The little
    lateness that is made up (one and a half slots) never puts more requests into one second
    than the second has slots (`per_second`, where a second holds several): that catch-up used
    the margin PACING_FACTOR leaves for jitter, and a busy machine's provider answered 130429.

    A batch reserves its slots window by window: `count` says how many slots the first
    reservation holds and `add` queues the next ones. When one is used up the pacer goes on
    with the next, never before its start (another sender may own the slots in between).
    Without `count` the slots never run out."""

    def __init__(
        self,
        start: float,
        interval: float,
        *,
        count: int | None = None,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.next = start
        self.interval = interval
        self.left = count
        self.reservations: deque[tuple[float, int]] = deque()
        self.lock = asyncio.Lock()
        # the event loop's clock; a test brings its own clock and sleep to check the schedule
        self.clock = clock or _loop_time
        self.sleep = sleep
        # evenly spaced slots put at most ceil(rate) into any second (78 at 78/s, 30 at 29.25/s)
        slots = math.ceil(round(1.0 / interval, 6)) if interval > 0 else 0
        self.per_second = slots if slots >= 2 else None  # requests at most in any second
        self.recent: deque[float] = deque(maxlen=slots if self.per_second else 1)

    def add(self, start: float, count: int) -> None:
        """Another reservation of `count` slots from `start`, used after the ones before it."""
        self.reservations.append((start, count))

    async def wait(self) -> None:
        async with self.lock:
            if self.left is not None and self.left <= 0 and self.reservations:
                start, self.left = self.reservations.popleft()
                self.next = max(self.next, start)
            while True:  # again after a sleep: a 429 may have moved the schedule meanwhile
                now = self.clock()
                at = self.next
                if self.per_second and len(self.recent) == self.per_second:
                    at = max(at, self.recent[0] + 1.0)
                if at <= now:
                    break
                await self.sleep(at - now)
            self.recent.append(now)
            # a little lateness is made up (one and a half slots), more moves the schedule back
            self.next = max(self.next, now - self.slack) + self.interval
            if self.left is not None:
                self.left -= 1

    @property
    def slack(self) -> float:
        return 1.5 * self.interval

    def back_off(self, seconds: float) -> float | None:
        """The provider said "too fast": no request before `seconds` from now. Returns the
        seconds from now until every slot this pacer still holds will have gone out (what the
        shared clock must be pushed to), or None when the schedule was already that late (a
        429 of the same burst)."""
        now = self.clock()
        if now + seconds <= self.next:
            return None
        self.next = now + seconds
        held = (self.left or 0) + sum(count for _, count in self.reservations)
        return seconds + held * self.interval


def _loop_time() -> float:
    return asyncio.get_running_loop().time()


def window_size_for(rate: float) -> int:
    """Requests per window at this connection rate: about WINDOW_SECONDS of sending, at most WINDOW_MAX."""
    return max(1, min(WINDOW_MAX, int(ratelimit.effective_rate(rate) * WINDOW_SECONDS) or 1))


async def send_rows(
    *,
    limit: int,
    broadcast_id: int,
    connection: Connection,
    adapter: Adapter,
    composer: Composer,
    dbt: DbThread,
    worker: str,
    session: Any,
    should_stop: Callable[[], bool],
    answer_times: AnswerTimes | None = None,
) -> BatchReport:
    """Send a batch of up to `limit` ready rows of the connection in windows, several in flight
    at once. Each window is claimed (straight to `sending`) right before it goes and reserves its
    send slots from the shared limiter; one pacer spaces all of the batch's requests."""
    batch = _Batch(
        broadcast_id=broadcast_id,
        connection=connection,
        adapter=adapter,
        composer=composer,
        dbt=dbt,
        worker=worker,
        session=session,
        answer_times=answer_times or AnswerTimes(),
    )
    await batch.send(limit, should_stop)
    return batch.report


class _Batch:
    """One batch on its way out: the windows share the pacer, the lease clock and the report."""

    def __init__(
        self,
        *,
        broadcast_id: int,
        connection: Connection,
        adapter: Adapter,
        composer: Composer,
        dbt: DbThread,
        worker: str,
        session: Any,
        answer_times: AnswerTimes,
    ) -> None:
        self.broadcast_id = broadcast_id
        self.connection = connection
        self.provider = connection.provider_enum
        self.rate = float(connection.rate_limit_per_second)
        self.adapter = adapter
        self.composer = composer
        self.dbt = dbt
        self.worker = worker
        self.session = session
        self.report = BatchReport()
        self.pacer: Pacer | None = None
        self.lease_at = 0.0
        self.left = 0  # rows of the batch not yet taken by a window
        self.answer_times = answer_times
        # taken before the pacing slot: waiting for a turn on the wire never bunches requests up
        self.wire_limit = answer_times.on_the_wire(self.rate)
        self.on_the_wire = asyncio.Semaphore(self.wire_limit)
        self.drained = False  # a window found fewer rows than it asked for: nothing more is ready

    async def send(self, limit: int, should_stop: Callable[[], bool]) -> None:
        size = window_size_for(self.rate)
        self.left = limit
        self.lease_at = asyncio.get_running_loop().time()

        async def lane() -> None:
            # windows one after the other; WINDOWS_IN_FLIGHT lanes run side by side
            while self.left > 0 and not self.drained:
                # a connection error (bad credentials, account problem) stops the windows not yet begun
                if self.report.connection_error or should_stop():
                    return
                take = min(size, self.left)
                self.left -= take
                await self.send_window(take)

        await asyncio.gather(*(lane() for _ in range(WINDOWS_IN_FLIGHT)))

    async def send_window(self, take: int) -> None:
        """Claim a window (skipping who opted out), reserve its slots, send it, write its outcomes."""
        window, skipped, slot = await self.dbt.run(
            _claim_and_reserve,
            self.broadcast_id,
            self.connection.pk,
            take,
            self.worker,
            self.composer.channel_ids,
            self.rate,
        )
        self.report.claimed += len(window) + skipped
        self.report.skipped += skipped
        if len(window) + skipped < take:
            self.drained = True
        if not window or slot is None:
            return
        if self.provider == Provider.EMAIL:
            subscriber_ids = [r.subscriber_id for r in window if r.subscriber_id]
            self.composer.email_urls.update(await self.dbt.run(email_urls, subscriber_ids))
        self.widen()
        loop = asyncio.get_running_loop()
        start = loop.time() + slot.delay
        if self.pacer is None:
            self.pacer = Pacer(start, slot.interval, count=len(window))
        else:
            self.pacer.add(start, len(window))
        if loop.time() - self.lease_at > LEASE_SECONDS / 3:
            self.lease_at = loop.time()
            await self.dbt.run(extend_lease, self.worker)
        outcomes = await asyncio.gather(*(self.send_one(r) for r in window))
        await self.dbt.run(write_outcomes, outcomes)
        self.count(outcomes)

    def widen(self) -> None:
        """More requests on the wire when the provider now answers more slowly than when the
        batch began (never fewer within a batch: the next batch starts from the answers)."""
        wanted = self.answer_times.on_the_wire(self.rate)
        if wanted > self.wire_limit:
            for _ in range(wanted - self.wire_limit):
                self.on_the_wire.release()
            self.wire_limit = wanted

    async def send_one(self, row: ClaimedRow) -> Outcome:
        assert self.pacer is not None  # set by the window's reservation
        async with self.on_the_wire:
            await self.pacer.wait()
            message = self.composer.message(row, self.provider)
            loop = asyncio.get_running_loop()
            asked = loop.time()
            result = await _send_one(self.adapter, self.session, message)
            self.answer_times.add(loop.time() - asked)
        if isinstance(result, ProviderError):
            if result.kind == ErrorKind.RATE_LIMITED:
                await self.slow_down(result.retry_after or 1.0)
            return classify(row, result, timezone.now())
        return Outcome(delivery_id=row.delivery_id, status="sent", provider_message_id=result.provider_message_id)

    async def slow_down(self, seconds: float) -> None:
        """A 429: this batch's pacer and the connection's shared clock back off together, once
        per burst of 429s and at once. (Pushing the shared clock only when the window was done,
        `seconds` past its end, while the pacer had already waited from the 429 on, cost a
        second stall of up to the window's length; and the slots this pacer still holds go out
        after the back-off, so the shared clock is pushed past them, not only `seconds`.)"""
        assert self.pacer is not None
        behind = self.pacer.back_off(seconds)
        if behind is not None:
            await self.dbt.run(ratelimit.penalize, self.connection.pk, behind)

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


def _claim_and_reserve(
    broadcast_id: int, connection_id: int, take: int, worker: str, channel_ids: list[int], rate: float
) -> tuple[list[ClaimedRow], int, ratelimit.Reservation | None]:
    """A window's rows and their send slots, in one transaction (one commit, one trip to the
    database thread): claim_window, then ratelimit.reserve for the rows to send."""
    with transaction.atomic():
        window, skipped = claim_window(broadcast_id, connection_id, take, worker, channel_ids)
        slot = ratelimit.reserve(connection_id, rate, len(window)) if window else None
    return window, skipped, slot
