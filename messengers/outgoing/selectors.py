"""Reads of outgoing webhooks (the admin's lists)."""

from __future__ import annotations

from django.db.models import QuerySet

from messengers.outgoing.models import WebhookAttempt, WebhookEndpoint


def webhook_endpoint_list() -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.defer("secret_encrypted", "previous_secret_encrypted").order_by("url", "pk")


def webhook_attempt_list() -> QuerySet[WebhookAttempt]:
    """The delivery log, newest first, with its endpoint (one query per page)."""
    return WebhookAttempt.objects.select_related("endpoint").defer(
        "endpoint__secret_encrypted", "endpoint__previous_secret_encrypted"
    )
