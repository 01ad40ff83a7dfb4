"""Outgoing webhooks: a tenant's own systems told about replies and state changes.

Tenant schema. Imported by messengers.models, so Django finds these models in the messengers app.

- `WebhookEndpoint`: a URL of the tenant's, the events it wants, its signing secret (encrypted),
  and whether it is switched on (by an admin, or off automatically after repeated failures).
- `WebhookDelivery`: the outbox. One row per event and endpoint, written in the transaction that
  made the change; workers post it until the endpoint answers 2xx or 24 hours have passed.
- `WebhookAttempt`: the delivery log, one row per try (what the admin shows).
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils.translation import gettext_lazy as _

from core.models import TimeStampedModel

# The events a tenant can subscribe to, as people read them. The names are part of the API:
# never rename one (receivers switch on them).
EVENT_LABELS = {
    "message.received": _("Inbound reply (a person wrote to us)"),
    "subscription.changed": _("Subscription change (opt-in, confirmation, opt-out, erasure)"),
    "broadcast.status_changed": _("Broadcast state change"),
    "alarm.state_changed": _("Alarm state change"),
}


def event_choices() -> list[tuple[str, Any]]:
    """Field choices of an event type (a callable: a new event needs no migration)."""
    return list(EVENT_LABELS.items())


class WebhookEndpoint(TimeStampedModel):
    class Disabled(models.TextChoices):
        NO = "", _("Active")
        BY_ADMIN = "admin", _("Switched off by an administrator")
        FAILURES = "failures", _("Switched off after repeated failures")

    url = models.CharField(_("URL"), max_length=500)
    description = models.CharField(_("description"), max_length=200, blank=True)
    events = ArrayField(models.CharField(max_length=40, choices=event_choices), verbose_name=_("events"), default=list)
    is_active = models.BooleanField(_("active"), default=True)
    disabled = models.CharField(_("switched off"), max_length=10, choices=Disabled.choices, blank=True)
    disabled_at = models.DateTimeField(_("switched off at"), null=True, blank=True)
    # Fernet tokens (core.crypto). The secret is shown once, when made; the previous one still
    # signs (beside the new one) for a day after a rotation, so receivers can switch over.
    secret_encrypted = models.TextField(editable=False)
    previous_secret_encrypted = models.TextField(editable=False, blank=True)
    previous_secret_until = models.DateTimeField(null=True, blank=True, editable=False)
    secret_hint = models.CharField(_("secret"), max_length=16, editable=False)  # its first characters
    consecutive_failures = models.PositiveIntegerField(_("failures in a row"), default=0)
    failing_since = models.DateTimeField(_("failing since"), null=True, blank=True)
    last_success_at = models.DateTimeField(_("last success"), null=True, blank=True)
    last_failure_at = models.DateTimeField(_("last failure"), null=True, blank=True)

    class Meta:
        verbose_name = _("outgoing webhook")
        verbose_name_plural = _("outgoing webhooks")
        ordering = ["url", "pk"]

    def __str__(self) -> str:
        return self.description or self.url


class WebhookDelivery(models.Model):
    """One event for one endpoint (the outbox)."""

    class State(models.TextChoices):
        PENDING = "pending", _("Pending")
        DELIVERED = "delivered", _("Delivered")
        FAILED = "failed", _("Given up")

    endpoint = models.ForeignKey(
        WebhookEndpoint,
        verbose_name=_("outgoing webhook"),
        on_delete=models.CASCADE,
        related_name="deliveries",
        db_index=False,
    )
    # the Webhook-Id header: the same on every try, so receivers can drop repeats
    event_id = models.UUIDField(_("event id"), default=uuid.uuid4)
    event_type = models.CharField(_("event"), max_length=40, choices=event_choices)
    payload = models.JSONField(_("payload"))
    created_at = models.DateTimeField(_("created"))
    state = models.CharField(_("state"), max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    # due time of the next try; while a worker posts, a lease (a crashed worker's row comes back)
    next_attempt_at = models.DateTimeField(_("next attempt"))
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    class Meta:
        verbose_name = _("outgoing webhook event")
        verbose_name_plural = _("outgoing webhook events")
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "event_id"], name="webhook_delivery_unique_event"),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"], name="webhook_delivery_due_idx", condition=models.Q(state="pending")
            ),
            models.Index(fields=["created_at"], name="webhook_delivery_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_event_type_display()} {self.event_id}"


class WebhookAttempt(models.Model):
    """One try of a delivery: what the endpoint answered (a short, plain-text excerpt only)."""

    EXCERPT_LENGTH = 200

    endpoint = models.ForeignKey(
        WebhookEndpoint,
        verbose_name=_("outgoing webhook"),
        on_delete=models.CASCADE,
        related_name="attempts",
        db_index=False,
    )
    delivery = models.ForeignKey(
        WebhookDelivery, verbose_name=_("outgoing webhook event"), on_delete=models.CASCADE, related_name="log"
    )
    at = models.DateTimeField(_("time"))
    event_type = models.CharField(_("event"), max_length=40, choices=event_choices)
    attempt = models.PositiveSmallIntegerField(_("attempt"))
    status_code = models.PositiveSmallIntegerField(_("status code"), null=True, blank=True)
    duration_ms = models.PositiveIntegerField(_("duration (ms)"))
    ok = models.BooleanField(_("success"))
    error = models.CharField(_("error"), max_length=200, blank=True)
    response_excerpt = models.CharField(_("answer (excerpt)"), max_length=EXCERPT_LENGTH, blank=True)

    class Meta:
        verbose_name = _("webhook delivery attempt")
        verbose_name_plural = _("webhook delivery log")
        ordering = ["-at", "-pk"]
        indexes = [models.Index(fields=["endpoint", "-at"], name="webhook_attempt_endpoint_idx")]

    def __str__(self) -> str:
        return f"{self.get_event_type_display()} #{self.attempt} → {self.status_code or self.error}"
