"""Access lines of the web processes (config.asgi), one per request: client, method, path
without the query string (Meta's handshake carries the WhatsApp verify token there, other
secrets may travel the same way), status, bytes and milliseconds. On stdout when WEB_ACCESS_LOG
is 1 (config/gunicorn_conf.py turns it on; the benchmarks leave it off)."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]

logger = logging.getLogger("web.access")


class AccessLog:
    def __init__(self, app: ASGIApp, *, enabled: bool | None = None) -> None:
        self.app = app
        self.enabled = os.environ.get("WEB_ACCESS_LOG", "0") == "1" if enabled is None else enabled
        if self.enabled and not logger.handlers:
            handler = logging.StreamHandler(sys.stdout)
            handler.setFormatter(logging.Formatter("%(message)s"))
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)
            logger.propagate = False

    async def __call__(
        self, scope: Scope, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
    ) -> None:
        if not self.enabled or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status, size = 0, 0

        async def logged_send(message: Message) -> None:
            nonlocal status, size
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                size += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, logged_send)
        finally:
            client = (scope.get("client") or ("-",))[0]
            logger.info(
                '%s "%s %s HTTP/%s" %s %s %.0fms',
                client,
                scope["method"],
                scope["path"],
                scope.get("http_version", "1.1"),
                status or "-",
                size,
                (time.perf_counter() - started) * 1000,
            )
