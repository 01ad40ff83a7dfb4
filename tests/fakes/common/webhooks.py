"""Delayed and batched webhook delivery: `Scheduler` (call_later with bookkeeping), `Batcher`
(groups per key), `Delivery` (one signed POST) and `WebhookPusher` (a pooled client that retries
non-2xx answers)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from tests.fakes.common.metering import Stats


class Scheduler:
    """`loop.call_later` with bookkeeping, so everything due later can be run now or dropped."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._pending: dict[int, tuple[asyncio.TimerHandle, Callable[..., None], tuple[Any, ...]]] = {}
        self._next = 0

    def later(self, delay: float, fn: Callable[..., None], *args: Any) -> None:
        if delay <= 0:
            fn(*args)
            return
        self._next += 1
        key = self._next
        handle = self.loop.call_later(delay, self._fire, key)
        self._pending[key] = (handle, fn, args)

    def _fire(self, key: int) -> None:
        entry = self._pending.pop(key, None)
        if entry is not None:
            entry[1](*entry[2])

    def run_all_now(self) -> int:
        """Run every pending callback immediately, in due order; returns how many ran."""
        ran = 0
        while self._pending:
            items = sorted(self._pending.items(), key=lambda kv: kv[1][0].when())
            self._pending.clear()
            for _key, (handle, fn, args) in items:
                handle.cancel()
                fn(*args)
                ran += 1
        return ran

    def cancel_all(self) -> None:
        for handle, _fn, _args in self._pending.values():
            handle.cancel()
        self._pending.clear()

    def __len__(self) -> int:
        return len(self._pending)


class Batcher:
    """Collects items per key and flushes them in groups of at most `size`.

    A partial group is flushed after `linger` seconds, or at the end of the current loop
    iteration when linger is 0 (so events produced together still share a POST).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        flush: Callable[[str, list[Any]], None],
        *,
        size: int = 1,
        linger: float = 0.0,
    ) -> None:
        self.loop = loop
        self._flush = flush
        self.size = max(1, size)
        self.linger = linger
        self._buffers: dict[str, list[Any]] = {}
        self._timers: dict[str, asyncio.Handle] = {}

    def add(self, key: str, item: Any) -> None:
        if self.size == 1:
            self._flush(key, [item])
            return
        buffer = self._buffers.setdefault(key, [])
        buffer.append(item)
        if len(buffer) >= self.size:
            self._flush_key(key)
        elif key not in self._timers:
            if self.linger > 0:
                self._timers[key] = self.loop.call_later(self.linger, self._flush_key, key)
            else:
                self._timers[key] = self.loop.call_soon(self._flush_key, key)

    def _flush_key(self, key: str) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        buffer = self._buffers.pop(key, [])
        while buffer:
            chunk, buffer = buffer[: self.size], buffer[self.size :]
            self._flush(key, chunk)

    def flush_all(self) -> None:
        for key in list(self._buffers):
            self._flush_key(key)

    def drop_all(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._buffers.clear()

    def __len__(self) -> int:
        return sum(len(b) for b in self._buffers.values())


@dataclass(slots=True)
class Delivery:
    """One webhook POST (body already serialized and signed)."""

    url: str
    body: bytes
    headers: dict[str, str]
    events: int = 1
    attempt: int = 0
    on_result: Callable[[Delivery, int | None, str], None] | None = None
    generation: int = 0  # set by the pusher; deliveries of an older generation are not retried


class WebhookPusher:
    """POSTs deliveries through one pooled ClientSession with `concurrency` workers.

    Non-2xx answers and connection errors are retried (`max_attempts` in all, exponential
    backoff from `retry_delay`), like the real providers do.
    """

    def __init__(
        self,
        stats: Stats,
        scheduler: Scheduler,
        *,
        concurrency: int = 64,
        max_attempts: int = 4,
        retry_delay: float = 0.2,
        timeout: float = 10.0,
    ) -> None:
        self.stats = stats
        self.scheduler = scheduler
        self.concurrency = max(1, concurrency)
        self.max_attempts = max(1, max_attempts)
        self.retry_delay = retry_delay
        self.timeout = timeout
        self.pending = 0
        self.in_flight = 0
        self.generation = 0
        self._queue: asyncio.Queue[Delivery] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self.concurrency, limit_per_host=self.concurrency, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            auto_decompress=False,
        )
        self._workers = [asyncio.create_task(self._work()) for _ in range(self.concurrency)]

    async def close(self) -> None:
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        if self._session is not None:
            await self._session.close()
            self._session = None

    def submit(self, delivery: Delivery) -> None:
        self.pending += 1
        delivery.generation = self.generation
        self._queue.put_nowait(delivery)

    def forget(self) -> None:
        """Drop queued deliveries (the caller cancels retry timers); the ones in flight finish
        without retries or statistics."""
        while not self._queue.empty():
            self._queue.get_nowait()
        self.pending = self.in_flight
        self.generation += 1

    def _requeue(self, delivery: Delivery) -> None:
        if delivery.generation != self.generation:
            self.pending -= 1
            return
        self._queue.put_nowait(delivery)

    async def _work(self) -> None:
        assert self._session is not None
        session = self._session
        while True:
            delivery = await self._queue.get()
            started = time.perf_counter()
            status: int | None
            detail = ""
            self.in_flight += 1
            try:
                async with session.post(delivery.url, data=delivery.body, headers=delivery.headers) as response:
                    status = response.status
                    text = await response.read()
                    if not 200 <= status < 300:
                        detail = text[:200].decode("utf-8", "replace")
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                status = None
                detail = type(exc).__name__
            finally:
                self.in_flight -= 1
            if delivery.generation != self.generation:
                self.pending -= 1
                continue
            self.stats.webhook_result(time.perf_counter() - started, status, delivery.events, detail)
            if delivery.on_result is not None:
                delivery.on_result(delivery, status, detail)
            if status is not None and 200 <= status < 300:
                self.pending -= 1
            elif delivery.attempt + 1 < self.max_attempts:
                delay = self.retry_delay * (2**delivery.attempt)
                delivery.attempt += 1
                self.stats.webhook_retries += 1
                self.scheduler.later(delay, self._requeue, delivery)
            else:
                self.stats.webhook_gave_up += 1
                self.pending -= 1
