"""Writes of outgoing webhooks: endpoints (set up by administrators), the outbox, delivery with
retries, automatic switching off, and the purge. Documented for receivers in docs/api.md
("Outgoing webhooks").

Emitting: the apps call `outgoing_event_emit` inside the transaction that made the change
(inbox.services on an inbound reply, subscribers.services.consent for every ledger entry,
broadcasts.services.states for every status change, channels.services for alarm states). It
writes one WebhookDelivery per active endpoint that wants the event, so a rolled-back change
sends nothing, and queues the first try after commit. Nothing is sent from inside a transaction.

Delivering: `webhook_delivery_attempt` claims a due row (a lease in next_attempt_at, so a
crashed worker's row comes back), posts it outside any transaction (messengers.outgoing.
transport: checked address, 10 s, no redirects, answer read with a size cap), and records the
try in the log. Failures retry with exponential back-off and jitter (core.backoff) until 24 hours
after the event; the per-minute sweep `webhook_deliveries_retry_due` queues what is due.
At least once: a receiver may get an event twice (a lost answer, a crash after the post) and
drops repeats by the Webhook-Id header, which stays the same on every try.
"""

from __future__ import annotations

import json
import re
import secrets
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext, gettext_noop

from accounts import roles
from accounts.models import User
from accounts.services import audit_log
from core import crypto
from core.backoff import backoff_seconds
from core.errors import ApplicationError
from core.http import RequestMeta
from core.tasks import enqueue_tenant_task
from core.tenancy import connection as db
from messengers import tasks
from messengers.outgoing import transport
from messengers.outgoing.models import EVENT_LABELS, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from messengers.outgoing.signature import signature_header
from tenants.selectors import tenant_absolute_url

MANAGE_PERMISSION = "messengers.change_webhookendpoint"
NOT_AN_ADMIN = gettext_noop("Only administrators can set up outgoing webhooks.")
NO_EVENTS = gettext_noop("Choose at least one event.")
UNKNOWN_EVENT = gettext_noop("Unknown event “{event}”.")

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
RETRY_FOR = timedelta(hours=24)  # after the event; then the delivery is given up
FIRST_RETRY_SECONDS = 60.0
RETRY_CAP_SECONDS = 4 * 3600.0
RETRY_JITTER = 0.2  # ±20 %: events that failed together do not all come back in the same second
LEASE = timedelta(seconds=60)  # longer than one post can take (transport.TIMEOUT_SECONDS, twice)
PREVIOUS_SECRET_VALID = timedelta(hours=24)
DUE_BATCH = 1000


def _require_admin(actor: User | None) -> None:
    if actor is None or not actor.has_perm(MANAGE_PERMISSION):
        raise ApplicationError(NOT_AN_ADMIN)


def user_can_manage_webhooks(user: Any) -> bool:
    return bool(user is not None and user.is_authenticated and user.has_perm(MANAGE_PERMISSION))


def _clean_events(events: list[str]) -> list[str]:
    cleaned = list(dict.fromkeys(events))
    for event in cleaned:
        if event not in EVENT_LABELS:
            raise ApplicationError(UNKNOWN_EVENT, params=dict(event=event[:40]))
    if not cleaned:
        raise ApplicationError(NO_EVENTS)
    return cleaned


def _url_check(url: str) -> str:
    url = url.strip()
    try:
        transport.target_check(url)
    except transport.RefusedError as exc:
        raise ApplicationError(exc.template, params=exc.params) from None
    return url


def _new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


@transaction.atomic
def webhook_endpoint_create(
    *, url: str, events: list[str], description: str = "", actor: User | None, meta: RequestMeta | None = None
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its signing secret (returned in plain text this once, then only
    stored encrypted)."""
    _require_admin(actor)
    secret = _new_secret()
    endpoint = WebhookEndpoint.objects.create(
        url=_url_check(url),
        events=_clean_events(events),
        description=description.strip()[:200],
        secret_encrypted=crypto.encrypt_str(secret),
        secret_hint=secret[: len(SECRET_PREFIX) + 4],
    )
    audit_log(
        action="webhook_endpoint.created", actor=actor, target=endpoint, meta=meta, details={"events": endpoint.events}
    )
    return endpoint, secret


@transaction.atomic
def webhook_endpoint_update(
    *,
    endpoint: WebhookEndpoint,
    url: str,
    events: list[str],
    description: str,
    actor: User | None,
    meta: RequestMeta | None = None,
) -> WebhookEndpoint:
    _require_admin(actor)
    locked = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    values = {"url": _url_check(url), "events": _clean_events(events), "description": description.strip()[:200]}
    changed = [name for name, value in values.items() if getattr(locked, name) != value]
    if changed:
        for name in changed:
            setattr(locked, name, values[name])
        locked.save(update_fields=[*changed, "updated_at"])
        audit_log(action="webhook_endpoint.updated", actor=actor, target=locked, meta=meta, details={"fields": changed})
    return locked


@transaction.atomic
def webhook_endpoint_rotate_secret(
    *, endpoint: WebhookEndpoint, actor: User | None, meta: RequestMeta | None = None
) -> str:
    """A new secret (returned in plain text this once). The old one keeps signing beside it for
    PREVIOUS_SECRET_VALID, so receivers can switch without losing events."""
    _require_admin(actor)
    locked = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    secret = _new_secret()
    locked.previous_secret_encrypted = locked.secret_encrypted
    locked.previous_secret_until = timezone.now() + PREVIOUS_SECRET_VALID
    locked.secret_encrypted = crypto.encrypt_str(secret)
    locked.secret_hint = secret[: len(SECRET_PREFIX) + 4]
    locked.save(
        update_fields=[
            "previous_secret_encrypted", "previous_secret_until", "secret_encrypted", "secret_hint", "updated_at",
        ]
    )  # fmt: skip
    audit_log(action="webhook_endpoint.secret_rotated", actor=actor, target=locked, meta=meta)
    return secret


@transaction.atomic
def webhook_endpoint_set_active(
    *, endpoint: WebhookEndpoint, active: bool, actor: User | None, meta: RequestMeta | None = None
) -> WebhookEndpoint:
    """Switch an endpoint on or off by hand. On again: the failure count starts afresh and the
    events still within their 24 hours are tried at once."""
    _require_admin(actor)
    locked = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    if locked.is_active == active:
        return locked
    now = timezone.now()
    locked.is_active = active
    if active:
        locked.disabled, locked.disabled_at = WebhookEndpoint.Disabled.NO, None
        locked.consecutive_failures, locked.failing_since = 0, None
        WebhookDelivery.objects.filter(endpoint=locked, state=WebhookDelivery.State.PENDING).update(next_attempt_at=now)
    else:
        locked.disabled, locked.disabled_at = WebhookEndpoint.Disabled.BY_ADMIN, now
    locked.save()
    audit_log(
        action="webhook_endpoint.enabled" if active else "webhook_endpoint.disabled",
        actor=actor,
        target=locked,
        meta=meta,
    )
    if active:
        transaction.on_commit(lambda: webhook_deliveries_retry_due(now=now))
    return locked


@transaction.atomic
def webhook_endpoints_reencrypt() -> int:
    """Re-encrypt every endpoint's secrets with the newest key in FERNET_KEYS (`manage.py
    rotate_secrets`). Returns how many endpoints it rewrote."""
    endpoints = list(WebhookEndpoint.objects.select_for_update())
    for endpoint in endpoints:
        endpoint.secret_encrypted = crypto.rotate(endpoint.secret_encrypted)
        if endpoint.previous_secret_encrypted:
            endpoint.previous_secret_encrypted = crypto.rotate(endpoint.previous_secret_encrypted)
        endpoint.save(update_fields=["secret_encrypted", "previous_secret_encrypted"])
    return len(endpoints)


@transaction.atomic
def webhook_endpoint_delete(*, endpoint: WebhookEndpoint, actor: User | None, meta: RequestMeta | None = None) -> None:
    _require_admin(actor)
    audit_log(action="webhook_endpoint.deleted", actor=actor, target=endpoint, meta=meta, details={"url": endpoint.url})
    endpoint.delete()


# --------------------------------------------------------------------------------------------
# Emitting
# --------------------------------------------------------------------------------------------
def outgoing_event_emit(
    *, event_type: str, data: dict[str, Any] | Callable[[], dict[str, Any]], at: datetime | None = None
) -> int:
    """Queue `event_type` with `data` for every active endpoint that wants it, in the caller's
    transaction. Returns how many endpoints get it. `data` (or what the callable returns, asked
    only when an endpoint wants the event) must be JSON-safe; dates become ISO strings. One query
    when no endpoint wants the event."""
    if event_type not in EVENT_LABELS:
        raise ValueError(f"unknown outgoing event {event_type!r}")
    endpoint_ids = list(
        WebhookEndpoint.objects.filter(is_active=True, events__contains=[event_type]).values_list("pk", flat=True)
    )
    if not endpoint_ids:
        return 0
    now = at or timezone.now()
    event_id = uuid.uuid4()
    payload = {
        "id": str(event_id),
        "type": event_type,
        "created_at": now.isoformat(),
        "data": json.loads(json.dumps(data() if callable(data) else data, cls=DjangoJSONEncoder)),
    }
    with transaction.atomic():
        rows = WebhookDelivery.objects.bulk_create(
            WebhookDelivery(
                endpoint_id=pk, event_id=event_id, event_type=event_type, payload=payload, created_at=now,
                next_attempt_at=now,
            )
            for pk in endpoint_ids
        )  # fmt: skip
        for row in rows:
            enqueue_tenant_task(tasks.webhook_delivery_task, delivery_id=row.pk, keep_result=False)
    return len(rows)


# --------------------------------------------------------------------------------------------
# Delivering
# --------------------------------------------------------------------------------------------
def body_bytes(payload: dict[str, Any]) -> bytes:
    """The exact bytes we post (and sign): compact JSON, UTF-8."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def _secrets(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    found = [crypto.decrypt_str(endpoint.secret_encrypted)]
    if endpoint.previous_secret_encrypted and endpoint.previous_secret_until and endpoint.previous_secret_until > now:
        found.append(crypto.decrypt_str(endpoint.previous_secret_encrypted))
    return found


CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2066-\u2069]+")


def response_excerpt(body: bytes) -> str:
    """At most 200 characters of an answer, as plain text on one line (no control or
    direction-changing characters). Pages escape it like any other text."""
    text = body[: WebhookAttempt.EXCERPT_LENGTH * 4].decode("utf-8", errors="replace")
    return " ".join(CONTROL.sub(" ", text).split())[: WebhookAttempt.EXCERPT_LENGTH]


def webhook_delivery_attempt(*, delivery_id: int, now: datetime | None = None) -> str:
    """One try of one delivery, if it is due. Returns what happened (for the task's result)."""
    now = now or timezone.now()
    with transaction.atomic():
        row = (
            WebhookDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("endpoint")
            .filter(pk=delivery_id, state=WebhookDelivery.State.PENDING, next_attempt_at__lte=now)
            .first()
        )
        if row is None:
            return "not due"
        endpoint = row.endpoint
        if not endpoint.is_active:
            return "endpoint switched off"
        if now >= row.created_at + RETRY_FOR:
            row.state, row.finished_at = WebhookDelivery.State.FAILED, now
            row.save(update_fields=["state", "finished_at"])
            return "given up"
        row.attempts += 1
        row.next_attempt_at = now + LEASE
        row.save(update_fields=["attempts", "next_attempt_at"])
    body = body_bytes(row.payload)
    timestamp = int(now.timestamp())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Messenger-Newsletter-Webhooks/1",
        "Webhook-Id": str(row.event_id),
        "Webhook-Timestamp": str(timestamp),
        "Webhook-Signature": signature_header(_secrets(endpoint, now), timestamp, body),
    }
    try:
        target = transport.target_check(endpoint.url)
    except transport.RefusedError as exc:
        answer = transport.Answer(status=None, body=b"", error=str(exc)[:200], duration_ms=0)
    else:
        answer = transport.post(target, body, headers)
    return _record(row, answer, now)


def _should_disable(endpoint: WebhookEndpoint, now: datetime) -> bool:
    if endpoint.consecutive_failures >= settings.OUTGOING_WEBHOOK_DISABLE_AFTER_FAILURES:
        return True
    window = timedelta(hours=settings.OUTGOING_WEBHOOK_DISABLE_AFTER_HOURS)
    return endpoint.failing_since is not None and now - endpoint.failing_since >= window


@transaction.atomic
def _record(row: WebhookDelivery, answer: transport.Answer, now: datetime) -> str:
    endpoint = WebhookEndpoint.objects.select_for_update().filter(pk=row.endpoint_id).first()
    if endpoint is None:
        return "endpoint deleted"
    if not WebhookDelivery.objects.select_for_update().filter(pk=row.pk).exists():
        return "event erased"  # a GDPR erasure took it while we posted
    WebhookAttempt.objects.create(
        endpoint=endpoint, delivery=row, at=now, event_type=row.event_type, attempt=row.attempts,
        status_code=answer.status, duration_ms=answer.duration_ms, ok=answer.ok, error=answer.error[:200],
        response_excerpt=response_excerpt(answer.body),
    )  # fmt: skip
    if answer.ok:
        WebhookDelivery.objects.filter(pk=row.pk).update(state=WebhookDelivery.State.DELIVERED, finished_at=now)
        endpoint.consecutive_failures, endpoint.failing_since, endpoint.last_success_at = 0, None, now
        endpoint.save(update_fields=["consecutive_failures", "failing_since", "last_success_at"])
        return "delivered"
    delay = timedelta(
        seconds=backoff_seconds(row.attempts, first=FIRST_RETRY_SECONDS, cap=RETRY_CAP_SECONDS, jitter=RETRY_JITTER)
    )
    if now + delay >= row.created_at + RETRY_FOR:
        WebhookDelivery.objects.filter(pk=row.pk).update(state=WebhookDelivery.State.FAILED, finished_at=now)
        outcome = "given up"
    else:
        WebhookDelivery.objects.filter(pk=row.pk).update(next_attempt_at=now + delay)
        outcome = "retry"
    endpoint.consecutive_failures += 1
    endpoint.failing_since = endpoint.failing_since or now
    endpoint.last_failure_at = now
    fields = ["consecutive_failures", "failing_since", "last_failure_at"]
    if endpoint.is_active and _should_disable(endpoint, now):
        endpoint.is_active = False
        endpoint.disabled, endpoint.disabled_at = WebhookEndpoint.Disabled.FAILURES, now
        fields += ["is_active", "disabled", "disabled_at"]
        audit_log(
            action="webhook_endpoint.disabled_after_failures",
            actor_label="system",
            target=endpoint,
            details={"failures": endpoint.consecutive_failures, "since": endpoint.failing_since.isoformat()},
        )
        enqueue_tenant_task(tasks.webhook_endpoint_disabled_notify_task, endpoint_id=endpoint.pk)
        outcome = "switched off"
    endpoint.save(update_fields=fields)
    return outcome


def webhook_deliveries_retry_due(*, now: datetime | None = None) -> int:
    """Queue a try for every due delivery of an active endpoint (the per-minute sweep; also
    picks up rows whose worker died mid-post once their lease ran out)."""
    now = now or timezone.now()
    due = list(
        WebhookDelivery.objects.filter(
            state=WebhookDelivery.State.PENDING, next_attempt_at__lte=now, endpoint__is_active=True
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:DUE_BATCH]
    )
    for pk in due:
        enqueue_tenant_task(tasks.webhook_delivery_task, delivery_id=pk, keep_result=False)
    return len(due)


def webhook_log_purge(*, now: datetime | None = None) -> int:
    """Delete finished deliveries (and their log) older than OUTGOING_WEBHOOK_LOG_DAYS, and
    pending ones of switched-off endpoints that are past their 24 hours."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.OUTGOING_WEBHOOK_LOG_DAYS)
    WebhookDelivery.objects.filter(
        state=WebhookDelivery.State.PENDING, created_at__lt=now - RETRY_FOR, endpoint__is_active=False
    ).update(state=WebhookDelivery.State.FAILED, finished_at=now)
    deleted, _ = (
        WebhookDelivery.objects.filter(created_at__lt=cutoff).exclude(state=WebhookDelivery.State.PENDING).delete()
    )
    return deleted


def _language(user: User) -> str:
    return user.language or getattr(db.tenant, "default_language", "") or "de"


def webhook_endpoint_disabled_notify(*, endpoint_id: int) -> int:
    """Tell the tenant's administrators (each in their language) that an endpoint was switched
    off after failures. Returns the mails sent."""
    endpoint = WebhookEndpoint.objects.filter(pk=endpoint_id).first()
    if endpoint is None:
        return 0
    admins = User.objects.filter(is_active=True, groups__name=roles.ADMIN).exclude(email="").distinct()
    url = tenant_absolute_url(f"/admin/messengers/webhookendpoint/{endpoint.pk}/change/")
    sent = 0
    for user in admins.order_by("pk"):
        with translation.override(_language(user)):
            subject = gettext("Outgoing webhook switched off: %(url)s") % {"url": endpoint.url[:100]}
            body = gettext(
                "Deliveries to %(url)s have failed %(count)d times in a row since %(since)s, so we stopped "
                "sending to it. Events stay queued for 24 hours.\n\nCheck the delivery log, fix the receiver "
                "and switch the webhook on again:\n%(link)s\n"
            ) % {
                "url": endpoint.url,
                "count": endpoint.consecutive_failures,
                "since": endpoint.failing_since.isoformat(timespec="minutes") if endpoint.failing_since else "–",
                "link": url,
            }
        sent += send_mail(subject, body, None, [user.email], fail_silently=True)
    return sent
