"""Webhook events: store them (unique key, so replays are no-ops), schedule and run the apply
runs, purge old ones, and leave tombstones of erased ones.

Apply runs may overlap (a second one queued by the dispatcher's sweep, a task retried). Status
batches run side by side: the sinks (settings.MESSENGER_STATUS_SINKS: single messages, broadcast
deliveries) merge in SQL under row locks taken in one order (messengers.status.merge_into), so
the result does not depend on how events are split between runs. Inbound batches run one at a
time per tenant (an advisory lock), oldest first by the provider's timestamp, so a person's
messages are handled in the order they were sent. The interceptors in
settings.MESSENGER_INBOUND_INTERCEPTORS see each event first, before its sender becomes a
contact (a department's e-mail answer is taken there); the rest become InboundMessage rows that
the handlers in settings.MESSENGER_INBOUND_HANDLERS see in order (keyword commands first, later
the inbox).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import DateTimeField, F, Q
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.utils import timezone
from django.utils.module_loading import import_string
from django_tenants.utils import schema_context
from psycopg.types.json import Jsonb

from core.backoff import backoff_seconds
from core.tasks import enqueue_tenant_task
from core.tenancy import connection as db
from messengers import tasks
from messengers.adapters.base import InboundMessage as InboundEvent
from messengers.adapters.base import StatusEvent
from messengers.adapters.base import WebhookEvent as Event
from messengers.events import clean, clean_text, event_from_json, event_to_json
from messengers.models import Connection, Contact, InboundMessage, WebhookEvent
from messengers.services.contacts import contact_get_or_create, contact_set_status

logger = logging.getLogger(__name__)

# Deferred statuses (their message is not recorded yet) are retried with growing pauses and
# kept — never dropped — for this long; after that they stay visible as deferred in the admin
# for WEBHOOK_EVENT_RETENTION_DAYS more (webhook_events_purge).
DEFERRED_RETRY_FOR = timedelta(days=7)
# An apply run starts no batch after APPLY_TIME_BUDGET seconds, and one batch takes a small
# part of that; the flag that keeps a second run from being queued lives twice as long, so it
# does not expire under a working run (it still expires should the worker die). Overlapping
# runs are safe anyway (statuses merge in SQL, inbound messages take a lock); the flag only
# keeps them from being the rule.
APPLY_TIME_BUDGET = 20.0
APPLY_LOCK_SECONDS = int(2 * APPLY_TIME_BUDGET)
APPLY_FLAG = "messengers:apply-scheduled"
# PostgreSQL advisory lock (two-key form: this class, hash of the schema): held by the one
# transaction that applies a tenant's inbound messages, so a person's messages are applied in
# the order they were sent even when apply runs overlap.
INBOUND_LOCK_CLASS = 0x6D6E6C02


def webhook_events_store(
    *, connection: Connection, events: Sequence[Event], raw: Any = None, throttle: bool = False
) -> int:
    """Store normalised events (replays and duplicates are ignored by the unique key) and make
    sure a worker applies them soon. Returns how many were new. One INSERT per call: this runs
    in the webhook request, which must answer fast."""
    if not events:
        return 0
    now = timezone.now()
    raw_json = Jsonb(clean(raw)) if raw is not None and len(events) == 1 else None
    values: list[Any] = []
    for event in events:
        key, kind, payload = webhook_event_row(event)
        values += [connection.pk, key, kind, Jsonb(payload), raw_json, now]
    placeholders = ", ".join(["(%s, %s, %s, 'pending', %s, %s, %s, 0, '')"] * len(events))
    with db.cursor() as cursor:
        cursor.execute(
            # only %s placeholders are interpolated; the values go as parameters
            "INSERT INTO messengers_webhookevent "  # noqa: S608
            "(connection_id, dedupe_key, kind, state, payload, raw, received_at, attempts, error) "
            f"VALUES {placeholders} ON CONFLICT (connection_id, dedupe_key) DO NOTHING RETURNING id",
            values,
        )
        created = len(cursor.fetchall())
    if created:
        if throttle:
            webhook_schedule_apply_throttled()
        else:
            webhook_schedule_apply()
    return created


def webhook_event_row(event: Event) -> tuple[str, str, dict[str, Any]]:
    """The stored form of one event: its dedupe key, kind and payload (both ingest paths)."""
    kind = WebhookEvent.Kind.STATUS if isinstance(event, StatusEvent) else WebhookEvent.Kind.INBOUND
    return clean_text(event.dedupe_key)[:300], kind.value, event_to_json(event)


_LAST_SCHEDULED: dict[str, float] = {}


ERASED_KEY_PREFIX = "erased:"


def erased_key(dedupe_key: str) -> str:
    """The tombstone key of an erased event: a hash of its key, which names nobody (provider
    message ids hold random parts, so the hash cannot be reversed by trying phone numbers)."""
    return ERASED_KEY_PREFIX + hashlib.sha256(dedupe_key.encode()).hexdigest()


def webhook_events_forget(*, connection_id: int, event_ids: Iterable[int]) -> int:
    """Erasure: delete stored events of a person (their bodies name them), keeping for each a
    tombstone with only the hash of its dedupe key, so a provider's re-delivery (Meta retries for
    up to seven days) is recognised and dropped instead of acting again. Tombstones count as
    applied events and go with the webhook retention."""
    rows = list(
        WebhookEvent.objects.filter(connection_id=connection_id, pk__in=list(event_ids))
        .exclude(dedupe_key__startswith=ERASED_KEY_PREFIX)
        .values_list("pk", "dedupe_key", "kind")
    )
    if not rows:
        return 0
    now = timezone.now()
    WebhookEvent.objects.filter(pk__in=[pk for pk, _, _ in rows]).delete()
    WebhookEvent.objects.bulk_create(
        [
            WebhookEvent(
                connection_id=connection_id,
                dedupe_key=erased_key(key),
                kind=kind,
                state=WebhookEvent.State.APPLIED,
                payload={},
                applied_at=now,
            )
            for _, key, kind in rows
        ],
        ignore_conflicts=True,
    )
    return len(rows)


def webhook_events_purge(*, older_than_days: int | None = None) -> int:
    """Delete applied webhook events older than the retention (raw bodies hold personal data).

    Meta retries an unacknowledged webhook for up to seven days, so the default of fourteen
    keeps every dedupe key for as long as a replay can arrive. Deferred and failed events are
    retried for DEFERRED_RETRY_FOR and then kept for the same retention, for inspection: a status
    for a message whose id was erased with its recipient (GDPR) never finds its message, and must
    not keep the recipient's number for ever. Pending events are never purged here."""
    days = older_than_days if older_than_days is not None else settings.WEBHOOK_EVENT_RETENTION_DAYS
    cutoff = timezone.now() - timedelta(days=days)
    deleted, _ = WebhookEvent.objects.filter(state=WebhookEvent.State.APPLIED, received_at__lt=cutoff).delete()
    given_up, _ = WebhookEvent.objects.filter(
        state__in=[WebhookEvent.State.DEFERRED, WebhookEvent.State.FAILED], received_at__lt=cutoff - DEFERRED_RETRY_FOR
    ).delete()
    return deleted + given_up


def webhook_schedule_apply_throttled() -> None:
    """From the webhook views: at most once a second per tenant and process, so a flood of
    webhooks does not turn into a flood of cache lookups (the apply task drains everything)."""
    now = time.monotonic()
    schema = db.schema_name
    if now - _LAST_SCHEDULED.get(schema, 0.0) < 1.0:
        return
    _LAST_SCHEDULED[schema] = now
    webhook_schedule_apply()


def webhook_schedule_apply_in(schema_name: str) -> None:
    """From the fast ingest path (messengers.ingest), after its commit: the throttled schedule,
    in that tenant's schema."""
    with schema_context(schema_name):
        webhook_schedule_apply_throttled()


def webhook_schedule_apply() -> None:
    """Queue one apply task unless one is already queued or running for this tenant (the cache
    key is tenant-scoped; it expires after APPLY_LOCK_SECONDS should a worker die). The
    dispatcher's sweep covers anything that slips through."""
    if cache.add(APPLY_FLAG, 1, timeout=APPLY_LOCK_SECONDS):
        enqueue_tenant_task(
            tasks.webhook_events_apply_task,
            task_name=f"{db.schema_name}:apply-events",
            keep_result=False,  # one every few seconds per tenant under load (core.tasks)
        )


def webhook_events_apply_and_release() -> dict[str, int]:
    """The apply task: work off the backlog, then let the next stored event schedule a new run.
    Checking once more after releasing closes the gap in which an event stored during the last
    batch found the flag still set and did not schedule anything."""
    stats = webhook_events_apply()
    cache.delete(APPLY_FLAG)
    if WebhookEvent.objects.filter(_ready_filter(timezone.now())).exists():
        webhook_schedule_apply()
    return stats


def webhook_events_apply(*, batch_size: int = 1000, time_budget: float = APPLY_TIME_BUDGET) -> dict[str, int]:
    """Apply pending events until none are left (or the time budget is spent)."""
    started = time.monotonic()
    totals: dict[str, int] = defaultdict(int)
    while time.monotonic() - started < time_budget:
        statuses = _apply_status_batch(batch_size)
        inbound = _apply_inbound_batch(batch_size)
        for stats in (statuses, inbound):
            for key, value in stats.items():
                totals[key] += value
        if statuses["picked"] < batch_size and inbound["picked"] < batch_size:
            break
    return dict(totals)


def _ready_filter(now: datetime) -> Q:
    return Q(state=WebhookEvent.State.PENDING) | Q(
        state__in=[WebhookEvent.State.DEFERRED, WebhookEvent.State.FAILED],
        applied_at__lte=now,  # for deferred/failed rows, applied_at holds "retry not before"
        received_at__gte=now - DEFERRED_RETRY_FOR,
    )


def _retry_at(now: datetime, attempts: int) -> datetime:
    return now + timedelta(seconds=backoff_seconds(attempts + 1, first=1.0, cap=300.0))


def _apply_status_batch(batch_size: int) -> dict[str, int]:
    """Status events: any number of runs at once, each on the rows it could lock (the sinks
    merge so that the result does not depend on how events are split between runs)."""
    now = timezone.now()
    stats = {"picked": 0, "applied": 0, "deferred": 0, "failed": 0}
    with transaction.atomic():
        rows = list(
            WebhookEvent.objects.select_for_update(skip_locked=True)
            .filter(_ready_filter(now), kind=WebhookEvent.Kind.STATUS)
            .order_by("id")
            .only("id", "connection_id", "kind", "payload", "attempts", "state")[:batch_size]
        )
        stats["picked"] = len(rows)
        if not rows:
            return stats
        outcome: dict[int, tuple[str, str]] = {}
        by_connection: dict[int, list[tuple[WebhookEvent, StatusEvent]]] = defaultdict(list)
        for row in rows:
            event = event_from_json(row.payload)
            assert isinstance(event, StatusEvent)
            by_connection[row.connection_id].append((row, event))
        for connection_id in sorted(by_connection):  # one order for every run: no lock cycles
            pairs = by_connection[connection_id]
            try:
                with transaction.atomic():
                    matched = _apply_statuses(connection_id, [event for _, event in pairs])
            except Exception as exc:  # a failing sink must not hold up everything else
                logger.exception("status events of connection %s failed", connection_id)
                for row, _ in pairs:
                    outcome[row.pk] = (WebhookEvent.State.FAILED, f"{exc.__class__.__name__}: {exc}"[:500])
                continue
            for row, event in pairs:
                if event.provider_message_id in matched:
                    outcome[row.pk] = (WebhookEvent.State.APPLIED, "")
                else:
                    outcome[row.pk] = (WebhookEvent.State.DEFERRED, "no message with this id recorded yet")
        _write_outcomes(rows, outcome, now)
    _count(stats, outcome)
    return stats


def _apply_inbound_batch(batch_size: int) -> dict[str, int]:
    """Inbound messages: one transaction per tenant at a time (the others wait for it), taking
    the oldest by the provider's timestamp (then by arrival), so a person's commands are applied
    in the order sent even when apply runs overlap. One that arrives after a later one of the
    same person was applied is the handlers' business (subscribers.keywords compares times)."""
    now = timezone.now()
    stats = {"picked": 0, "applied": 0, "deferred": 0, "failed": 0}
    ready = WebhookEvent.objects.filter(kind=WebhookEvent.Kind.INBOUND).exclude(state=WebhookEvent.State.APPLIED)
    if not ready.filter(_ready_filter(now)).exists():  # the usual case: no lock, no wait
        return stats
    with transaction.atomic():
        with db.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [INBOUND_LOCK_CLASS, db.schema_name])
        rows = list(
            ready.select_for_update()
            .filter(_ready_filter(timezone.now()))
            .order_by(Cast(KeyTextTransform("at", "payload"), DateTimeField()), "id")
            .only("id", "connection_id", "dedupe_key", "kind", "payload", "attempts", "state")[:batch_size]
        )
        stats["picked"] = len(rows)
        outcome: dict[int, tuple[str, str]] = {}
        for row in rows:
            try:
                with transaction.atomic():
                    _apply_inbound(row)
                outcome[row.pk] = (WebhookEvent.State.APPLIED, "")
            except Exception as exc:  # one odd message must not block the others
                logger.exception("inbound webhook event %s failed", row.pk)
                outcome[row.pk] = (WebhookEvent.State.FAILED, f"{exc.__class__.__name__}: {exc}"[:500])
        _write_outcomes(rows, outcome, now)
    _count(stats, outcome)
    return stats


def _count(stats: dict[str, int], outcome: dict[int, tuple[str, str]]) -> None:
    for state, _ in outcome.values():
        stats[str(state)] = stats.get(str(state), 0) + 1


def _write_outcomes(rows: list[WebhookEvent], outcome: dict[int, tuple[str, str]], now: datetime) -> None:
    applied = [pk for pk, (state, _) in outcome.items() if state == WebhookEvent.State.APPLIED]
    if applied:
        WebhookEvent.objects.filter(pk__in=applied).update(
            state=WebhookEvent.State.APPLIED, applied_at=now, attempts=F("attempts") + 1, error=""
        )
    retry: list[WebhookEvent] = []
    for row in rows:
        state, error = outcome.get(row.pk, (WebhookEvent.State.APPLIED, ""))
        if state == WebhookEvent.State.APPLIED:
            continue
        row.state = state
        row.attempts = (row.attempts or 0) + 1
        row.applied_at = _retry_at(now, row.attempts)
        row.error = error
        retry.append(row)
    if retry:
        WebhookEvent.objects.bulk_update(retry, ["state", "attempts", "applied_at", "error"])


def _apply_statuses(connection_id: int, events: list[StatusEvent]) -> set[str]:
    matched: set[str] = set()
    for path in settings.MESSENGER_STATUS_SINKS:
        remaining = [event for event in events if event.provider_message_id not in matched]
        if not remaining:
            break
        matched |= import_string(path)(connection_id=connection_id, events=remaining)
    return matched


def _apply_inbound(row: WebhookEvent) -> InboundMessage | None:
    if WebhookEvent.objects.filter(connection_id=row.connection_id, dedupe_key=erased_key(row.dedupe_key)).exists():
        # a provider re-delivered a message of a person whose data was erased since: it names
        # them again and must not act (an old START would subscribe them again)
        WebhookEvent.objects.filter(pk=row.pk).delete()
        return None
    event = event_from_json(row.payload)
    assert isinstance(event, InboundEvent)
    connection = Connection.objects.get(pk=row.connection_id)
    for path in settings.MESSENGER_INBOUND_INTERCEPTORS:
        # before the sender becomes a contact: what an interceptor takes names nobody here
        taken = import_string(path)(connection=connection, event=event)
        if taken:
            logger.info("inbound event %s taken by %s (%s)", row.pk, path, taken)
            return None
    # a signed body may still carry an absurd sender; keep the message rather than fail forever
    address = event.sender[: Contact._meta.get_field("address").max_length]
    contact = contact_get_or_create(connection=connection, address=address, display_name=event.sender_name)
    # the 24-hour window: only real messages from the person open it, not a block signal
    if event.kind not in ("block", "unblock"):
        Contact.objects.filter(pk=contact.pk).filter(
            Q(last_inbound_at__isnull=True) | Q(last_inbound_at__lt=event.at)
        ).update(last_inbound_at=event.at)
        contact.last_inbound_at = max(filter(None, [contact.last_inbound_at, event.at]))
    try:
        with transaction.atomic():
            message = InboundMessage.objects.create(
                connection=connection,
                contact=contact,
                provider_message_id=event.provider_message_id[:200],
                kind=event.kind,
                text=event.text,
                payload=dict(event.payload),
                reply_to_provider_id=event.reply_to_provider_id[:200],
                sent_at=event.at,
            )
    except IntegrityError:
        return None  # the same message arrived under another event key; already handled
    if event.kind == "block":
        # unless the person wrote to us after blocking (so they unblocked; that signal may be late)
        if contact.last_inbound_at is None or contact.last_inbound_at <= event.at:
            contact_set_status(contact=contact, status=Contact.Status.BLOCKED, reason="blocked the bot")
    elif event.kind == "unblock" and contact.status == Contact.Status.BLOCKED:
        contact_set_status(contact=contact, status=Contact.Status.ACTIVE, reason="unblocked the bot")
    for path in settings.MESSENGER_INBOUND_HANDLERS:
        handled = import_string(path)(message=message, event=event)
        if handled:
            InboundMessage.objects.filter(pk=message.pk).update(handled_by=str(handled)[:16])
            message.handled_by = str(handled)[:16]
            break
    return message


def webhook_events_retry_deferred(*, connection_id: int) -> int:
    """Make deferred statuses of a connection due now (called after send results are recorded)."""
    count = WebhookEvent.objects.filter(connection_id=connection_id, state=WebhookEvent.State.DEFERRED).update(
        applied_at=timezone.now()
    )
    if count:
        webhook_schedule_apply()
    return count
