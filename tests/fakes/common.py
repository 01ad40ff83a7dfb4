"""Machinery shared by the fake provider servers (WhatsApp, Telegram, Twilio, SMTP).

A fake is an aiohttp application that speaks one provider's wire protocol (see
/work/shared/docs/providers.md) and adds a JSON control API under `/_fake/...` on the same port.
This module holds everything that is not provider specific:

- `Fault` / `FaultInjector`: probabilistic faults (seedable RNG), "fail the next N requests with X"
  and per-recipient rules. Each fake turns a fault into its own error envelope.
- `SlidingWindowLimiter`: "at most N accepted messages in any 1-second window", per key.
- `Stats`: per-second accepted counts, max in any 1-second window, mean rate, outcomes, webhook
  POST latencies.
- `RequestLog`: a capped record of every API request (method, path, headers, parsed body, time).
- `Scheduler` / `Batcher` / `WebhookPusher`: delayed events, batching, and a pooled aiohttp client
  that POSTs signed webhooks with bounded concurrency and retries non-2xx answers.
- `FakeServer`: the base class (own event loop in a background thread for tests via `start()`,
  or `serve()` in the foreground for the command line), the control API and the CLI helpers.
- `RecordingServer`: a tiny webhook receiver for tests and benchmarks.

All mutable state of a fake lives in its event loop; the in-process Python API hops onto that loop
(`FakeServer._call`), so tests can call it from any thread.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import copy
import json
import random
import signal
import socket
import struct
import threading
import time
from array import array
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, TypeVar

import aiohttp
from aiohttp import web

T = TypeVar("T")

JSON_TYPE = "application/json"
FAULT_KINDS = frozenset({"5xx", "timeout", "reset", "rate_limit", "error", "async_fail"})


def dumps(obj: Any) -> bytes:
    """Compact JSON bytes, non-ASCII escaped (the form Meta signs; harmless for the others)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True).encode()


def json_response(obj: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(body=dumps(obj), status=status, content_type=JSON_TYPE, headers=headers)


# --------------------------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------------------------
@dataclass
class Fault:
    """One injected failure.

    kind: "5xx" (server error envelope), "timeout" (hold the request past the client's timeout),
    "reset" (abort the TCP connection), "rate_limit" (the provider's 429-style error with
    retry_after), "error" (the provider error `code`, e.g. 131026, 403 for Telegram, 21211),
    "async_fail" (accept, then report the message failed with `code` in a status webhook).
    """

    kind: str
    code: int | None = None
    http_status: int | None = None
    retry_after: float | None = None
    message: str = ""

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {sorted(FAULT_KINDS)}")
        if self.kind in ("error", "async_fail") and self.code is None:
            raise ValueError(f"fault kind {self.kind!r} needs a code")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known - {"count", "rate"}
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        return cls(
            kind=str(data["kind"]),
            code=None if data.get("code") is None else int(data["code"]),
            http_status=None if data.get("http_status") is None else int(data["http_status"]),
            retry_after=None if data.get("retry_after") is None else float(data["retry_after"]),
            message=str(data.get("message", "")),
        )


class FaultInjector:
    """Decides, per request, whether to fail it and how.

    Order: the deterministic queue ("fail the next N requests with X"), then the per-recipient
    rules, then the probabilistic rates (one seedable RNG draw per request).
    """

    def __init__(self, seed: int | None = None) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self._queue: deque[list[Any]] = deque()  # [fault, remaining]
        self._recipients: dict[str, list[Any]] = {}  # recipient -> [fault, remaining or None]
        self._random: list[tuple[float, Fault]] = []
        self._total_rate = 0.0
        self.injected: Counter[str] = Counter()

    def reseed(self, seed: int | None) -> None:
        self.seed = seed
        self.rng = random.Random(seed)

    def fail_next(self, count: int, fault: Fault) -> None:
        if count > 0:
            self._queue.append([fault, count])

    def set_recipient(self, recipient: str, fault: Fault | None, count: int | None = None) -> None:
        if fault is None:
            self._recipients.pop(recipient, None)
        else:
            self._recipients[recipient] = [fault, count]

    def set_rate(self, rate: float, fault: Fault) -> None:
        """Fail a fraction `rate` of requests with `fault` (replaces an earlier rate of the same kind+code)."""
        if not 0.0 <= rate <= 1.0:
            raise ValueError("a fault rate is a probability between 0 and 1")
        self._random = [(r, f) for r, f in self._random if (f.kind, f.code) != (fault.kind, fault.code)]
        if rate > 0:
            self._random.append((rate, fault))
        total = sum(r for r, _ in self._random)
        if total > 1.0 + 1e-9:
            raise ValueError("fault rates add up to more than 1")
        self._total_rate = total

    def clear(self) -> None:
        self._queue.clear()
        self._recipients.clear()
        self._random = []
        self._total_rate = 0.0

    def pick(self, recipient: str | None) -> Fault | None:
        if self._queue:
            entry = self._queue[0]
            entry[1] -= 1
            if entry[1] <= 0:
                self._queue.popleft()
            return self._count(entry[0])
        if self._recipients and recipient is not None:
            fault = self.pick_recipient(recipient)
            if fault is not None:
                return fault
        if self._total_rate > 0.0:
            draw = self.rng.random()
            for rate, fault in self._random:
                if draw < rate:
                    return self._count(fault)
                draw -= rate
        return None

    def pick_recipient(self, recipient: str) -> Fault | None:
        """Only the per-recipient rule (the SMTP sink applies it at RCPT time)."""
        rule = self._recipients.get(recipient)
        if rule is None:
            return None
        if rule[1] is not None:
            rule[1] -= 1
            if rule[1] <= 0:
                del self._recipients[recipient]
        return self._count(rule[0])

    def _count(self, fault: Fault) -> Fault:
        self.injected[fault.kind if fault.code is None else f"{fault.kind}:{fault.code}"] += 1
        return fault

    def snapshot(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "queue": [{**_fault_dict(f), "count": n} for f, n in self._queue],
            "recipients": {r: {**_fault_dict(f), "count": n} for r, (f, n) in self._recipients.items()},
            "rates": [{**_fault_dict(f), "rate": r} for r, f in self._random],
            "injected": dict(self.injected),
        }


def _fault_dict(fault: Fault) -> dict[str, Any]:
    return {k: v for k, v in asdict(fault).items() if v not in (None, "")}


# --------------------------------------------------------------------------------------------
# Rate limiting and statistics
# --------------------------------------------------------------------------------------------
class SlidingWindowLimiter:
    """At most `limit` acquisitions per key in any `window`-second interval (half-open [t, t+window))."""

    def __init__(self, limit: float | None, window: float = 1.0) -> None:
        self.limit = limit
        self.window = window
        self._times: dict[str, deque[float]] = {}

    def try_acquire(self, key: str, now: float) -> float | None:
        """None when acquired; otherwise the number of seconds until a slot frees up."""
        if not self.limit:
            return None
        times = self._times.get(key)
        if times is None:
            times = self._times[key] = deque()
        horizon = now - self.window
        while times and times[0] <= horizon:
            times.popleft()
        if len(times) >= self.limit:
            return max(times[0] + self.window - now, 0.001)
        times.append(now)
        return None

    def clear(self) -> None:
        self._times.clear()


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def max_in_window(times: Iterable[float] | array, window: float = 1.0) -> int:
    """Most timestamps (sorted ascending) in any half-open interval [t, t+window)."""
    values = times if isinstance(times, array) else array("d", times)
    best = 0
    for i, t in enumerate(values):
        j = bisect.bisect_left(values, t + window, lo=i)
        best = max(best, j - i)
    return best


class Stats:
    """Counters a benchmark reads back: send pacing, outcomes and webhook delivery figures."""

    TIME_CAP = 5_000_000  # timestamps kept for the sliding-window maximum (40 MB of doubles)
    LATENCY_CAP = 1_000_000

    def __init__(self) -> None:
        self.wall_offset = time.time() - time.monotonic()
        self.accepted_times = array("d")
        self.attempt_times = array("d")
        self.attempts = 0
        self.per_second: Counter[int] = Counter()
        self.outcomes: Counter[str] = Counter()
        self.http_status: Counter[int] = Counter()
        self.webhook_latencies: deque[float] = deque(maxlen=self.LATENCY_CAP)
        self.webhook_posts = 0
        self.webhook_events = 0
        self.webhook_ok = 0
        self.webhook_non_2xx = 0
        self.webhook_errors = 0
        self.webhook_retries = 0
        self.webhook_gave_up = 0
        self.webhook_dropped = 0  # events with no webhook target configured
        self.webhook_statuses: Counter[int] = Counter()
        self.webhook_failures: deque[dict[str, Any]] = deque(maxlen=100)

    def attempt(self, now: float) -> None:
        self.attempts += 1
        if len(self.attempt_times) < self.TIME_CAP:
            self.attempt_times.append(now)

    def accepted(self, now: float) -> None:
        if len(self.accepted_times) < self.TIME_CAP:
            self.accepted_times.append(now)
        self.per_second[int(now + self.wall_offset)] += 1
        self.outcomes["accepted"] += 1

    def outcome(self, name: str, http_status: int) -> None:
        self.outcomes[name] += 1
        self.http_status[http_status] += 1

    def webhook_result(self, latency: float, status: int | None, events: int, detail: str = "") -> None:
        self.webhook_posts += 1
        self.webhook_latencies.append(latency)
        if status is None:
            self.webhook_errors += 1
            self.webhook_failures.append({"status": None, "error": detail, "at": time.time()})
            return
        self.webhook_statuses[status] += 1
        if 200 <= status < 300:
            self.webhook_ok += 1
            self.webhook_events += events
        else:
            self.webhook_non_2xx += 1
            self.webhook_failures.append({"status": status, "body": detail, "at": time.time()})

    def summary(self, pending: int = 0) -> dict[str, Any]:
        accepted = self.accepted_times
        count = len(accepted)
        span = accepted[-1] - accepted[0] if count > 1 else 0.0
        latencies = sorted(self.webhook_latencies)
        return {
            "sends": {
                "attempts": self.attempts,
                "accepted": self.outcomes["accepted"],
                "max_in_any_second": max_in_window(accepted),
                "attempts_max_in_any_second": max_in_window(self.attempt_times),
                "max_per_calendar_second": max(self.per_second.values(), default=0),
                "mean_per_s": round((count - 1) / span, 3) if span > 0 else float(count),
                "first_at": accepted[0] + self.wall_offset if count else None,
                "last_at": accepted[-1] + self.wall_offset if count else None,
                "per_second": sorted(self.per_second.items()),
            },
            "outcomes": dict(self.outcomes),
            "http_status": {str(k): v for k, v in sorted(self.http_status.items())},
            "webhooks": {
                "posts": self.webhook_posts,
                "events": self.webhook_events,
                "ok": self.webhook_ok,
                "non_2xx": self.webhook_non_2xx,
                "errors": self.webhook_errors,
                "retries": self.webhook_retries,
                "gave_up": self.webhook_gave_up,
                "dropped_no_target": self.webhook_dropped,
                "pending": pending,
                "statuses": {str(k): v for k, v in sorted(self.webhook_statuses.items())},
                "latency_ms": {
                    "count": len(latencies),
                    "p50": round(_percentile(latencies, 0.50) * 1000, 3),
                    "p90": round(_percentile(latencies, 0.90) * 1000, 3),
                    "p99": round(_percentile(latencies, 0.99) * 1000, 3),
                    "max": round(latencies[-1] * 1000, 3) if latencies else 0.0,
                },
                "recent_failures": list(self.webhook_failures),
            },
        }


# --------------------------------------------------------------------------------------------
# Request log
# --------------------------------------------------------------------------------------------
class RequestLog:
    """The last `cap` API requests a fake received (control requests are not recorded)."""

    def __init__(self, cap: int) -> None:
        self.entries: deque[dict[str, Any]] = deque(maxlen=max(cap, 0) or None)
        self.enabled = cap > 0
        self.seq = 0

    def add(
        self,
        request: web.Request,
        body: Any,
        *,
        kind: str,
        recipient: str | None = None,
        now: float | None = None,
    ) -> dict[str, Any]:
        self.seq += 1
        entry = {
            "seq": self.seq,
            "at": time.time(),
            "monotonic": time.monotonic() if now is None else now,
            "method": request.method,
            "path": request.path,
            "query": dict(request.query),
            "headers": dict(request.headers),
            "body": body,
            "kind": kind,
            "recipient": recipient,
            "status": None,
        }
        if self.enabled:
            self.entries.append(entry)
        return entry

    def select(
        self,
        *,
        kind: str | None = None,
        method: str | None = None,
        path_contains: str | None = None,
        recipient: str | None = None,
        since: int = 0,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        out = [
            e
            for e in self.entries
            if e["seq"] > since
            and (kind is None or e["kind"] == kind)
            and (method is None or e["method"] == method.upper())
            and (path_contains is None or path_contains in e["path"])
            and (recipient is None or e["recipient"] == recipient)
        ]
        return out[-limit:] if limit else out

    def clear(self) -> None:
        self.entries.clear()


# --------------------------------------------------------------------------------------------
# Scheduling, batching and webhook pushing
# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------
@dataclass
class CommonSettings:
    """Runtime-configurable behaviour every fake shares (each fake extends it)."""

    webhook_url: str = ""
    # accepted messages per second (sliding 1-s window); None or 0 = unlimited
    rate: float | None = None
    # divides every status delay; 0 = instant statuses (benchmarks)
    speed: float = 1.0
    # offsets in seconds from acceptance at which each status is pushed (before `speed`)
    status_delays: dict[str, float] = field(default_factory=dict)
    duplicate_rate: float = 0.0  # probability that a webhook event is pushed twice
    reorder_rate: float = 0.0  # probability that a message's statuses are pushed in shuffled order
    retry_after: float = 1.0  # what rate_limit faults announce
    timeout_hold: float = 30.0  # how long a "timeout" fault holds the request
    webhook_concurrency: int = 64  # read at start
    webhook_max_attempts: int = 4
    webhook_retry_delay: float = 0.2
    webhook_timeout: float = 10.0  # read at start
    record_cap: int = 10_000  # request log size; 0 disables recording
    sent_cap: int = 20_000  # accepted messages kept for sent_messages()

    def delay(self, status: str) -> float:
        if self.speed <= 0:
            return 0.0
        return self.status_delays.get(status, 0.0) / self.speed


def _coerce(current: Any, value: Any, name: str) -> Any:
    if value is None:
        return None
    if isinstance(current, bool):
        if isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes", "on")
        return bool(value)
    if isinstance(current, int) and not isinstance(current, bool):
        return int(value)
    if isinstance(current, float):
        return float(value)
    if isinstance(current, str):
        return str(value)
    if isinstance(current, dict):
        if not isinstance(value, Mapping):
            raise ValueError(f"{name} must be an object")
        return dict(value)
    if isinstance(current, tuple | list):
        if isinstance(value, str):
            return tuple(v for v in value.split(",") if v)
        return tuple(value)
    # optional settings (current value None) are all numbers: rate, per_chat_rate
    return float(value)


# --------------------------------------------------------------------------------------------
# The base server
# --------------------------------------------------------------------------------------------
class FakeServer:
    """Base class of every fake: lifecycle, control API, shared state.

    Subclasses set `name` and `settings_class`, and implement `add_routes`, `reset_state`,
    `simulate_inbound` and optionally `control_routes` / `config_extra`.
    """

    name: ClassVar[str] = "fake"
    settings_class: ClassVar[type[CommonSettings]] = CommonSettings

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, seed: int | None = None, **settings: Any) -> None:
        self.host = host
        self.port = port
        self.seed = seed
        self.settings = self.settings_class()
        self._apply_settings(settings)
        self._initial_settings = copy.deepcopy(self.settings)
        self.rng = random.Random(seed)
        self.faults = FaultInjector(seed)
        self.stats = Stats()
        self.log = RequestLog(self.settings.record_cap)
        self.sent: deque[dict[str, Any]] = deque(maxlen=self.settings.sent_cap)
        self.limiter = SlidingWindowLimiter(self.settings.rate)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._stopping: asyncio.Event | None = None
        self._scheduler: Scheduler | None = None
        self._pusher: WebhookPusher | None = None
        self._batcher: Batcher | None = None

    # ---------------------------------------------------------------- subclass hooks
    def add_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def reset_state(self) -> None:
        """Forget provider state (windows, chats, opt-outs …) but keep credentials and seeds."""

    def simulate_inbound(self, **kwargs: Any) -> dict[str, Any]:
        raise NotImplementedError

    def control_routes(self) -> list[tuple[str, str, Callable[[dict[str, Any]], Any]]]:
        """Extra (method, path under /_fake, handler(params) -> JSON-able) routes."""
        return []

    def config_extra(self) -> dict[str, Any]:
        return {}

    def batch_flush(self, key: str, items: list[Any]) -> None:
        """Called by the batcher; only fakes that batch webhook events override it."""

    def on_settings_changed(self, changed: set[str]) -> None:
        """Hook for fakes that derive state from settings."""

    # ---------------------------------------------------------------- settings
    def _apply_settings(self, values: Mapping[str, Any]) -> set[str]:
        names = {f.name for f in fields(self.settings)}
        unknown = set(values) - names
        if unknown:
            raise ValueError(f"unknown settings: {sorted(unknown)}")
        for key, value in values.items():
            setattr(self.settings, key, _coerce(getattr(self.settings, key), value, key))
        return set(values)

    def _configure(self, values: Mapping[str, Any]) -> dict[str, Any]:
        changed = self._apply_settings(values)
        if "rate" in changed:
            self.limiter = SlidingWindowLimiter(self.settings.rate)
        if "record_cap" in changed:
            self.log = RequestLog(self.settings.record_cap)
        if "sent_cap" in changed:
            self.sent = deque(self.sent, maxlen=self.settings.sent_cap)
        if self._pusher is not None:
            self._pusher.max_attempts = max(1, self.settings.webhook_max_attempts)
            self._pusher.retry_delay = self.settings.webhook_retry_delay
        self.on_settings_changed(changed)
        return self._config_snapshot()

    def _config_snapshot(self) -> dict[str, Any]:
        return {"name": self.name, "url": self.url, "settings": asdict(self.settings), **self.config_extra()}

    # ---------------------------------------------------------------- faults
    def _set_faults(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """Apply a fault spec: {"clear", "seed", "rates": {kind: p} | [{kind, rate, …}],
        "fail_next": [{kind, count, …}], "recipients": {recipient: {kind, count?, …} | null}}."""
        if spec.get("clear"):
            self.faults.clear()
        if "seed" in spec:
            self.faults.reseed(None if spec["seed"] is None else int(spec["seed"]))
        rates = spec.get("rates") or {}
        if isinstance(rates, Mapping):
            for kind, rate in rates.items():
                self.faults.set_rate(float(rate), self.default_fault(kind))
        else:
            for item in rates:
                self.faults.set_rate(float(item["rate"]), self._fault_from(item))
        for item in spec.get("fail_next") or ():
            self.faults.fail_next(int(item.get("count", 1)), self._fault_from(item))
        for recipient, rule in (spec.get("recipients") or {}).items():
            key = self.recipient_key(str(recipient))
            if rule is None:
                self.faults.set_recipient(key, None)
            else:
                count = rule.get("count")
                self.faults.set_recipient(key, self._fault_from(rule), None if count is None else int(count))
        return self.faults.snapshot()

    def default_fault(self, kind: str) -> Fault:
        """The fault a bare kind name means for this provider (subclasses add codes)."""
        return Fault(kind)

    def _fault_from(self, item: Mapping[str, Any]) -> Fault:
        if set(item) <= {"kind", "count", "rate"}:
            return self.default_fault(str(item["kind"]))
        return Fault.from_dict(item)

    def recipient_key(self, recipient: str) -> str:
        """How recipients are normalised for per-recipient rules."""
        return recipient

    async def apply_transport_fault(self, request: web.Request, fault: Fault) -> bool:
        """Handle "timeout" and "reset"; True when the request must not be answered normally."""
        if fault.kind == "reset":
            transport = request.transport
            if transport is not None:
                sock = transport.get_extra_info("socket")
                if sock is not None:
                    try:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    except OSError:
                        pass
                transport.abort()
            return True
        if fault.kind == "timeout":
            stopping = self._stopping
            try:
                if stopping is not None:
                    await asyncio.wait_for(stopping.wait(), self.settings.timeout_hold)
                else:
                    await asyncio.sleep(self.settings.timeout_hold)
            except TimeoutError:
                pass
            return False
        return False

    # ---------------------------------------------------------------- webhooks
    @property
    def scheduler(self) -> Scheduler:
        assert self._scheduler is not None, "the fake is not running"
        return self._scheduler

    @property
    def pusher(self) -> WebhookPusher:
        assert self._pusher is not None, "the fake is not running"
        return self._pusher

    @property
    def batcher(self) -> Batcher:
        assert self._batcher is not None, "the fake is not running"
        return self._batcher

    def busy(self) -> int:
        """Webhook work not finished yet (scheduled, batched, queued or in flight)."""
        if self._scheduler is None or self._pusher is None or self._batcher is None:
            return 0
        return len(self._scheduler) + len(self._batcher) + self._pusher.pending

    def _push_now(self) -> dict[str, Any]:
        ran = self.scheduler.run_all_now()
        self.batcher.flush_all()
        return {"ran": ran, "pending": self.busy()}

    async def _wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.busy():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    def record_sent(self, record: dict[str, Any]) -> None:
        self.sent.append(record)

    # ---------------------------------------------------------------- reset
    def _reset(self) -> dict[str, Any]:
        """Back to the state right after construction: settings, faults, stats, provider state."""
        self._configure(asdict(self._initial_settings))
        self.faults.clear()
        self.faults.reseed(self.seed)
        self.rng = random.Random(self.seed)
        self.stats = Stats()
        if self._pusher is not None:
            self._pusher.stats = self.stats
            self._pusher.forget()
        self.log.clear()
        self.sent.clear()
        self.limiter.clear()
        if self._scheduler is not None:
            self._scheduler.cancel_all()
        if self._batcher is not None:
            self._batcher.drop_all()
        self.reset_state()
        return {"ok": True}

    # ---------------------------------------------------------------- control API
    def _build_app(self) -> web.Application:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        routes: list[tuple[str, str, Callable[[dict[str, Any]], Any]]] = [
            ("GET", "/health", lambda p: {"ok": True, "name": self.name}),
            ("GET", "/config", lambda p: self._config_snapshot()),
            ("POST", "/config", self._configure),
            ("GET", "/faults", lambda p: self.faults.snapshot()),
            ("POST", "/faults", self._set_faults),
            ("POST", "/reset", lambda p: self._reset()),
            ("GET", "/requests", self._control_requests),
            ("GET", "/sent", lambda p: {"messages": self._sent_list(p)}),
            ("GET", "/stats", lambda p: self.stats.summary(self.busy())),
            ("POST", "/push", lambda p: self._push_now()),
            ("POST", "/inbound", lambda p: self.simulate_inbound(**p)),
            *self.control_routes(),
        ]
        for method, path, fn in routes:
            app.router.add_route(method, "/_fake" + path, self._control_handler(fn))
        app.router.add_route("POST", "/_fake/wait_idle", self._control_wait_idle)
        self.add_routes(app)
        return app

    def _control_handler(self, fn: Callable[[dict[str, Any]], Any]) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            params: dict[str, Any] = dict(request.query)
            if request.can_read_body:
                raw = await request.read()
                if raw.strip():
                    try:
                        body = json.loads(raw)
                    except ValueError:
                        return json_response({"error": "body is not JSON"}, 400)
                    if not isinstance(body, dict):
                        return json_response({"error": "body must be a JSON object"}, 400)
                    params.update(body)
            try:
                result = fn(params)
            except (ValueError, TypeError, KeyError) as exc:
                return json_response({"error": f"{type(exc).__name__}: {exc}"}, 400)
            return json_response(result)

        return handler

    async def _control_wait_idle(self, request: web.Request) -> web.Response:
        timeout = float(request.query.get("timeout", "10"))
        return json_response({"idle": await self._wait_idle(timeout), "pending": self.busy()})

    def _control_requests(self, params: Mapping[str, Any]) -> dict[str, Any]:
        entries = self.log.select(
            kind=params.get("kind"),
            method=params.get("method"),
            path_contains=params.get("path"),
            recipient=params.get("recipient"),
            since=int(params.get("since", 0)),
            limit=int(params.get("limit", 100)),
        )
        return {"requests": [{k: v for k, v in e.items() if k != "monotonic"} for e in entries], "seq": self.log.seq}

    def _sent_list(self, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        limit = int(params.get("limit", 0))
        items = list(self.sent)
        return items[-limit:] if limit else items

    # ---------------------------------------------------------------- lifecycle
    def _bind(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(1024)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        return sock

    async def _startup(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._stopping = asyncio.Event()
        self._scheduler = Scheduler(loop)
        self._batcher = Batcher(loop, self.batch_flush, size=1)
        self._pusher = WebhookPusher(
            self.stats,
            self._scheduler,
            concurrency=self.settings.webhook_concurrency,
            max_attempts=self.settings.webhook_max_attempts,
            retry_delay=self.settings.webhook_retry_delay,
            timeout=self.settings.webhook_timeout,
        )
        await self._pusher.start()
        self.on_settings_changed(set())
        self._runner = web.AppRunner(self._build_app(), access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.SockSite(self._runner, self._bind(), backlog=1024).start()
        await self.extra_startup()

    async def extra_startup(self) -> None:
        """Additional listeners (the SMTP fake opens its SMTP port here)."""

    async def extra_shutdown(self) -> None:
        """Counterpart of extra_startup."""

    async def _shutdown(self) -> None:
        if self._stopping is not None:
            self._stopping.set()
        await self.extra_shutdown()
        if self._scheduler is not None:
            self._scheduler.cancel_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._pusher is not None:
            await self._pusher.close()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self: T) -> T:
        """Run the server in a background thread with its own event loop (for tests)."""
        server: FakeServer = self  # type: ignore[assignment]
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(server._startup())
            except BaseException as exc:
                errors.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(server._shutdown())
                loop.close()

        server._thread = threading.Thread(target=run, name=f"{server.name}-fake", daemon=True)
        server._thread.start()
        ready.wait(30)
        if errors:
            raise errors[0]
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        self._loop = None
        self._thread = None

    def __enter__(self: T) -> T:
        server: FakeServer = self  # type: ignore[assignment]
        server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def serve(self) -> None:
        """Run in the foreground until SIGINT/SIGTERM (the command-line mode)."""
        await self._startup()
        print(self.banner(), flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await self._shutdown()

    def banner(self) -> str:
        return f"{self.name} fake listening on {self.url} (control API: {self.url}/_fake/)"

    # ---------------------------------------------------------------- thread hopping
    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = self._loop
        if loop is None or not loop.is_running() or self._in_loop_thread():
            return fn(*args, **kwargs)

        async def run() -> T:
            return fn(*args, **kwargs)

        return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout=60)

    def _in_loop_thread(self) -> bool:
        return self._thread is None or threading.current_thread() is self._thread

    # ---------------------------------------------------------------- in-process API
    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change settings at runtime (see the settings dataclass of each fake)."""
        return self._call(self._configure, settings)

    def set_faults(self, **spec: Any) -> dict[str, Any]:
        """Same spec as POST /_fake/faults: rates, fail_next, recipients, seed, clear."""
        return self._call(self._set_faults, spec)

    def fail_next(self, count: int, kind: str, **params: Any) -> None:
        """Fail the next `count` sends with one fault (kind + optional code/http_status/retry_after)."""
        self.set_faults(fail_next=[{"kind": kind, "count": count, **params}])

    def fail_recipient(self, recipient: str, kind: str | None, *, count: int | None = None, **params: Any) -> None:
        """Fail sends to one recipient (every time, or `count` times); kind None removes the rule."""
        rule = None if kind is None else {"kind": kind, "count": count, **params}
        self.set_faults(recipients={recipient: rule})

    def set_fault_rate(self, kind: str, rate: float, **params: Any) -> None:
        self.set_faults(rates=[{"kind": kind, "rate": rate, **params}])

    def clear_faults(self) -> None:
        self.set_faults(clear=True)

    def reset(self) -> None:
        self._call(self._reset)

    def requests(self, **filters: Any) -> list[dict[str, Any]]:
        """Recorded API requests; filters: kind, method, path_contains, recipient, since, limit."""
        return self._call(lambda: list(self.log.select(**filters)))

    def sent_messages(self) -> list[dict[str, Any]]:
        return self._call(lambda: list(self.sent))

    def stats_summary(self) -> dict[str, Any]:
        return self._call(lambda: self.stats.summary(self.busy()))

    def push_now(self) -> dict[str, Any]:
        return self._call(self._push_now)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until every scheduled webhook was delivered (or given up); False on timeout."""
        loop = self._loop
        if loop is None:
            return True
        if self._in_loop_thread():
            raise RuntimeError("wait_idle from the fake's own loop: use `await fake._wait_idle()`")
        return asyncio.run_coroutine_threadsafe(self._wait_idle(timeout), loop).result(timeout + 5)

    def inbound(self, **kwargs: Any) -> dict[str, Any]:
        """Simulate something a person does (thread-safe wrapper of simulate_inbound)."""
        return self._call(lambda: self.simulate_inbound(**kwargs))

    def submit_webhook(self, delivery: Delivery, delay: float = 0.0) -> None:
        """Queue a signed POST (used by the fakes' webhook emitters)."""
        if delay > 0:
            self.scheduler.later(delay, self.pusher.submit, delivery)
        else:
            self.pusher.submit(delivery)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------
def common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    parser.add_argument("--webhook-url", default="", help="where webhooks are pushed")
    parser.add_argument("--rate", type=float, default=None, help="accepted messages per second (sliding window)")
    parser.add_argument("--speed", type=float, default=1.0, help="divides status delays; 0 = instant statuses")
    parser.add_argument("--seed", type=int, default=None, help="seed of the fault/duplicate RNG")
    parser.add_argument("--duplicate-rate", type=float, default=0.0)
    parser.add_argument("--reorder-rate", type=float, default=0.0)
    parser.add_argument("--error-rate", type=float, default=0.0, help="fraction of sends answered with a 5xx")
    parser.add_argument("--timeout-rate", type=float, default=0.0, help="fraction of sends held past the timeout")
    parser.add_argument("--reset-rate", type=float, default=0.0, help="fraction of sends whose connection is reset")
    parser.add_argument("--rate-limit-rate", type=float, default=0.0, help="fraction of sends answered 429-style")
    parser.add_argument("--timeout-hold", type=float, default=30.0)
    parser.add_argument("--webhook-concurrency", type=int, default=64)
    parser.add_argument("--record-cap", type=int, default=10_000)


def common_settings(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "webhook_url": args.webhook_url,
        "rate": args.rate,
        "speed": args.speed,
        "duplicate_rate": args.duplicate_rate,
        "reorder_rate": args.reorder_rate,
        "timeout_hold": args.timeout_hold,
        "webhook_concurrency": args.webhook_concurrency,
        "record_cap": args.record_cap,
    }


def apply_cli_faults(fake: FakeServer, args: argparse.Namespace) -> None:
    rates = {
        "5xx": args.error_rate,
        "timeout": args.timeout_rate,
        "reset": args.reset_rate,
        "rate_limit": args.rate_limit_rate,
    }
    fake._set_faults({"rates": {k: v for k, v in rates.items() if v}})


def run_cli(fake: FakeServer, args: argparse.Namespace) -> None:
    apply_cli_faults(fake, args)
    try:
        asyncio.run(fake.serve())
    except KeyboardInterrupt:
        pass


# --------------------------------------------------------------------------------------------
# A webhook receiver for tests and benchmarks
# --------------------------------------------------------------------------------------------
@dataclass
class ReceivedRequest:
    method: str
    url: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased keys
    body: bytes
    at: float


class RecordingServer:
    """Accepts any request on any path, records it, and answers with a configurable status.

    `fail_next(n, status)` answers the next n requests with `status` (to exercise retries).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, status: int = 200, body: bytes = b"ok") -> None:
        self.host = host
        self.port = port
        self.status = status
        self.body = body
        self._lock = threading.Lock()
        self._received: list[ReceivedRequest] = []
        self._fail: deque[int] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def fail_next(self, count: int, status: int = 500) -> None:
        with self._lock:
            self._fail.extend([status] * count)

    def received(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._received)

    def clear(self) -> None:
        with self._lock:
            self._received.clear()
            self._fail.clear()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedRequest]:
        """Wait until at least `count` requests arrived (returns what arrived, maybe fewer)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            items = self.received()
            if len(items) >= count:
                return items
            time.sleep(0.01)
        return self.received()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        item = ReceivedRequest(
            method=request.method,
            url=str(request.url),
            path=request.path,
            query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            at=time.monotonic(),
        )
        with self._lock:
            self._received.append(item)
            status = self._fail.popleft() if self._fail else self.status
        if request.method == "GET" and "hub.challenge" in request.query:
            return web.Response(text=request.query["hub.challenge"], status=status)
        return web.Response(body=self.body, status=status)

    def start(self) -> RecordingServer:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._handle)
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
            loop.run_until_complete(runner.setup())
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(1024)
            sock.setblocking(False)
            self.port = sock.getsockname()[1]
            loop.run_until_complete(web.SockSite(runner, sock, backlog=1024).start())
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(runner.cleanup())
                loop.close()

        self._thread = threading.Thread(target=run, name="webhook-sink", daemon=True)
        self._thread.start()
        ready.wait(30)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)
        self._loop = None
        self._thread = None

    def __enter__(self) -> RecordingServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
