"""The delivery pipeline: fan-out, batch claims, paced concurrent sending, results, recovery.

Documented in ../shared/docs/architecture.md ("The delivery pipeline"). The database is the
source of truth; queue messages only say "there may be work". Invariants:

* Fan-out writes one Delivery per (broadcast, subscriber) with INSERT … SELECT … ON CONFLICT
  DO NOTHING over subscriber-id ranges: never the whole list in memory, safe to run twice.
* A sender claims up to a batch of ready rows (`queued → claimed`, FOR UPDATE SKIP LOCKED, under
  a lease). Right before each window of requests it moves the rows it is about to send to
  `sending` — re-checking the person's opt-out and the contact's state in that same statement —
  so a STOP stops the next message, and after a crash exactly the rows in `sending` may have
  reached the provider: the sweeper re-queues them flagged `possible_duplicate` (and logs
  each), and silently re-queues rows that were only `claimed`.
* Every outcome is written per window in one UPDATE: provider id and `sent`, a permanent
  failure with its reason, or `queued` again with a back-off that honours `retry_after`.
* Pacing uses messengers.ratelimit (shared by all workers); a 429 pushes the shared slot clock
  back for everyone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.db import InterfaceError, OperationalError, close_old_connections, connections, transaction
from django.db import connection as django_db_connection
from django.utils import timezone

from broadcasts.links import link_token
from broadcasts.models import Broadcast, BroadcastVariant, Delivery, TrackedLink
from core.backoff import backoff_seconds
from core.tenancy import connection as db
from messengers import ratelimit
from messengers.adapters import get_adapter
from messengers.adapters.base import (
    Adapter,
    Button,
    ErrorKind,
    Media,
    OutgoingMessage,
    Provider,
    ProviderError,
    SendResult,
    TemplateRef,
)
from messengers.models import Connection
from messengers.selectors import connection_config

logger = logging.getLogger(__name__)

FANOUT_CHUNK = 20_000  # subscriber ids per INSERT … SELECT: ~0.3 s each, bounded memory in PostgreSQL
BATCH_MAX = 1000  # rows per claim
BATCH_SECONDS = 30.0  # a claim should take about this long at the connection's rate
WINDOW_MAX = 100  # requests per window
WINDOW_SECONDS = 0.25  # at low rates keep windows short, so an opt-out is re-checked often
WINDOWS_IN_FLIGHT = 3  # windows sending at once (up to 300 concurrent requests)
LEASE_SECONDS = 45  # a dead worker's rows are re-queued after this (reliability goal R1: < 60 s)
MAX_ATTEMPTS = 6
PAUSE_ERROR_RATE = 0.5  # a batch with more errors than this pauses the broadcast
PAUSE_MIN_ATTEMPTS = 50
SENDER_RATE = 800.0  # messages/s one sender comfortably drives; faster connections get several
BUSY_SECONDS = 3.0
DB_OUTAGE_SECONDS = 60.0
WHATSAPP_WINDOW = timedelta(hours=24)

T = TypeVar("T")


# --------------------------------------------------------------------------------------------
# Fan-out
# --------------------------------------------------------------------------------------------
# One row per subscriber: their best contact on a connection that carries one of the targeted
# channels they subscribe to (most recently active first). `use_template`: WhatsApp people whose
# 24-hour window is closed can only get an approved template.
_RECIPIENTS_SQL = """
SELECT DISTINCT ON (s.id)
    %(broadcast)s, s.id, c.id, c.connection_id, s.language,
    (conn.provider = 'whatsapp' AND (c.last_inbound_at IS NULL OR c.last_inbound_at < %(window_start)s)),
    'queued', 0, %(now)s, '', '', '', '', '', false
FROM subscribers_subscriber s
JOIN subscribers_subscription sub
  ON sub.subscriber_id = s.id AND sub.status = 'active' AND sub.channel_id = ANY(%(channels)s)
JOIN messengers_contact c ON c.subscriber_id = s.id AND c.status = 'active'
JOIN channels_channel_connections cc ON cc.channel_id = sub.channel_id AND cc.connection_id = c.connection_id
JOIN messengers_connection conn ON conn.id = c.connection_id AND conn.status <> 'disabled'
WHERE s.status = 'active' AND s.id > %(lo)s AND s.id <= %(hi)s
  {filters}
ORDER BY s.id, c.last_inbound_at DESC NULLS LAST, c.id
"""

_FANOUT_SQL = (
    """
INSERT INTO broadcasts_delivery
    (broadcast_id, subscriber_id, contact_id, connection_id, language, use_template, status, attempts,
     next_attempt_at, provider_message_id, claimed_by, error_kind, error_code, error_detail, possible_duplicate)
"""
    + _RECIPIENTS_SQL
    + " ON CONFLICT (broadcast_id, subscriber_id) DO NOTHING"
)


def _target_filters(broadcast: Broadcast) -> tuple[str, dict[str, Any]]:
    clauses: list[str] = []
    params: dict[str, Any] = {}
    district_ids = list(broadcast.districts.values_list("pk", flat=True))
    if district_ids:
        clauses.append("AND s.district_id = ANY(%(districts)s)")
        params["districts"] = district_ids
    if broadcast.languages:
        clauses.append("AND s.language = ANY(%(languages)s)")
        params["languages"] = list(broadcast.languages)
    if broadcast.tags:
        clauses.append("AND s.tags && %(tags)s::varchar[]")
        params["tags"] = list(broadcast.tags)
    return " ".join(clauses), params


def recipients_sql(broadcast: Broadcast) -> tuple[str, dict[str, Any]]:
    """The recipients SELECT with its parameters, over every subscriber (used by the send plan):
    columns broadcast, subscriber, contact, connection, language, use_template, …"""
    filters, params = _target_filters(broadcast)
    now = timezone.now()
    params.update(
        {
            "broadcast": broadcast.pk or 0,
            "channels": list(broadcast.channels.values_list("pk", flat=True)),
            "lo": 0,
            "hi": 2**62,
            "now": now,
            "window_start": now - WHATSAPP_WINDOW,
        }
    )
    return _RECIPIENTS_SQL.format(filters=filters), params


def fanout(broadcast: Broadcast, *, on_chunk: Callable[[int], None] | None = None) -> int:
    """Materialise the deliveries, resuming at `fanout_cursor`. Returns rows written now."""
    from subscribers.models import Subscriber

    channels = list(broadcast.channels.values_list("pk", flat=True))
    filters, extra = _target_filters(broadcast)
    sql = _FANOUT_SQL.format(filters=filters)
    top = Subscriber.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    cursor_id = broadcast.fanout_cursor
    written = 0
    now = timezone.now()
    while cursor_id < top:
        hi = min(top, cursor_id + FANOUT_CHUNK)
        params = {
            **extra,
            "broadcast": broadcast.pk,
            "channels": channels,
            "lo": cursor_id,
            "hi": hi,
            "now": now,
            "window_start": now - WHATSAPP_WINDOW,
        }
        with transaction.atomic(), db.cursor() as cursor:
            cursor.execute(sql, params)
            count = cursor.rowcount
            Broadcast.objects.filter(pk=broadcast.pk).update(fanout_cursor=hi)
        cursor_id = hi
        written += count
        if count and on_chunk:
            on_chunk(count)
    if written > 5000:
        # fresh statistics, so claims and result updates use the indexes right away
        with db.cursor() as cursor:
            cursor.execute("ANALYZE broadcasts_delivery")
    total = Delivery.objects.filter(broadcast=broadcast).count()
    Broadcast.objects.filter(pk=broadcast.pk).update(fanout_done=True, recipients_total=total, fanout_cursor=top)
    return written


# --------------------------------------------------------------------------------------------
# Content: what each recipient gets
# --------------------------------------------------------------------------------------------
@dataclass
class Composer:
    """Builds each recipient's OutgoingMessage from the broadcast, cheaply (100,000 times)."""

    broadcast: Broadcast
    schema: str
    base_url: str  # https://stuttgart.example.org — the tenant's primary domain
    per_recipient_links: bool
    variants: dict[str, BroadcastVariant] = field(default_factory=dict)
    links: list[TrackedLink] = field(default_factory=list)
    fallback_language: str = "de"
    media: Media | None = None
    channel_ids: list[int] = field(default_factory=list)
    email_urls: dict[int, tuple[str, str]] = field(default_factory=dict)  # subscriber → (unsubscribe, prefs)

    @classmethod
    def build(cls, broadcast: Broadcast, tenant: Any) -> Composer:
        from tenants.selectors import tenant_public_base_url

        variants = {v.language: v for v in broadcast.variants.all()}
        fallback = tenant.default_language if tenant.default_language in variants else next(iter(variants), "de")
        base_url = tenant_public_base_url()
        media = None
        if broadcast.media:
            media = Media(
                url=f"{base_url}{broadcast.media.url}", kind="video" if broadcast.media_kind == "video" else "image"
            )
        return cls(
            broadcast=broadcast,
            schema=tenant.schema_name,
            base_url=base_url,
            per_recipient_links=tenant.link_tracking == "per_recipient",
            variants=variants,
            links=list(broadcast.links.order_by("position")),
            fallback_language=fallback,
            media=media,
            channel_ids=list(broadcast.channels.values_list("pk", flat=True)),
        )

    def _track(self, text: str, delivery_id: int) -> str:
        for link in self.links:
            if link.url in text:
                token = link_token(self.schema, link.pk, delivery_id if self.per_recipient_links else 0)
                text = text.replace(link.url, f"{self.base_url}/l/{token}")
        return text

    def message(self, row: ClaimedRow, provider: Provider) -> OutgoingMessage:
        variant = self.variants.get(row.language) or self.variants.get(self.fallback_language)
        body = variant.body if variant else ""
        text = self._track(body, row.delivery_id)
        buttons = tuple(
            Button(title=str(b.get("title", ""))[:20], url=self._track(str(b.get("url", "")), row.delivery_id))
            for b in (self.broadcast.buttons or [])
            if b.get("url")
        )
        media = self.media
        template = None
        if row.use_template and provider == Provider.WHATSAPP and self.broadcast.wa_template_name:
            template = TemplateRef(
                name=self.broadcast.wa_template_name,
                language=self.broadcast.wa_template_language or row.language.split("-")[0],
                body_params=tuple(self._track(p, row.delivery_id) for p in self.broadcast.wa_template_params),
                header_media=media,
            )
        unsubscribe, preferences = self.email_urls.get(row.subscriber_id or 0, ("", ""))
        if provider == Provider.EMAIL and preferences:
            text = f"{text}\n\n--\n{preferences}"
        return OutgoingMessage(
            to=row.address,
            text=text,
            media=media if template is None else None,
            buttons=buttons,
            template=template,
            subject=(variant.subject if variant and variant.subject else self.broadcast.title)[:200],
            reference=f"d{row.delivery_id}",
            unsubscribe_url=unsubscribe,
        )


# --------------------------------------------------------------------------------------------
# Claims, windows, results
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClaimedRow:
    delivery_id: int
    subscriber_id: int | None
    contact_id: int | None
    connection_id: int
    language: str
    use_template: bool
    attempts: int
    address: str


@dataclass
class Outcome:
    delivery_id: int
    status: str  # sent | failed | queued (retry) | skipped
    provider_message_id: str = ""
    error_kind: str = ""
    error_code: str = ""
    error_detail: str = ""
    next_attempt_at: datetime | None = None
    retry_after: float | None = None
    unreachable_contact: int | None = None


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def batch_size_for(rate: float) -> int:
    return max(1, min(BATCH_MAX, int(rate * BATCH_SECONDS)))


_CLAIM_SQL = """
WITH picked AS (
    SELECT d.id FROM broadcasts_delivery d
    WHERE d.broadcast_id = %(broadcast)s AND d.status = 'queued' AND d.next_attempt_at <= %(now)s
      AND d.connection_id = %(connection)s
    ORDER BY d.next_attempt_at, d.id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE broadcasts_delivery d
   SET status = 'claimed', lease_expires_at = %(lease)s, claimed_by = %(worker)s
  FROM picked
 WHERE d.id = picked.id
RETURNING d.id, d.subscriber_id, d.contact_id, d.connection_id, d.language, d.use_template, d.attempts,
          (SELECT c.address FROM messengers_contact c WHERE c.id = d.contact_id)
"""


def ready_connections(broadcast_id: int) -> list[int]:
    """Connections with rows ready to send now (a sender works one connection per claim)."""
    return list(
        Delivery.objects.filter(
            broadcast_id=broadcast_id, status=Delivery.Status.QUEUED, next_attempt_at__lte=timezone.now()
        )
        .order_by()
        .values_list("connection_id", flat=True)
        .distinct()
    )


def claim(broadcast_id: int, connection_id: int, limit: int, worker: str) -> list[ClaimedRow]:
    now = timezone.now()
    with transaction.atomic(), db.cursor() as cursor:
        cursor.execute(
            _CLAIM_SQL,
            {
                "broadcast": broadcast_id,
                "now": now,
                "connection": connection_id,
                "limit": limit,
                "lease": now + timedelta(seconds=LEASE_SECONDS),
                "worker": worker,
            },
        )
        rows = cursor.fetchall()
    return [ClaimedRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7] or "") for r in rows]


# Eligibility at the moment of sending: the contact is still active (not STOPped, blocked or
# erased) and the person still subscribes to one of the broadcast's channels. Rows failing it
# become `skipped`. (Pause and cancel are watched separately, once a second.)
_MARK_SENDING_SQL = """
UPDATE broadcasts_delivery d
   SET status = 'sending', attempts = d.attempts + 1, lease_expires_at = %(lease)s
 WHERE d.id = ANY(%(ids)s::bigint[]) AND d.status = 'claimed' AND d.claimed_by = %(worker)s
   AND EXISTS (SELECT 1 FROM messengers_contact c WHERE c.id = d.contact_id AND c.status = 'active')
   AND EXISTS (SELECT 1 FROM subscribers_subscription sub
                WHERE sub.subscriber_id = d.subscriber_id AND sub.status = 'active'
                  AND sub.channel_id = ANY(%(channels)s::bigint[]))
RETURNING d.id
"""

_SKIP_SQL = """
UPDATE broadcasts_delivery d
   SET status = 'skipped', error_kind = 'opted_out', error_detail = %(detail)s, lease_expires_at = NULL,
       claimed_by = ''
 WHERE d.id = ANY(%(ids)s::bigint[]) AND d.status = 'claimed' AND d.claimed_by = %(worker)s
"""


def mark_sending(ids: Sequence[int], worker: str, channel_ids: Sequence[int]) -> set[int]:
    """Move a window to `sending` (the only rows that may be duplicated after a crash) and skip
    the people who opted out since fan-out."""
    lease = timezone.now() + timedelta(seconds=LEASE_SECONDS)
    with transaction.atomic(), db.cursor() as cursor:
        cursor.execute(
            _MARK_SENDING_SQL, {"ids": list(ids), "worker": worker, "lease": lease, "channels": list(channel_ids)}
        )
        ok = {row[0] for row in cursor.fetchall()}
        rest = [i for i in ids if i not in ok]
        if rest:
            cursor.execute(
                _SKIP_SQL, {"ids": rest, "worker": worker, "detail": "unsubscribed, blocked or erased before sending"}
            )
    return ok


def extend_lease(worker: str) -> int:
    """Keep a long batch's claimed rows ours (slow connections take longer than the lease)."""
    return Delivery.objects.filter(claimed_by=worker, status=Delivery.Status.CLAIMED).update(
        lease_expires_at=timezone.now() + timedelta(seconds=LEASE_SECONDS)
    )


def release(ids: Sequence[int], worker: str) -> int:
    """Give claimed-but-unsent rows back (pause, cancel, shutdown)."""
    if not ids:
        return 0
    return Delivery.objects.filter(pk__in=list(ids), status=Delivery.Status.CLAIMED, claimed_by=worker).update(
        status=Delivery.Status.QUEUED, lease_expires_at=None, claimed_by=""
    )


_RESULTS_SQL = """
UPDATE broadcasts_delivery d SET
    status = v.status,
    provider_message_id = CASE WHEN v.pid <> '' THEN v.pid ELSE d.provider_message_id END,
    sent_at = CASE WHEN v.status = 'sent' THEN %(now)s ELSE d.sent_at END,
    error_kind = v.kind, error_code = v.code, error_detail = v.detail,
    next_attempt_at = COALESCE(v.next_at, d.next_attempt_at),
    lease_expires_at = NULL, claimed_by = ''
FROM (SELECT unnest(%(ids)s::bigint[]) AS id, unnest(%(statuses)s::text[]) AS status,
             unnest(%(pids)s::text[]) AS pid, unnest(%(kinds)s::text[]) AS kind,
             unnest(%(codes)s::text[]) AS code, unnest(%(details)s::text[]) AS detail,
             unnest(%(next_ats)s::timestamptz[]) AS next_at) AS v
WHERE d.id = v.id AND d.id = ANY(%(ids)s::bigint[]) AND d.status = 'sending'
"""


def write_outcomes(outcomes: Sequence[Outcome]) -> None:
    if not outcomes:
        return
    with transaction.atomic(), db.cursor() as cursor:
        cursor.execute(
            _RESULTS_SQL,
            {
                "now": timezone.now(),
                "ids": [o.delivery_id for o in outcomes],
                "statuses": [o.status for o in outcomes],
                "pids": [o.provider_message_id for o in outcomes],
                "kinds": [o.error_kind for o in outcomes],
                "codes": [o.error_code[:40] for o in outcomes],
                "details": [o.error_detail[:300] for o in outcomes],
                "next_ats": [o.next_attempt_at for o in outcomes],
            },
        )
    unreachable = [o.unreachable_contact for o in outcomes if o.unreachable_contact]
    if unreachable:
        from messengers.services import contacts_mark_unreachable

        contacts_mark_unreachable(contact_ids=unreachable, reason="provider: unreachable")


def classify(row: ClaimedRow, error: ProviderError, now: datetime) -> Outcome:
    """Turn a provider error into the row's next state."""
    outcome = Outcome(
        delivery_id=row.delivery_id,
        status="failed",
        error_kind=error.kind.value,
        error_code=error.code or str(error.http_status or ""),
        error_detail=error.message[:300],
        retry_after=error.retry_after,
    )
    attempts = row.attempts + 1
    if error.retryable or error.affects_connection:
        if attempts >= MAX_ATTEMPTS and not error.affects_connection:
            outcome.error_detail = f"gave up after {attempts} attempts: {error.message}"[:300]
            return outcome
        outcome.status = "queued"
        delay = (
            60.0
            if error.affects_connection
            else backoff_seconds(attempts, first=2.0, cap=300.0, retry_after=error.retry_after, jitter=0.25)
        )
        outcome.next_attempt_at = now + timedelta(seconds=delay)
        return outcome
    if error.unreachable and row.contact_id:
        outcome.unreachable_contact = row.contact_id
    return outcome


# --------------------------------------------------------------------------------------------
# The sender: one claimed batch, sent in paced windows
# --------------------------------------------------------------------------------------------
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


class DbThread:
    """The database work of a sender runs on a few threads that stay in the tenant's schema, so
    the event loop (sending) never blocks on PostgreSQL, and the statements of windows in flight
    run side by side. (Inside the event loop Django's connection is a different, context-local
    object that knows nothing of the tenant: never touch the ORM there.)"""

    THREADS = WINDOWS_IN_FLIGHT

    def __init__(self, tenant: Any) -> None:
        self.tenant = tenant
        self.pool = ThreadPoolExecutor(
            max_workers=self.THREADS, thread_name_prefix="sender-db", initializer=self._enter
        )

    def _enter(self) -> None:
        close_old_connections()
        db.set_tenant(self.tenant)

    async def run(self, func: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, lambda: self._call(func, args))

    def _call(self, func: Callable[..., T], args: tuple[Any, ...]) -> T:
        """Run on a database thread; ride out a restarting PostgreSQL (R3) for up to a minute.
        Holding on to the outcomes of requests already sent, instead of failing and leaving
        them to the lease sweeper, keeps a restart from turning into duplicate messages."""
        deadline = time.monotonic() + DB_OUTAGE_SECONDS
        while True:
            try:
                return func(*args)
            except (OperationalError, InterfaceError):
                if time.monotonic() > deadline:
                    raise
                logger.warning("database unavailable during sending; retrying %s", getattr(func, "__name__", func))
                with contextlib.suppress(Exception):
                    django_db_connection.close()
                time.sleep(0.5)
                with contextlib.suppress(Exception):
                    db.set_tenant(self.tenant)

    def close(self) -> None:
        # one close per thread: the barrier keeps each task on its own thread
        barrier = threading.Barrier(self.THREADS, timeout=10)

        def close_here() -> None:
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait()
            connections.close_all()

        futures = [self.pool.submit(close_here) for _ in range(self.THREADS)]
        for future in futures:
            future.result()
        self.pool.shutdown(wait=True)


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

    def __init__(self, start: float, interval: float) -> None:
        self.next = start
        self.interval = interval
        self.lock = asyncio.Lock()

    async def wait(self) -> None:
        loop = asyncio.get_running_loop()
        async with self.lock:
            now = loop.time()
            if self.next > now:
                await asyncio.sleep(self.next - now)
                now = loop.time()
            # a little lateness is made up (one and a half slots), more moves the schedule back
            self.next = max(self.next, now - self.slack) + self.interval

    @property
    def slack(self) -> float:
        return 1.5 * self.interval

    def back_off(self, seconds: float) -> None:
        self.next = max(self.next, asyncio.get_running_loop().time() + seconds)


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
    window_size = max(1, min(WINDOW_MAX, int(ratelimit.effective_rate(rate) * WINDOW_SECONDS) or 1))
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
        limited = [o.retry_after or 1.0 for o in outcomes if o.error_kind == "rate_limited"]
        if limited:
            await dbt.run(ratelimit.penalize, connection.pk, max(limited))
        for o in outcomes:
            if o.status == "sent":
                report.sent += 1
            elif o.status == "failed":
                report.failed += 1
            else:
                report.retry += 1
        broken = [o for o in outcomes if o.error_kind in ("bad_credentials", "account_problem")]
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


@dataclass
class SenderReport:
    batches: int = 0
    sent: int = 0
    failed: int = 0
    retry: int = 0
    skipped: int = 0
    out_of_time: bool = False
    stopped_reason: str = ""


def run_sender(
    *,
    broadcast_id: int,
    tenant: Any,
    worker: str,
    time_budget: float,
    after_batch: Callable[[Connection, BatchReport], bool],
    heartbeat: Callable[[], Any] | None = None,
) -> SenderReport:
    """A sender's life: one event loop and one HTTP client session, batch after batch (claim →
    send in windows → results) while rows are ready and the time budget lasts. `after_batch`
    runs on the database thread and may stop the sender (auto-pause)."""
    import aiohttp

    dbt = DbThread(tenant)
    totals = SenderReport()
    beats = [time.monotonic()]

    def state() -> tuple[Broadcast | None, list[int]]:
        broadcast = Broadcast.objects.filter(pk=broadcast_id).first()
        if broadcast is None or broadcast.status != Broadcast.Status.SENDING:
            return broadcast, []
        return broadcast, ready_connections(broadcast_id)

    def prepare(connection_id: int) -> Connection:
        return Connection.objects.get(pk=connection_id)

    def release_leftover(ids: list[int]) -> int:
        leftover = list(
            Delivery.objects.filter(pk__in=ids, status=Delivery.Status.CLAIMED, claimed_by=worker).values_list(
                "pk", flat=True
            )
        )
        return release(leftover, worker)

    async def main() -> None:
        started = time.monotonic()
        adapters: dict[int, Adapter] = {}
        composer: Composer | None = None
        stop = [False]

        async def watch() -> None:
            # pause and cancel take effect within a second, between windows; the heartbeat tells
            # the tick this sender is alive (a silent one died with its worker)
            while not stop[0]:
                await asyncio.sleep(1.0)
                if heartbeat is not None and time.monotonic() - beats[0] > 5.0:
                    beats[0] = time.monotonic()
                    await dbt.run(heartbeat)
                broadcast_now, _ = await dbt.run(lambda: (Broadcast.objects.filter(pk=broadcast_id).first(), []))
                if broadcast_now is None or broadcast_now.status != Broadcast.Status.SENDING:
                    stop[0] = True

        connector = aiohttp.TCPConnector(limit=WINDOW_MAX * WINDOWS_IN_FLIGHT, ttl_dns_cache=300, keepalive_timeout=30)
        # no cookies, no automatic decompression: provider APIs need neither, and they cost per request
        async with aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False
        ) as session:
            watcher = asyncio.create_task(watch())
            try:
                while not stop[0]:
                    if time.monotonic() - started >= time_budget:
                        totals.out_of_time = True
                        break
                    broadcast, ready = await dbt.run(state)
                    if broadcast is None or not ready:
                        totals.stopped_reason = "nothing ready" if broadcast else "gone"
                        break
                    connection_id = random.choice(ready)
                    connection = await dbt.run(prepare, connection_id)
                    if connection.status != Connection.Status.ACTIVE:
                        await dbt.run(_defer_connection, broadcast_id, connection_id)
                        continue
                    if composer is None:
                        composer = await dbt.run(Composer.build, broadcast, tenant)
                    adapter = adapters.get(connection_id)
                    if adapter is None:
                        # built on the database thread: inside the event loop Django's connection is a
                        # different (context-local) object, which knows nothing of the tenant
                        adapter = adapters[connection_id] = await dbt.run(
                            lambda c=connection: get_adapter(connection_config(c))
                        )
                    if await dbt.run(ratelimit.backlog, connection_id) > BUSY_SECONDS:
                        # another sender already owns this connection's next slots: sleeping here
                        # would only hold a worker other tenants need
                        ready.remove(connection_id)
                        if not ready:
                            totals.stopped_reason = "connection busy"
                            break
                        continue
                    rows = await dbt.run(
                        claim,
                        broadcast_id,
                        connection_id,
                        batch_size_for(float(connection.rate_limit_per_second)),
                        worker,
                    )
                    if not rows:
                        continue
                    if connection.provider == Provider.EMAIL:
                        composer.email_urls.update(
                            await dbt.run(_email_urls, [r.subscriber_id for r in rows if r.subscriber_id])
                        )
                    report = await send_rows(
                        rows=rows,
                        connection=connection,
                        adapter=adapter,
                        composer=composer,
                        dbt=dbt,
                        worker=worker,
                        session=session,
                        should_stop=lambda: stop[0],
                    )
                    report.released = await dbt.run(release_leftover, [r.delivery_id for r in rows])
                    totals.batches += 1
                    totals.sent += report.sent
                    totals.failed += report.failed
                    totals.retry += report.retry
                    totals.skipped += report.skipped
                    if not await dbt.run(after_batch, connection, report):
                        totals.stopped_reason = "stopped after a batch"
                        break
            finally:
                stop[0] = True
                watcher.cancel()

    try:
        asyncio.run(main())
    finally:
        dbt.close()
    return totals


def _defer_connection(broadcast_id: int, connection_id: int) -> None:
    Delivery.objects.filter(
        broadcast_id=broadcast_id, connection_id=connection_id, status=Delivery.Status.QUEUED
    ).update(next_attempt_at=timezone.now() + timedelta(seconds=30))


def _email_urls(subscriber_ids: list[int]) -> dict[int, tuple[str, str]]:
    from subscribers import selectors as subscriber_selectors
    from subscribers.models import Subscriber

    urls: dict[int, tuple[str, str]] = {}
    for subscriber in Subscriber.objects.filter(pk__in=subscriber_ids):
        urls[subscriber.pk] = (
            subscriber_selectors.unsubscribe_url(subscriber),
            subscriber_selectors.preferences_url(subscriber),
        )
    return urls


# --------------------------------------------------------------------------------------------
# Recovery
# --------------------------------------------------------------------------------------------
def sweep_expired_leases(broadcast_id: int | None = None) -> tuple[int, int]:
    """Re-queue rows whose worker died. `claimed` rows were never sent: re-queue silently.
    `sending` rows may have reached the provider: re-queue, flag and log each as a possible
    duplicate. Returns (claimed, sending) counts."""
    now = timezone.now()
    base = Delivery.objects.filter(lease_expires_at__lt=now)
    if broadcast_id is not None:
        base = base.filter(broadcast_id=broadcast_id)
    claimed = base.filter(status=Delivery.Status.CLAIMED).update(
        status=Delivery.Status.QUEUED, lease_expires_at=None, claimed_by="", next_attempt_at=now
    )
    in_flight = list(base.filter(status=Delivery.Status.SENDING).values_list("pk", "broadcast_id", "claimed_by"))
    if in_flight:
        for pk, bid, owner in in_flight:
            logger.warning(
                "delivery %s of broadcast %s was in flight when worker %s stopped; re-queued as a possible duplicate",
                pk,
                bid,
                owner,
                extra={"delivery_id": pk, "broadcast_id": bid},
            )
        Delivery.objects.filter(pk__in=[pk for pk, _, _ in in_flight], status=Delivery.Status.SENDING).update(
            status=Delivery.Status.QUEUED,
            lease_expires_at=None,
            claimed_by="",
            next_attempt_at=now,
            possible_duplicate=True,
        )
    return claimed, len(in_flight)


def estimated_seconds(count: int, rate: float) -> float:
    return math.ceil(count / ratelimit.effective_rate(rate)) if count else 0.0
