"""The part of a fake that is not HTTP: `CommonSettings`, and `FakeState` (settings, faults,
webhook machinery, sent messages, reset), which `FakeServer` builds on."""

from __future__ import annotations

import asyncio
import copy
import random
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

from aiohttp import web

from tests.fakes.common.faults import Fault, FaultInjector
from tests.fakes.common.metering import RequestLog, SlidingWindowLimiter, Stats
from tests.fakes.common.webhooks import Batcher, Scheduler, WebhookPusher


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


class FakeState:
    """Shared state of every fake and the hooks a provider implements (see `FakeServer`)."""

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

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"
