"""Broadcasts (what the online team writes), their approval workflow, and one Delivery row per
recipient: the database is the source of truth for what has been sent to whom."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from channels.models import Priority
from core.models import TimeStampedModel
from messengers.models import error_kind_choices
from subscribers.models import Language


def delivery_error_kind_choices() -> list[tuple[str, Any]]:
    """Why a delivery failed or was skipped: the provider's error kinds and the pipeline's own."""
    return [
        *error_kind_choices(),
        ("cancelled", _("Broadcast cancelled")),
        ("opted_out", _("Unsubscribed in the meantime")),
    ]


class Broadcast(TimeStampedModel):
    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        SUBMITTED = "submitted", _("Waiting for approval")
        APPROVED = "approved", _("Approved")
        REJECTED = "rejected", _("Rejected")
        SCHEDULED = "scheduled", _("Scheduled")
        SENDING = "sending", _("Sending")
        PAUSED = "paused", _("Paused")
        SENT = "sent", _("Sent")
        CANCELLED = "cancelled", _("Cancelled")

    title = models.CharField(_("internal title"), max_length=200)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.DRAFT, db_index=True)
    priority = models.CharField(_("priority"), max_length=8, choices=Priority.choices, default=Priority.NORMAL)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("author"), null=True, on_delete=models.SET_NULL, related_name="+"
    )

    # targeting: channels × districts × languages × tags (an empty list means "all")
    channels = models.ManyToManyField("channels.Channel", verbose_name=_("channels"), related_name="broadcasts")
    districts = models.ManyToManyField(
        "subscribers.District", verbose_name=_("districts"), blank=True, related_name="+"
    )
    languages = ArrayField(
        models.CharField(max_length=8, choices=Language.choices), verbose_name=_("languages"), default=list, blank=True
    )
    tags = ArrayField(models.CharField(max_length=40), verbose_name=_("interests"), default=list, blank=True)

    media = models.FileField(_("image or video"), upload_to="broadcasts/", blank=True)
    media_kind = models.CharField(_("media type"), max_length=8, blank=True)  # image / video, set on upload
    buttons = models.JSONField(_("link buttons"), default=list, blank=True)  # [{"title": …, "url": …}]
    # WhatsApp outside the 24-hour window: an approved template of this name/language on each
    # WhatsApp connection, with these body parameters.
    wa_template_name = models.CharField(_("WhatsApp template"), max_length=512, blank=True)
    wa_template_language = models.CharField(_("template language"), max_length=16, blank=True)
    wa_template_params = ArrayField(
        models.CharField(max_length=1024), verbose_name=_("template parameters"), default=list, blank=True
    )

    scheduled_at = models.DateTimeField(
        _("send at"), null=True, blank=True, help_text=_("Empty: send as soon as it is approved.")
    )
    submitted_at = models.DateTimeField(_("submitted at"), null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("approved by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    approved_at = models.DateTimeField(_("approved at"), null=True, blank=True)
    approved_content_hash = models.CharField(
        _("approved content (hash)"), max_length=64, blank=True
    )  # frozen content at approval
    # +1 on every change of content or targeting: an approval is for the revision the approver read
    revision = models.PositiveIntegerField(_("revision"), default=1)
    rejection_comment = models.TextField(_("rejection comment"), blank=True)
    # Emergency bypass on alert channels: sent without approval, reviewed afterwards.
    bypassed_approval = models.BooleanField(_("sent without approval"), default=False)
    bypassed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("sent without approval by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    needs_review = models.BooleanField(_("needs review"), default=False, db_index=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("reviewed by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    reviewed_at = models.DateTimeField(_("reviewed at"), null=True, blank=True)
    review_comment = models.TextField(_("review comment"), blank=True)
    # Set when an alarm state change proposed this draft.
    alarm_channel = models.ForeignKey(
        "channels.Channel",
        verbose_name=_("alarm channel"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    # delivery bookkeeping
    fanout_cursor = models.BigIntegerField(_("recipient list position"), default=0)  # last subscriber id materialised
    fanout_done = models.BooleanField(_("recipient list complete"), default=False)
    recipients_total = models.PositiveIntegerField(_("recipients in total"), default=0)
    send_started_at = models.DateTimeField(_("sending started at"), null=True, blank=True)
    send_finished_at = models.DateTimeField(_("sending finished at"), null=True, blank=True)
    paused_reason = models.CharField(_("reason for pause"), max_length=300, blank=True)

    class Meta:
        verbose_name = _("broadcast")
        verbose_name_plural = _("broadcasts")
        ordering = ["-created_at"]
        permissions = [
            ("approve_broadcast", _("Can approve or reject broadcasts")),
            ("send_without_approval", _("Can send alert broadcasts without approval (emergency)")),
            ("control_sending", _("Can pause, resume and cancel sending")),
            ("review_broadcast", _("Can review broadcasts sent without approval")),
        ]

    def __str__(self) -> str:
        return self.title


class BroadcastVariant(models.Model):
    """The text of a broadcast in one language (German, English, Leichte Sprache)."""

    broadcast = models.ForeignKey(
        Broadcast, verbose_name=_("broadcast"), on_delete=models.CASCADE, related_name="variants", db_index=False
    )
    language = models.CharField(_("language"), max_length=8, choices=Language.choices)
    body = models.TextField(_("text"))
    subject = models.CharField(_("e-mail subject"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("text")
        verbose_name_plural = _("texts")
        constraints = [models.UniqueConstraint(fields=["broadcast", "language"], name="variant_unique_language")]

    def __str__(self) -> str:
        return f"{self.broadcast_id} [{self.language}]"


class BroadcastEdit(models.Model):
    """One change of a broadcast's content or targeting: who, when, in which state, and what.

    The four-eyes rule reads these rows (broadcasts.selectors.broadcast_contributors): nobody
    who wrote or changed a broadcast may approve it or review its emergency bypass. A save that
    changes nothing writes no row; neither does a change of when it goes out."""

    class Aspect(models.TextChoices):
        TITLE = "title", _("internal title")
        PRIORITY = "priority", _("priority")
        TEXT = "text", _("text")
        CHANNELS = "channels", _("channels")
        DISTRICTS = "districts", _("districts")
        LANGUAGES = "languages", _("languages")
        TAGS = "tags", _("interests")
        MEDIA = "media", _("image or video")
        BUTTONS = "buttons", _("link buttons")
        TEMPLATE = "template", _("WhatsApp template")

    broadcast = models.ForeignKey(
        Broadcast, verbose_name=_("broadcast"), on_delete=models.CASCADE, related_name="edits"
    )
    # None: the system. A future API key acting for a person is recorded as that person.
    editor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("editor"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    at = models.DateTimeField(_("time"), default=timezone.now)
    status = models.CharField(_("status"), max_length=10, choices=Broadcast.Status.choices)  # when it was changed
    revision = models.PositiveIntegerField(_("revision"))  # the revision this change produced
    changed = ArrayField(models.CharField(max_length=12, choices=Aspect.choices))

    class Meta:
        verbose_name = _("change of a broadcast")
        verbose_name_plural = _("changes of broadcasts")
        ordering = ["broadcast", "revision"]

    def __str__(self) -> str:
        return f"{self.broadcast_id} r{self.revision}: {', '.join(self.changed)}"


class Delivery(models.Model):
    """One recipient of one broadcast. Unique per (broadcast, subscriber), so fan-out can run
    again safely and a person subscribed to several targeted channels gets the message once.

    Life: queued → claimed (a batch owns it, under a lease) → sending (request in flight) →
    sent → delivered → read, or failed (permanent, with the reason), or back to queued with a
    later next_attempt_at (retryable error), or skipped (opted out / blocked before sending)."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        CLAIMED = "claimed", _("Claimed")
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        DELIVERED = "delivered", _("Delivered")
        READ = "read", _("Read")
        FAILED = "failed", _("Failed")
        SKIPPED = "skipped", _("Skipped")

    # no index of its own: the unique key (broadcast, subscriber) serves look-ups by broadcast
    broadcast = models.ForeignKey(
        Broadcast, verbose_name=_("broadcast"), on_delete=models.CASCADE, related_name="deliveries", db_index=False
    )
    subscriber = models.ForeignKey(
        "subscribers.Subscriber", verbose_name=_("subscriber"), null=True, on_delete=models.SET_NULL, related_name="+"
    )
    contact = models.ForeignKey(
        "messengers.Contact", verbose_name=_("contact"), null=True, on_delete=models.SET_NULL, related_name="+"
    )
    connection = models.ForeignKey(
        "messengers.Connection", verbose_name=_("connection"), on_delete=models.CASCADE, related_name="+"
    )
    language = models.CharField(_("language"), max_length=8)
    use_template = models.BooleanField(
        _("use template"), default=False
    )  # WhatsApp recipient outside the 24-hour window
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt at"))
    lease_expires_at = models.DateTimeField(_("lease expires at"), null=True, blank=True)
    claimed_by = models.CharField(_("claimed by"), max_length=64, blank=True)
    provider_message_id = models.CharField(_("provider message ID"), max_length=200, blank=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)
    read_at = models.DateTimeField(_("read at"), null=True, blank=True)
    error_kind = models.CharField(_("error kind"), max_length=24, blank=True, choices=delivery_error_kind_choices)
    error_code = models.CharField(_("error code"), max_length=40, blank=True)
    error_detail = models.CharField(_("error detail"), max_length=300, blank=True)
    # Re-queued after a worker died while its request may have been in flight: the person may
    # get this message twice (at-least-once towards providers). Logged and counted.
    possible_duplicate = models.BooleanField(_("possible duplicate"), default=False)

    class Meta:
        verbose_name = _("delivery")
        verbose_name_plural = _("deliveries")
        constraints = [
            models.UniqueConstraint(fields=["broadcast", "subscriber"], name="delivery_unique_recipient"),
        ]
        # Every index costs a write on each status change (five per recipient), so there are only
        # those the pipeline needs: ready rows, expiring leases, status webhooks by provider id.
        # Progress counts read the (broadcast, subscriber) unique index.
        indexes = [
            models.Index(
                fields=["broadcast", "next_attempt_at", "id"],
                name="delivery_ready_idx",
                condition=models.Q(status="queued"),
            ),
            models.Index(
                fields=["lease_expires_at"],
                name="delivery_lease_idx",
                condition=models.Q(status__in=["claimed", "sending"]),
            ),
            models.Index(
                fields=["connection", "provider_message_id"],
                name="delivery_provider_id_idx",
                condition=~models.Q(provider_message_id=""),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.broadcast_id}/{self.subscriber_id}: {self.get_status_display()}"


class TrackedLink(models.Model):
    """A link of a broadcast; recipients get /l/<token> (signed) that records the click."""

    broadcast = models.ForeignKey(
        Broadcast, verbose_name=_("broadcast"), on_delete=models.CASCADE, related_name="links", db_index=False
    )
    position = models.PositiveSmallIntegerField(_("position"))
    url = models.URLField(_("URL"), max_length=2000)
    clicks = models.PositiveIntegerField(_("clicks"), default=0)  # every counted click, also in aggregate-only mode

    class Meta:
        verbose_name = _("tracked link")
        verbose_name_plural = _("tracked links")
        constraints = [models.UniqueConstraint(fields=["broadcast", "position"], name="link_unique_position")]

    def __str__(self) -> str:
        return self.url


class LinkClick(models.Model):
    """Per-recipient click (only when the tenant tracks per recipient)."""

    link = models.ForeignKey(
        TrackedLink, verbose_name=_("link"), on_delete=models.CASCADE, related_name="recipient_clicks"
    )
    delivery = models.ForeignKey(
        Delivery, verbose_name=_("delivery"), null=True, on_delete=models.SET_NULL, related_name="+"
    )
    at = models.DateTimeField(_("time"), auto_now_add=True)

    class Meta:
        verbose_name = _("link click")
        verbose_name_plural = _("link clicks")

    def __str__(self) -> str:
        return f"{self.link_id} @ {self.at:%Y-%m-%d %H:%M}"


class SenderLease(models.Model):
    """One queued or running sender task of a broadcast. The tick keeps at most
    settings.BROADCAST_SENDERS of them per broadcast; a lease whose heartbeat stops (its worker
    died, or the queue lost the task) expires and its slot is handed out again."""

    broadcast = models.ForeignKey(
        Broadcast, verbose_name=_("broadcast"), on_delete=models.CASCADE, related_name="sender_leases"
    )
    token = models.CharField(_("token"), max_length=32, unique=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    heartbeat_at = models.DateTimeField(_("last sign of life"))
    started = models.BooleanField(_("sender started"), default=False)

    class Meta:
        verbose_name = _("sender lease")
        verbose_name_plural = _("sender leases")

    def __str__(self) -> str:
        return f"{self.broadcast_id}:{self.token}"
