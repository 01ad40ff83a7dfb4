"""The fast ingest path: provider webhook POSTs answered by a small async handler in front of
Django (config.asgi), so a status event costs one signature check and a share of one commit
instead of a trip through Django's whole stack and three database round trips.

What a request gets is decided by the same code as the Django views (messengers.webhooks.
webhook_accept: route, verify the signature on the raw body, parse), so every guarantee holds
here too: 403 and nothing stored on a bad signature, 400 on a malformed body, 404 for an unknown
route. Only storing differs:

- **Group commit.** Requests wait in one queue; each of a few writer tasks takes whatever is
  waiting (one request or hundreds), writes it with one multi-row INSERT per tenant schema
  (`ON CONFLICT DO NOTHING`: replays are no-ops), each committed by itself, and answers every
  request of the batch only after its commits returned. Nobody waits for a timer: under light load a
  batch is one request, under heavy load batches grow by themselves while the previous commit
  runs.
- **503 while the database is unavailable** (no connection within INGEST_DB_TIMEOUT seconds,
  or the connection broke): nothing was committed, the provider retries.
- **No waiting for the database in the event loop.** Routes and adapters (decrypted secrets)
  come from the selectors' caches (5 s, so a rotated secret is refused within seconds); on a
  miss the request is decided again in a thread, which loads them.
- After a commit that stored something new, the tenant's apply task is queued (at most once a
  second per tenant and process, in a thread; the dispatcher's sweep covers anything missed).

docs/operations.md "Webhook ingestion" has the design, the alternatives and the figures.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import parse_qsl

import psycopg
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http.request import split_domain_port, validate_host
from django.utils.encoding import escape_uri_path, iri_to_uri
from psycopg import sql
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from core import metrics
from core.memo import NotCachedError, cached_only
from messengers.adapters.base import Provider
from messengers.services.webhook_events import webhook_event_row, webhook_schedule_apply_in
from messengers.webhooks import TEXT, Decision, Incoming, twilio_urls, webhook_accept

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# The POSTs this path answers; everything else (Meta's GET handshake, inbound e-mail, other
# methods, unknown paths) goes on to Django, which answers as before.
WEBHOOK_POST = re.compile(r"/webhooks/(whatsapp|telegram|twilio)/(?:([^/]+)/)?")
PROVIDERS = {"whatsapp": Provider.WHATSAPP, "telegram": Provider.TELEGRAM, "twilio": Provider.SMS}
VIEW_NAMES = {"whatsapp": "webhook_whatsapp", "telegram": "webhook_telegram", "twilio": "webhook_twilio"}

Row = tuple[int, str, str, str, datetime]  # connection id, dedupe key, kind, payload JSON, received


class NotStoredError(Exception):
    """Nothing was committed: the database could not be reached (or refused the rows)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def conninfo_from_settings() -> str:
    """libpq connection string of Django's default database (the embedded one included)."""
    db = settings.DATABASES["default"]
    params: dict[str, Any] = {
        "dbname": db["NAME"],
        "user": db.get("USER") or None,
        "password": db.get("PASSWORD") or None,
        "host": db.get("HOST") or None,
        "port": db.get("PORT") or None,
        "application_name": "ingest",
    }
    params.update(
        (key, value)
        for key, value in cast(dict[str, Any], db.get("OPTIONS") or {}).items()
        if isinstance(value, str | int) and not isinstance(value, bool)
    )
    return psycopg.conninfo.make_conninfo(**{k: v for k, v in params.items() if v is not None})


@dataclass
class _Job:
    rows: dict[str, list[Row]]  # by schema
    done: asyncio.Future[None]
    size: int = field(init=False)

    def __post_init__(self) -> None:
        self.size = sum(len(rows) for rows in self.rows.values())


class GroupCommit:
    """Stores rows for many requests at once; see the module docstring."""

    def __init__(
        self,
        conninfo: str,
        *,
        writers: int = 3,
        max_rows: int = 2000,
        timeout: float = 3.0,
        on_created: Callable[[str], None] | None = None,
    ) -> None:
        self.conninfo = conninfo
        self.writers = writers
        self.max_rows = max_rows
        self.timeout = timeout
        self.on_created = on_created
        self._queue: asyncio.Queue[_Job] | None = None
        self._pool: AsyncConnectionPool | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._statements: dict[str, sql.Composed] = {}
        self.batches = 0  # for the figures: how many commits, how many requests they carried
        self.requests = 0

    async def _start(self) -> asyncio.Queue[_Job]:
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._pool = AsyncConnectionPool(
                self.conninfo,
                min_size=1,
                max_size=self.writers,
                open=False,
                timeout=self.timeout,
                # no check on checkout (a round trip per batch): a connection a restart broke
                # fails its batch (503, the provider retries) and the pool replaces it
                kwargs={"connect_timeout": max(1, int(self.timeout)), "autocommit": True},
            )
            await self._pool.open(wait=False)
            self._tasks = [asyncio.create_task(self._writer()) for _ in range(self.writers)]
        return self._queue

    async def store(self, rows: dict[str, list[Row]]) -> None:
        """Return once `rows` are committed; raise NotStoredError when they were not."""
        queue = await self._start()
        job = _Job(rows, asyncio.get_running_loop().create_future())
        queue.put_nowait(job)
        await job.done

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._pool is not None:
            await self._pool.close()
        self._pool = None
        self._queue = None

    async def _writer(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            jobs = [await queue.get()]
            size = jobs[0].size
            while size < self.max_rows and not queue.empty():
                job = queue.get_nowait()
                jobs.append(job)
                size += job.size
            await self._commit(jobs)

    async def _commit(self, jobs: list[_Job]) -> None:
        merged: dict[str, list[Row]] = defaultdict(list)
        for job in jobs:
            for schema, rows in job.rows.items():
                merged[schema] += rows
        try:
            created = await self._write_retrying(merged)
        except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout) as exc:
            logger.warning("webhooks not stored: database unavailable (%s)", exc.__class__.__name__)
            self._fail(jobs, NotStoredError(503, "database unavailable, please retry"))
            return
        except psycopg.Error as exc:
            if len(jobs) > 1:  # one request's rows were refused: store the others without it
                for job in jobs:
                    await self._commit([job])
                return
            logger.warning("webhook not stored: %s", exc)
            status = 400 if isinstance(exc, psycopg.DataError) else 503
            self._fail(jobs, NotStoredError(status, "not stored, please retry" if status == 503 else "malformed body"))
            return
        self.batches += 1
        self.requests += len(jobs)
        for job in jobs:
            if not job.done.done():
                job.done.set_result(None)
        if self.on_created is not None:
            for schema in created:
                self.on_created(schema)

    @staticmethod
    def _fail(jobs: list[_Job], error: NotStoredError) -> None:
        for job in jobs:
            if not job.done.done():
                job.done.set_exception(error)

    def _statement(self, schema: str) -> sql.Composed:
        """One statement text per schema, whatever the number of rows (they travel as one JSON
        array), so psycopg prepares it once per connection and schema."""
        statement = self._statements.get(schema)
        if statement is None:
            statement = sql.SQL(
                "INSERT INTO {}.messengers_webhookevent "
                "(connection_id, dedupe_key, kind, state, payload, raw, received_at, attempts, error) "
                "SELECT c, k, t, 'pending', p, NULL, r, 0, '' "
                "FROM jsonb_to_recordset(%s::jsonb) AS u(c bigint, k text, t text, p jsonb, r timestamptz) "
                "ON CONFLICT (connection_id, dedupe_key) DO NOTHING RETURNING id"
            ).format(sql.Identifier(schema))
            self._statements[schema] = statement
        return statement

    async def _write_retrying(self, merged: dict[str, list[Row]]) -> list[str]:
        """Connections the database dropped while they sat in the pool (a restart, killed
        backends) fail on their next use, one after the other, and the pool replaces each: try
        on the next until one works, at most once per pooled connection and one new one, before
        answering 503. The INSERT is idempotent, so a commit that happened before a break is not
        doubled. No connection at all within the timeout (PoolTimeout) ends it at once."""
        for _ in range(self.writers):
            try:
                return await self._write(merged)
            except (psycopg.OperationalError, psycopg.InterfaceError):
                continue
        return await self._write(merged)

    async def _write(self, merged: dict[str, list[Row]]) -> list[str]:
        assert self._pool is not None
        created: list[str] = []
        async with self._pool.connection() as conn:
            # One INSERT per tenant schema, each committed by itself (autocommit: one round trip),
            # never one transaction over several schemas: every statement stays inside one
            # tenant (docs/operations.md "Beyond one PostgreSQL"). Storing is idempotent, so when
            # a later schema fails the batch is answered 503 and the retry finds the earlier rows.
            for schema in sorted(merged):
                cursor = await conn.execute(self._statement(schema), [_recordset(merged[schema])])
                if cursor.rowcount:
                    created.append(schema)
        return created


def _recordset(rows: list[Row]) -> str:
    """The rows as one JSON array for jsonb_to_recordset (payloads are JSON text already)."""
    return (
        "["
        + ",".join(
            f'{{"c":{connection_id},"k":{json.dumps(key)},"t":"{kind}","p":{payload},"r":"{received.isoformat()}"}}'
            for connection_id, key, kind, payload, received in rows
        )
        + "]"
    )


def _headers(scope: Scope) -> dict[str, str]:
    """Lower-cased names; repeated headers joined with commas, as Django's WSGI request has them."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers") or ():
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    return headers


class WebhookIngest:
    """ASGI app: the webhook POSTs here, everything else to `fallback` (Django)."""

    def __init__(self, fallback: ASGIApp, *, writer: GroupCommit | None = None) -> None:
        self.fallback = fallback
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ingest")
        self.writer = writer or GroupCommit(
            conninfo_from_settings(),
            writers=settings.INGEST_DB_CONNECTIONS,
            timeout=settings.INGEST_DB_TIMEOUT,
            on_created=self._created,
        )
        self.max_body = settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 2_621_440
        self._scheduled: dict[str, float] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] == "http" and scope["method"] == "POST":
            path, root = scope["path"], scope.get("root_path", "")
            match = WEBHOOK_POST.fullmatch(path[len(root) :] if root and path.startswith(root) else path)
            if match and (match[1] == "whatsapp" or match[2]):
                started = time.perf_counter()
                status = await self._webhook(scope, receive, send, PROVIDERS[match[1]], match[2])
                # the same series the Django views fed (core.middleware.RequestMetricsMiddleware)
                view = VIEW_NAMES[match[1]] if match[1] != "whatsapp" or not match[2] else "webhook_whatsapp_route"
                metrics.observe_request(view=view, status=status, seconds=time.perf_counter() - started)
                return
        await self.fallback(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.writer.close()
                self._executor.shutdown(wait=False)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _webhook(self, scope: Scope, receive: Receive, send: Send, provider: Provider, key: str | None) -> int:
        received_at = datetime.now(UTC)
        headers = _headers(scope)
        body = await self._body(receive, headers)
        if body is None:
            return await _answer(send, 413, f"body larger than {self.max_body} bytes\n")
        incoming = self._incoming(scope, headers, body, provider)
        if incoming is None:
            return await _answer(send, 400, "invalid Host header\n")
        try:
            try:
                with cached_only():
                    decision = webhook_accept(provider, key, incoming)
            except NotCachedError:
                loop = asyncio.get_running_loop()
                decision = await loop.run_in_executor(self._executor, webhook_accept, provider, key, incoming)
        except (OperationalError, InterfaceError):
            logger.warning("webhook not decided: database unavailable")
            return await _answer(send, 503, "database unavailable, please retry\n")
        rows = self._rows(decision, received_at)
        if rows:
            try:
                await self.writer.store(rows)
            except NotStoredError as exc:
                return await _answer(send, exc.status, exc.reason + "\n")
        return await _answer(send, decision.status, decision.body, decision.content_type)

    async def _body(self, receive: Receive, headers: dict[str, str]) -> bytes | None:
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body:
            return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    @staticmethod
    def _incoming(scope: Scope, headers: dict[str, str], body: bytes, provider: Provider) -> Incoming | None:
        """The request as Django would see it: the URL as request.build_absolute_uri() builds it
        (Twilio signs the URL), None for a Host that ALLOWED_HOSTS refuses (Django says 400)."""
        host = headers.get("host", "")
        domain, _ = split_domain_port(host)
        if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
            return None
        scheme = scope.get("scheme", "http")
        proxy = settings.SECURE_PROXY_SSL_HEADER
        if proxy:
            name, secure = proxy
            forwarded = headers.get(name.removeprefix("HTTP_").replace("_", "-").lower(), "")
            scheme = "https" if forwarded.split(",", 1)[0].strip() == secure else "http"
        query = scope.get("query_string", b"").decode("latin-1")
        full_path = escape_uri_path(scope["path"]) + (f"?{iri_to_uri(query)}" if query else "")
        direct = f"{scheme}://{host}{full_path}"
        urls = twilio_urls(direct, full_path) if provider == Provider.SMS else (direct,)
        return Incoming(
            urls=urls,
            headers=headers,
            body=body,
            query=dict(parse_qsl(query, keep_blank_values=True)),
        )

    @staticmethod
    def _rows(decision: Decision, received_at: datetime) -> dict[str, list[Row]]:
        rows: dict[str, list[Row]] = defaultdict(list)
        for batch in decision.batches:
            for event in batch.events:
                key, kind, payload = webhook_event_row(event)
                rows[batch.route.schema_name].append((batch.connection.pk, key, kind, json.dumps(payload), received_at))
        return rows

    def _created(self, schema: str) -> None:
        """After a commit: queue the tenant's apply task (throttled; in a thread, off the loop)."""
        now = time.monotonic()
        if now - self._scheduled.get(schema, 0.0) < 1.0:
            return
        self._scheduled[schema] = now
        future = self._executor.submit(webhook_schedule_apply_in, schema)
        future.add_done_callback(_log_failure)


def _log_failure(future: Any) -> None:
    if future.exception() is not None:
        logger.warning("could not queue the apply task: %s", future.exception())


async def _answer(send: Send, status: int, body: str, content_type: str = TEXT) -> int:
    data = body.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(data)).encode()),
                (b"cache-control", b"no-store"),
                (b"x-content-type-options", b"nosniff"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})
    return status
