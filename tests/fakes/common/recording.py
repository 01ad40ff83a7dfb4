"""`RecordingServer`: a tiny webhook receiver for tests and benchmarks (any path, any method)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass

from aiohttp import web


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
