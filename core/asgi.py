"""Two small ASGI layers of the web processes (config.asgi).

AccessLog: one line per request — client, method, path without the query string (Meta's
handshake carries the WhatsApp verify token there, other secrets may travel the same way),
status, bytes, milliseconds — to gunicorn's access log (`accesslog` in config/gunicorn_conf.py,
`--access-logfile`), through gunicorn's own `gunicorn.access` logger; uvicorn's lines (with query
strings) are switched off in config.workers.

ScriptName: a deployment under a URL prefix, as gunicorn's own workers did it: SCRIPT_NAME in
the server's environment (never from a request header); requests under the prefix reach Django
with it as SCRIPT_NAME and the rest as PATH_INFO (a2wsgi strips `root_path`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

logger = logging.getLogger("gunicorn.access")


class AccessLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # Django's logging set-up (after the worker configured this logger) disables loggers it
        # does not name
        logger.disabled = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # gunicorn gives the logger a handler when an access log is configured
        if not logger.handlers or scope["type"] != "http":
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


class ScriptName:
    def __init__(self, app: ASGIApp, prefix: str | None = None) -> None:
        self.app = app
        self.prefix = (os.environ.get("SCRIPT_NAME", "") if prefix is None else prefix).rstrip("/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.prefix and scope["type"] == "http":
            path = scope["path"]
            if path == self.prefix or path.startswith(self.prefix + "/"):
                scope = {**scope, "root_path": self.prefix}
        await self.app(scope, receive, send)
