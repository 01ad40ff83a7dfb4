"""`FakeServer`, the base class of every fake: the aiohttp server and its lifecycle (a background
thread for tests via `start()`, or `serve()` in the foreground), the JSON control API under
`/_fake/` and the thread-safe in-process API."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from aiohttp import web

from tests.fakes.common.state import FakeState
from tests.fakes.common.webhooks import Batcher, Delivery, Scheduler, WebhookPusher
from tests.fakes.common.wire import json_response

T = TypeVar("T")


class FakeServer(FakeState):
    """Base class of every fake: lifecycle, control API, shared state.

    Subclasses set `name` and `settings_class`, and implement `add_routes`, `reset_state`,
    `simulate_inbound` and optionally `control_routes` / `config_extra`.
    """

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
