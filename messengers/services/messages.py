"""Single messages (keyword confirmations, tests, inbox replies): queue one, send it from a
worker in the connection's next free slot with a few quick retries, and merge their statuses
(the single-message status sink)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from django.db import transaction
from django.utils import timezone

from core.backoff import backoff_seconds
from core.tasks import enqueue_tenant_task
from messengers import ratelimit, selectors, tasks
from messengers.adapters import get_adapter
from messengers.adapters.base import (
    Adapter,
    Button,
    ErrorKind,
    Media,
    OutgoingMessage,
    ProviderError,
    SendResult,
    StatusEvent,
    TemplateRef,
)
from messengers.models import Connection, Contact, OutboundMessage
from messengers.services.contacts import PROVIDER_UNREACHABLE, contacts_follow_messages, contacts_mark_unreachable
from messengers.services.webhook_events import webhook_events_retry_deferred
from messengers.status import merge_into

logger = logging.getLogger(__name__)

# Single messages: tries per send, and the longest pause between tries a worker may sit out.
SINGLE_SEND_ATTEMPTS = 3
SINGLE_RETRY_WAIT_MAX = 10.0


def outbound_apply_statuses(*, connection_id: int, events: list[StatusEvent]) -> set[str]:
    """Status sink for single messages (keyword replies, tests, inbox replies). Safe under any
    number of concurrent runs (see messengers.status.merge_into)."""
    result = merge_into(model=OutboundMessage, connection_id=connection_id, events=events, has_error_kind=False)
    contacts_follow_messages(
        outcomes=[(row.contact_id, row.status, row.error_kind) for row in result.changed], reason=PROVIDER_UNREACHABLE
    )
    return result.matched


def message_queue(
    *,
    connection: Connection,
    to: str,
    text: str = "",
    purpose: str = "reply",
    contact: Contact | None = None,
    buttons: Sequence[Button] = (),
    media: Media | None = None,
    template: TemplateRef | None = None,
    subject: str = "",
    reply_to_provider_id: str = "",
) -> OutboundMessage:
    """Record a single message and send it from a worker after commit (`subject`: e-mail only;
    `reply_to_provider_id`: the person's message this answers, where the messenger threads)."""
    payload: dict[str, Any] = {}
    if subject:
        payload["subject"] = subject
    if reply_to_provider_id:
        payload["reply_to"] = reply_to_provider_id
    if buttons:
        payload["buttons"] = [{"title": b.title, "url": b.url, "payload": b.payload} for b in buttons]
    if media:
        payload["media"] = {"url": media.url, "kind": media.kind}
    if template:
        payload["template"] = {
            "name": template.name,
            "language": template.language,
            "body_params": list(template.body_params),
        }
    outbound = OutboundMessage.objects.create(
        connection=connection, contact=contact, to=to, text=text, purpose=purpose, payload=payload
    )
    enqueue_tenant_task(tasks.message_send_task, outbound_id=outbound.pk)
    return outbound


def message_send(*, outbound_id: int) -> OutboundMessage:
    """Send a queued single message now (worker). Idempotent: only a queued message is sent, and
    the row is locked while it is (a second worker running the same task skips it)."""
    with transaction.atomic():
        outbound = (
            OutboundMessage.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("connection")
            .filter(pk=outbound_id)
            .first()
        )
        if outbound is None:  # another worker holds it right now
            return OutboundMessage.objects.get(pk=outbound_id)
        return _message_send_locked(outbound)


def _message_send_locked(outbound: OutboundMessage) -> OutboundMessage:
    if outbound.status != OutboundMessage.Status.QUEUED or outbound.provider_message_id:
        return outbound
    connection = outbound.connection
    if connection.status != Connection.Status.ACTIVE:
        outbound.status = OutboundMessage.Status.FAILED
        outbound.error_code = "connection_paused"
        outbound.error_detail = f"connection {connection.name} is {connection.status}"
        outbound.save(update_fields=["status", "error_code", "error_detail", "updated_at"])
        return outbound
    payload = outbound.payload or {}
    message = OutgoingMessage(
        to=outbound.to,
        text=outbound.text,
        subject=payload.get("subject", ""),
        buttons=tuple(Button(**b) for b in payload.get("buttons", [])),
        media=Media(**payload["media"]) if payload.get("media") else None,
        template=TemplateRef(
            name=payload["template"]["name"],
            language=payload["template"]["language"],
            body_params=tuple(payload["template"].get("body_params", [])),
        )
        if payload.get("template")
        else None,
        reference=f"o{outbound.pk}",
        reply_to_provider_id=str(payload.get("reply_to", "")),
    )
    adapter = get_adapter(selectors.connection_config(connection))
    try:
        result = _send_paced(connection, adapter, message)
    except ProviderError as exc:
        outbound.status = OutboundMessage.Status.FAILED
        outbound.error_code = exc.code or exc.kind.value
        outbound.error_detail = exc.message[:300]
        outbound.save(update_fields=["status", "error_code", "error_detail", "updated_at"])
        if exc.unreachable and outbound.contact_id:
            contacts_mark_unreachable(contact_ids=[outbound.contact_id], reason=f"{exc.kind.value} ({exc.code})")
        if exc.retryable:
            logger.warning("single message %s failed after %d attempts: %s", outbound.pk, SINGLE_SEND_ATTEMPTS, exc)
        return outbound
    OutboundMessage.objects.filter(pk=outbound.pk, status=OutboundMessage.Status.QUEUED).update(
        status=OutboundMessage.Status.SENT,
        provider_message_id=result.provider_message_id,
        sent_at=timezone.now(),
        updated_at=timezone.now(),
    )
    outbound.refresh_from_db()
    # a status may have arrived before we recorded the id: give deferred events another go now
    webhook_events_retry_deferred(connection_id=connection.pk)
    return outbound


def _send_paced(connection: Connection, adapter: Adapter, message: OutgoingMessage) -> SendResult:
    """Send in the connection's next free slot; passing failures (5xx, timeouts, 429 with a
    short retry_after) get a few more tries in the same worker, since a single message has no
    retry schedule of its own. A rate limit pushes every sender of the connection back."""
    rate = float(connection.rate_limit_per_second)
    for attempt in range(1, SINGLE_SEND_ATTEMPTS + 1):
        slot = ratelimit.reserve(connection.pk, rate, 1)
        if slot.delay > 0:
            time.sleep(min(slot.delay, 30))
        try:
            return adapter.send(message)
        except ProviderError as exc:
            # A single message follows the provider's retry_after exactly, even when it is shorter.
            wait = exc.retry_after if exc.retry_after is not None else backoff_seconds(attempt, first=0.5, cap=30.0)
            if exc.kind == ErrorKind.RATE_LIMITED:
                ratelimit.penalize(connection.pk, wait)
            if not exc.retryable or attempt == SINGLE_SEND_ATTEMPTS or wait > SINGLE_RETRY_WAIT_MAX:
                raise
            time.sleep(wait)
    raise AssertionError("unreachable")  # the loop returns or raises
