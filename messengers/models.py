"""Messenger connections of a tenant, the people reachable on them, and what flows in and out.

Tenant schema. The public routing table lives in tenants.models.WebhookRoute.
"""

from __future__ import annotations

import secrets
from decimal import Decimal
from typing import Any

from django.db import models
from django.utils.translation import gettext_lazy as _

from core.models import TimeStampedModel
from messengers.adapters.base import ErrorKind, Provider

# How each messenger is called (product names stay as their makers write them).
PROVIDER_CHOICES = [
    (Provider.WHATSAPP.value, "WhatsApp"),
    (Provider.TELEGRAM.value, "Telegram"),
    (Provider.SMS.value, "SMS"),
    (Provider.EMAIL.value, _("E-mail")),
    (Provider.SANDBOX.value, "Sandbox"),
]


# What a single message was sent for (`purpose`, set by the app that sends it), as people read it.
OUTBOUND_PURPOSE_LABELS = {
    "reply": _("Reply"),
    "keyword": _("Reply to a keyword"),
    "erasure": _("Confirmation of erasure"),
}


def outbound_purpose_choices() -> list[tuple[str, Any]]:
    """Field choices of OutboundMessage.purpose (a callable: a new purpose needs no migration)."""
    return list(OUTBOUND_PURPOSE_LABELS.items())


# The kinds of failure a provider reports (messengers.adapters.base.ErrorKind), as people read them.
ERROR_KIND_LABELS = {
    ErrorKind.RATE_LIMITED: _("Rate limit reached"),
    ErrorKind.TEMPORARY: _("Temporary failure"),
    ErrorKind.BLOCKED: _("Blocked by the person"),
    ErrorKind.NOT_ON_MESSENGER: _("Not on this messenger"),
    ErrorKind.INVALID_RECIPIENT: _("Invalid address"),
    ErrorKind.WINDOW_CLOSED: _("24-hour window closed (template needed)"),
    ErrorKind.PAIR_RATE: _("Too many messages to this person"),
    ErrorKind.BAD_REQUEST: _("Message refused"),
    ErrorKind.TEMPLATE_PROBLEM: _("Template problem"),
    ErrorKind.BAD_CREDENTIALS: _("Access data invalid"),
    ErrorKind.ACCOUNT_PROBLEM: _("Problem with the messenger account"),
}


def error_kind_choices() -> list[tuple[str, Any]]:
    """Field choices of a stored ErrorKind (a callable: a new kind needs no migration)."""
    return [(kind.value, label) for kind, label in ERROR_KIND_LABELS.items()]


def new_route_key() -> str:
    """A connection's webhook route: 24 URL-safe characters, never starting with "-", which a
    command line (`manage.py email_inbound <route_key>`) would read as an option (1 key in 64)."""
    while (key := secrets.token_urlsafe(18)).startswith("-"):
        pass
    return key


DEFAULT_RATES = {
    Provider.WHATSAPP: Decimal("80"),  # Meta's default per-number throughput
    Provider.TELEGRAM: Decimal("30"),  # Telegram's broadcast guidance per bot
    Provider.SMS: Decimal("10"),  # a Twilio long code; raise for short codes / services
    Provider.EMAIL: Decimal("20"),
    Provider.SANDBOX: Decimal("50"),
}


class Connection(TimeStampedModel):
    """One messenger account of the tenant (a WhatsApp number, a Telegram bot, …)."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        PAUSED = "paused", _("Paused")  # by an admin, or automatically after credential errors
        DISABLED = "disabled", _("Disabled")

    class Tier(models.IntegerChoices):
        T250 = 250, "250"
        T2K = 2_000, "2,000"
        T10K = 10_000, "10,000"
        T100K = 100_000, "100,000"
        UNLIMITED = 0, _("unlimited")

    provider = models.CharField(_("messenger"), max_length=16, choices=PROVIDER_CHOICES)
    name = models.CharField(_("name"), max_length=100)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.ACTIVE)
    status_detail = models.CharField(_("status detail"), max_length=300, blank=True)
    # Fernet token of a JSON object (core.crypto). Write-only in every form; never logged.
    credentials_encrypted = models.TextField(_("credentials (encrypted)"), blank=True, editable=False)
    external_id = models.CharField(
        _("external id"),
        max_length=120,
        blank=True,
        db_index=True,
        help_text=_(
            "WhatsApp phone number id · Telegram bot id · Twilio sender (+49…) or MG… service · e-mail sender address"
        ),
    )
    account_id = models.CharField(
        _("account id"),
        max_length=120,
        blank=True,
        help_text=_("WhatsApp business account (WABA) id · Twilio Account SID"),
    )
    public_address = models.CharField(
        _("public address"),
        max_length=120,
        blank=True,
        help_text=_("What citizens see: the WhatsApp number (+49…), the bot's @username, the SMS number, the e-mail."),
    )
    api_base = models.URLField(
        _("API base URL"), blank=True, help_text=_("Leave empty for the real provider; set to point at a test server.")
    )
    route_key = models.CharField(_("webhook route"), max_length=40, unique=True, default=new_route_key, editable=False)
    rate_limit_per_second = models.DecimalField(
        _("send rate (messages per second)"), max_digits=7, decimal_places=2, default=Decimal("20")
    )
    whatsapp_tier = models.IntegerField(
        _("WhatsApp messaging tier"),
        choices=Tier.choices,
        null=True,
        blank=True,
        help_text=_("Unique people per 24 h the business may start conversations with."),
    )
    price_per_message = models.DecimalField(
        _("price per message (EUR)"),
        max_digits=8,
        decimal_places=4,
        default=Decimal("0"),
        help_text=_("For cost estimates; SMS: per segment."),
    )
    # Demo only: a sandbox connection that the public subscribe page presents as WhatsApp,
    # Telegram or e-mail (buttons, QR codes, the e-mail form) while every message still goes to the
    # simulated phones. Honoured only while settings.DEMO_MODE is on (messengers.selectors.
    # connection_shown_provider); otherwise it is an ordinary sandbox. Set by `seed_demo` only.
    demo_presents_as = models.CharField(
        _("shown on the demo's subscribe page as"),
        max_length=16,
        blank=True,
        editable=False,
        choices=[
            (Provider.WHATSAPP.value, "WhatsApp"),
            (Provider.TELEGRAM.value, "Telegram"),
            (Provider.EMAIL.value, _("E-mail")),
        ],
    )
    last_check_at = models.DateTimeField(_("last checked"), null=True, blank=True)
    last_check_ok = models.BooleanField(_("last check passed"), null=True, blank=True)
    last_check_detail = models.CharField(_("last check result"), max_length=300, blank=True)

    class Meta:
        verbose_name = _("messenger connection")
        verbose_name_plural = _("messenger connections")
        ordering = ["provider", "name"]
        permissions = [
            ("use_sandbox", _("Can use the phone simulator")),
            ("manage_connection", _("Can add, change, test, pause and resume messenger connections")),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_provider_display()})"

    @property
    def provider_enum(self) -> Provider:
        return Provider(self.provider)


class WhatsAppTemplate(TimeStampedModel):
    """A Meta-approved message template, synced from the Graph API or entered by hand."""

    class Category(models.TextChoices):
        UTILITY = "UTILITY", _("Utility (alerts, updates)")
        MARKETING = "MARKETING", _("Marketing")
        AUTHENTICATION = "AUTHENTICATION", _("Authentication")

    connection = models.ForeignKey(
        Connection, verbose_name=_("connection"), on_delete=models.CASCADE, related_name="templates", db_index=False
    )
    name = models.CharField(_("name"), max_length=512)
    language = models.CharField(_("language"), max_length=16, help_text=_("e.g. de, en_US"))
    category = models.CharField(_("category"), max_length=20, choices=Category.choices, default=Category.UTILITY)
    status = models.CharField(_("status"), max_length=20, default="APPROVED")
    body = models.TextField(_("body text"), blank=True, help_text=_("With {{1}}, {{2}} … placeholders."))
    parameter_count = models.PositiveSmallIntegerField(_("body parameters"), default=0)
    components = models.JSONField(_("components"), default=list, blank=True)
    synced_at = models.DateTimeField(_("synced"), null=True, blank=True)

    class Meta:
        verbose_name = _("WhatsApp template")
        verbose_name_plural = _("WhatsApp templates")
        constraints = [
            models.UniqueConstraint(fields=["connection", "name", "language"], name="wa_template_unique"),
        ]
        ordering = ["name", "language"]

    def __str__(self) -> str:
        return f"{self.name} [{self.language}]"

    @property
    def is_usable(self) -> bool:
        return self.status == "APPROVED"


class Contact(TimeStampedModel):
    """A person's address on one connection (a phone number on WhatsApp, a Telegram chat …).

    Kept by the messenger layer: the last inbound time (WhatsApp's 24-hour window), and whether
    the provider says the person can be reached at all. The person behind it (their channels,
    language, consent) is a subscribers.Subscriber."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        UNSUBSCRIBED = "unsubscribed", _("Unsubscribed")
        BLOCKED = "blocked", _("Blocked / unreachable")

    connection = models.ForeignKey(
        Connection, verbose_name=_("connection"), on_delete=models.CASCADE, related_name="contacts", db_index=False
    )
    subscriber = models.ForeignKey(
        "subscribers.Subscriber",
        verbose_name=_("subscriber"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="contacts",
        db_index=False,
    )
    address = models.CharField(_("address"), max_length=254)
    display_name = models.CharField(_("name"), max_length=200, blank=True)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.ACTIVE)
    status_reason = models.CharField(_("status reason"), max_length=200, blank=True)
    status_changed_at = models.DateTimeField(_("status changed"), null=True, blank=True)
    last_inbound_at = models.DateTimeField(_("last message from this person"), null=True, blank=True)

    class Meta:
        verbose_name = _("contact")
        verbose_name_plural = _("contacts")
        constraints = [
            models.UniqueConstraint(fields=["connection", "address"], name="contact_unique_address"),
        ]
        indexes = [models.Index(fields=["subscriber", "connection"], name="contact_subscriber_idx")]

    def __str__(self) -> str:
        return f"{self.display_name or self.address} @ {self.connection_id}"


class WebhookEvent(models.Model):
    """One normalised event from a provider webhook (or the sandbox), stored before it is applied.

    The unique key makes replays no-ops. Workers apply pending events in batches; a status
    whose outbound message is not recorded yet waits as `deferred` and is retried for a week (then
    purged with the retention, see messengers.services.webhook_events_purge).
    """

    class Kind(models.TextChoices):
        STATUS = "status", _("Status")
        INBOUND = "inbound", _("Inbound message")

    class State(models.TextChoices):
        PENDING = "pending", _("Pending")
        APPLIED = "applied", _("Applied")
        DEFERRED = "deferred", _("Waiting for its message")  # status arrived before the send was recorded
        FAILED = "failed", _("Failed")  # the handler raised; kept for inspection and retried

    # no index of its own: the unique key (connection, dedupe_key) serves look-ups by connection,
    # and every index costs a write per stored event and per applied one
    connection = models.ForeignKey(
        Connection,
        verbose_name=_("connection"),
        on_delete=models.CASCADE,
        related_name="webhook_events",
        db_index=False,
    )
    dedupe_key = models.CharField(_("deduplication key"), max_length=300)
    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices)
    state = models.CharField(_("state"), max_length=10, choices=State.choices, default=State.PENDING)
    payload = models.JSONField(_("payload"))  # the normalised event (messengers.events.event_to_json)
    raw = models.JSONField(_("raw data"), null=True, blank=True)  # the provider's own body, for inspection
    received_at = models.DateTimeField(_("received at"), auto_now_add=True)
    applied_at = models.DateTimeField(_("applied at"), null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    error = models.CharField(_("error"), max_length=500, blank=True)

    class Meta:
        verbose_name = _("webhook event")
        verbose_name_plural = _("webhook events")
        constraints = [
            models.UniqueConstraint(fields=["connection", "dedupe_key"], name="webhook_event_unique"),
        ]
        indexes = [
            models.Index(fields=["state", "id"], name="webhook_event_state_idx", condition=~models.Q(state="applied")),
            # inbound messages waiting, found without walking a backlog of statuses (webhook_events_apply)
            models.Index(
                fields=["id"],
                name="webhook_event_inbound_idx",
                condition=models.Q(kind="inbound") & ~models.Q(state="applied"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} ({self.get_state_display()})"


class InboundMessage(models.Model):
    """Everything a person sent or did (block, button tap), normalised across providers."""

    class Handled(models.TextChoices):
        NONE = "", _("Not handled")
        KEYWORD = "keyword", _("Keyword command")
        INBOX = "inbox", _("Inbox")
        IGNORED = "ignored", _("Ignored")

    connection = models.ForeignKey(
        Connection,
        verbose_name=_("connection"),
        on_delete=models.CASCADE,
        related_name="inbound_messages",
        db_index=False,
    )
    contact = models.ForeignKey(
        Contact, verbose_name=_("contact"), on_delete=models.CASCADE, related_name="inbound_messages"
    )
    provider_message_id = models.CharField(_("provider message ID"), max_length=200)
    kind = models.CharField(_("kind"), max_length=16)
    text = models.TextField(_("text"), blank=True)
    payload = models.JSONField(_("details"), default=dict, blank=True)
    reply_to_provider_id = models.CharField(_("reply to (provider ID)"), max_length=200, blank=True)
    sent_at = models.DateTimeField(_("sent"))
    received_at = models.DateTimeField(_("received"), auto_now_add=True, db_index=True)
    handled_by = models.CharField(_("handled by"), max_length=16, choices=Handled.choices, blank=True)
    handled_detail = models.CharField(_("handling detail"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("inbound message")
        verbose_name_plural = _("inbound messages")
        constraints = [
            models.UniqueConstraint(fields=["connection", "provider_message_id"], name="inbound_unique_message"),
        ]
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.kind}: {self.text[:40]}"


class OutboundMessage(TimeStampedModel):
    """A single message we sent outside a broadcast: keyword confirmations, test messages,
    inbox replies. (Broadcast deliveries are broadcasts.Delivery.) Status events update it."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")
        DELIVERED = "delivered", _("Delivered")
        READ = "read", _("Read")

    connection = models.ForeignKey(
        Connection, verbose_name=_("connection"), on_delete=models.CASCADE, related_name="outbound_messages"
    )
    contact = models.ForeignKey(
        Contact, verbose_name=_("contact"), on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    to = models.CharField(_("recipient address"), max_length=254)
    purpose = models.CharField(_("purpose"), max_length=32, default="reply", choices=outbound_purpose_choices)
    text = models.TextField(_("text"), blank=True)
    payload = models.JSONField(_("payload"), default=dict, blank=True)  # buttons, media, template
    status = models.CharField(_("status"), max_length=12, choices=Status.choices, default=Status.QUEUED)
    provider_message_id = models.CharField(_("provider message ID"), max_length=200, blank=True, db_index=True)
    error_code = models.CharField(_("error code"), max_length=40, blank=True)
    error_detail = models.CharField(_("error detail"), max_length=300, blank=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)
    read_at = models.DateTimeField(_("read at"), null=True, blank=True)

    class Meta:
        verbose_name = _("single message")
        verbose_name_plural = _("single messages")

    def __str__(self) -> str:
        return f"→ {self.to}: {self.text[:40]}"


class SandboxMessage(models.Model):
    """A chat bubble on a simulated phone (the sandbox messenger). `address` is the phone."""

    class Direction(models.TextChoices):
        TO_PHONE = "out", _("to the phone")
        FROM_PHONE = "in", _("from the phone")

    connection = models.ForeignKey(
        Connection, verbose_name=_("connection"), on_delete=models.CASCADE, related_name="sandbox_messages"
    )
    address = models.CharField(_("address"), max_length=64, db_index=True)
    direction = models.CharField(_("direction"), max_length=3, choices=Direction.choices)
    text = models.TextField(_("text"), blank=True)
    media_url = models.CharField(_("media URL"), max_length=500, blank=True)
    media_kind = models.CharField(_("media type"), max_length=10, blank=True)
    buttons = models.JSONField(_("buttons"), default=list, blank=True)
    provider_message_id = models.CharField(_("provider message ID"), max_length=64, unique=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    read_at = models.DateTimeField(_("read at"), null=True, blank=True)

    class Meta:
        verbose_name = _("sandbox message")
        verbose_name_plural = _("sandbox messages")
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.direction} {self.address}: {self.text[:40]}"


class RateBucket(models.Model):
    """Shared pacing state per connection (messengers.ratelimit, PostgreSQL backend): the
    theoretical arrival time of the next free send slot, updated atomically by every worker."""

    connection = models.OneToOneField(
        Connection, verbose_name=_("connection"), on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    tat = models.DateTimeField(_("theoretical arrival time"))

    class Meta:
        verbose_name = _("rate bucket")
        verbose_name_plural = _("rate buckets")

    def __str__(self) -> str:
        return f"{self.connection_id}: {self.tat.isoformat()}"


# Outgoing webhooks live in their own module of this app (messengers.outgoing); imported here so
# Django finds them.
from messengers.outgoing.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint  # noqa: E402, F401
