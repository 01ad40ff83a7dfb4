"""People who subscribed, what to, and the proof that they agreed (consent ledger).

A Subscriber is a person; they are reachable through one messengers.Contact per connection
(WhatsApp number, Telegram chat, e-mail address …, linked by Contact.subscriber). A
Subscription ties them to a channel. Every opt-in, confirmation, opt-out and erasure is a
ConsentEvent, which is append-only and survives erasure without identifiers.
"""

from __future__ import annotations

import secrets

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from core.models import TimeStampedModel


def new_link_secret() -> str:
    return secrets.token_urlsafe(12)


class Source(models.TextChoices):
    """How a subscription (or consent) came about."""

    KEYWORD = "keyword", _("Keyword")
    DEEP_LINK = "deep_link", _("Deep link")
    QR = "qr", _("QR poster")
    WIDGET = "widget", _("Widget")
    WEB_FORM = "web_form", _("Web form")
    IMPORT = "import", _("Import")
    API = "api", _("API")
    ADMIN = "admin", _("Admin")
    # The messenger itself said so: the person blocked the bot, or the provider's own opt-out.
    MESSENGER = "messenger", _("Messenger (blocked)")


class Language(models.TextChoices):
    DE = "de", _("German")
    EN = "en", _("English")
    EASY = "de-ls", _("German (Leichte Sprache)")


class District(models.Model):
    """A tenant-defined area for targeting (Stuttgart's Stadtbezirke, a bus depot's lines …)."""

    name = models.CharField(_("name"), max_length=100)
    slug = models.SlugField(_("short name"), max_length=60, unique=True)
    # normalised forms a person may type after BEZIRK (e.g. "BAD CANNSTATT", "CANNSTATT")
    aliases = ArrayField(models.CharField(max_length=60), verbose_name=_("also known as"), default=list, blank=True)
    position = models.PositiveSmallIntegerField(_("position"), default=0)

    class Meta:
        verbose_name = _("district")
        verbose_name_plural = _("districts")
        ordering = ["position", "name"]

    def __str__(self) -> str:
        return self.name


class Subscriber(TimeStampedModel):
    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        ERASED = "erased", _("Erased")  # personal data removed; row kept for aggregate counts

    name = models.CharField(_("name"), max_length=200, blank=True)
    language = models.CharField(_("language"), max_length=8, choices=Language.choices, default=Language.DE)
    district = models.ForeignKey(
        District,
        verbose_name=_("district"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="subscribers",
    )
    tags = ArrayField(models.CharField(max_length=40), verbose_name=_("interests"), default=list, blank=True)
    status = models.CharField(_("status"), max_length=8, choices=Status.choices, default=Status.ACTIVE)
    erased_at = models.DateTimeField(_("erased"), null=True, blank=True)
    # Part of every signed preference / unsubscribe link; replacing it revokes all old links.
    link_secret = models.CharField(_("link secret"), max_length=32, default=new_link_secret, editable=False)
    # Idempotent imports: (import key) identifies the row a person came from.
    external_ref = models.CharField(_("external reference"), max_length=120, blank=True, db_index=True)

    class Meta:
        verbose_name = _("subscriber")
        verbose_name_plural = _("subscribers")
        permissions = [
            ("import_subscribers", _("Can import subscribers")),
            ("export_subscribers", _("Can export the subscribers of a channel")),
            ("gdpr_subscriber", _("Can export or erase a person's data (GDPR)")),
        ]
        indexes = [
            GinIndex(fields=["tags"], name="subscriber_tags_gin"),
            models.Index(fields=["language", "district"], name="subscriber_targeting_idx"),
            # admin search by name (word beginnings), built in to PostgreSQL: no extension needed
            GinIndex(SearchVector("name", config="simple"), name="subscriber_name_search"),
        ]

    def __str__(self) -> str:
        return self.name or f"#{self.pk}"


class Subscription(TimeStampedModel):
    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting for confirmation")  # double opt-in e-mail sent
        ACTIVE = "active", _("Active")
        UNSUBSCRIBED = "unsubscribed", _("Unsubscribed")

    subscriber = models.ForeignKey(
        Subscriber, verbose_name=_("subscriber"), on_delete=models.CASCADE, related_name="subscriptions", db_index=False
    )
    channel = models.ForeignKey(
        "channels.Channel", verbose_name=_("channel"), on_delete=models.CASCADE, related_name="subscriptions"
    )
    status = models.CharField(_("status"), max_length=14, choices=Status.choices, default=Status.ACTIVE)
    source = models.CharField(_("source"), max_length=12, choices=Source.choices)
    source_detail = models.CharField(_("source detail"), max_length=120, blank=True)  # poster code, import id …
    subscribed_at = models.DateTimeField(_("subscribed"))
    confirmed_at = models.DateTimeField(_("confirmed"), null=True, blank=True)
    unsubscribed_at = models.DateTimeField(_("unsubscribed"), null=True, blank=True)

    class Meta:
        verbose_name = _("subscription")
        verbose_name_plural = _("subscriptions")
        constraints = [
            models.UniqueConstraint(fields=["subscriber", "channel"], name="subscription_unique"),
        ]
        indexes = [
            # fan-out: active subscribers of a channel, in subscriber order (keyset pagination)
            models.Index(
                fields=["channel", "subscriber"], name="subscription_active_idx", condition=models.Q(status="active")
            ),
        ]

    def __str__(self) -> str:
        return f"{self.subscriber_id} → {self.channel_id} ({self.status})"


class ConsentText(models.Model):
    """A version of the text a person agrees to when subscribing (per channel and language)."""

    channel = models.ForeignKey(
        "channels.Channel",
        verbose_name=_("channel"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="consent_texts",
        db_index=False,
    )
    language = models.CharField(_("language"), max_length=8, choices=Language.choices, default=Language.DE)
    version = models.PositiveIntegerField(_("version"), default=1)
    text = models.TextField(_("text"))
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("consent text")
        verbose_name_plural = _("consent texts")
        constraints = [
            models.UniqueConstraint(fields=["channel", "language", "version"], name="consent_text_version_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.channel_id or 'all'} {self.language} v{self.version}"


class ConsentEvent(models.Model):
    """Append-only consent ledger. After an erasure the person's events lose their identifiers
    (subscriber and evidence are cleared) but stay countable."""

    class Kind(models.TextChoices):
        OPT_IN = "opt_in", _("Opt-in")
        CONFIRMATION = "confirmation", _("Confirmation")  # double opt-in click
        OPT_OUT = "opt_out", _("Opt-out")
        ERASURE = "erasure", _("Erasure")

    subscriber = models.ForeignKey(
        Subscriber,
        verbose_name=_("subscriber"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="consent_events",
    )
    channel = models.ForeignKey(
        "channels.Channel",
        verbose_name=_("channel"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="consent_events",
    )  # null: every channel
    kind = models.CharField(_("kind"), max_length=12, choices=Kind.choices)
    source = models.CharField(_("source"), max_length=12, choices=Source.choices)
    source_detail = models.CharField(_("source detail"), max_length=120, blank=True)
    at = models.DateTimeField(_("at"), db_index=True)
    consent_text = models.ForeignKey(
        ConsentText, verbose_name=_("consent text"), null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # Evidence: the provider message id of the keyword message, the confirmed e-mail token's hash,
    # the import file and row. Cleared on erasure.
    evidence = models.CharField(_("evidence"), max_length=300, blank=True)
    connection = models.ForeignKey(
        "messengers.Connection",
        verbose_name=_("connection"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # Party tenants: explicit consent to processing political opinion (GDPR Art. 9(2)(a)).
    explicit = models.BooleanField(_("explicit consent"), default=False)

    class Meta:
        verbose_name = _("consent event")
        verbose_name_plural = _("consent ledger")
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.kind} {self.subscriber_id or '-'} {self.channel_id or '*'}"


class Poster(TimeStampedModel):
    """A printed QR poster; its code travels in the keyword / deep link so sign-ups are attributed."""

    code = models.CharField(_("code"), max_length=12, unique=True)
    channel = models.ForeignKey(
        "channels.Channel", verbose_name=_("channel"), on_delete=models.CASCADE, related_name="posters"
    )
    provider = models.CharField(_("messenger"), max_length=16)
    label = models.CharField(_("label"), max_length=120, blank=True, help_text=_("Where it hangs, e.g. Hbf Gleis 1"))

    class Meta:
        verbose_name = _("poster")
        verbose_name_plural = _("posters")

    def __str__(self) -> str:
        return f"{self.code} ({self.label or self.channel_id})"


class EmailConfirmation(models.Model):
    """Double opt-in for e-mail: consent counts only from the click on the link we mailed."""

    token_sha256 = models.CharField(_("token (SHA-256)"), max_length=64, unique=True)
    subscriber = models.ForeignKey(
        Subscriber, verbose_name=_("subscriber"), on_delete=models.CASCADE, related_name="email_confirmations"
    )
    contact = models.ForeignKey(
        "messengers.Contact", verbose_name=_("contact"), on_delete=models.CASCADE, related_name="+"
    )
    channel_ids = ArrayField(models.BigIntegerField(), default=list)
    source = models.CharField(_("source"), max_length=12, choices=Source.choices, default=Source.WEB_FORM)
    source_detail = models.CharField(_("source detail"), max_length=120, blank=True)
    language = models.CharField(_("language"), max_length=8, choices=Language.choices, default=Language.DE)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    expires_at = models.DateTimeField(_("expires at"))
    confirmed_at = models.DateTimeField(_("confirmed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("e-mail confirmation")
        verbose_name_plural = _("e-mail confirmations")

    def __str__(self) -> str:
        return f"{self.subscriber_id} {'confirmed' if self.confirmed_at else 'pending'}"


class SubscriberImport(models.Model):
    """One uploaded CSV/XLSX file and how its import went (progress, counts, rejected rows).

    The file itself is kept in the database (workers on other machines can read it) only until
    the import has finished: it holds personal data and is not needed afterwards."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("Waiting")
        RUNNING = "running", _("Importing")
        DONE = "done", _("Finished")
        FAILED = "failed", _("Failed")

    class Format(models.TextChoices):
        CSV = "csv", "CSV"
        XLSX = "xlsx", "XLSX"

    created_at = models.DateTimeField(_("uploaded"), auto_now_add=True, db_index=True)
    # A label, not a foreign key: imports outlive staff accounts.
    created_by_label = models.CharField(_("uploaded by"), max_length=200, blank=True)
    filename = models.CharField(_("file"), max_length=255)
    file_format = models.CharField(_("format"), max_length=4, choices=Format.choices)
    file_sha256 = models.CharField(_("file (SHA-256)"), max_length=64)
    data = models.BinaryField(_("data"), default=bytes, editable=False)
    default_channel_ids = ArrayField(models.BigIntegerField(), default=list, blank=True)
    consent_text = models.ForeignKey(
        ConsentText, verbose_name=_("consent text"), null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # Party tenants: the uploader confirmed that the consent in the file is explicit (GDPR Art. 9).
    explicit_consent = models.BooleanField(_("explicit consent"), default=False)
    status = models.CharField(_("status"), max_length=8, choices=Status.choices, default=Status.QUEUED)
    total_rows = models.PositiveIntegerField(_("rows"), null=True, blank=True)
    processed_rows = models.PositiveIntegerField(_("processed"), default=0)
    subscribers_created = models.PositiveIntegerField(_("new people"), default=0)
    subscribers_matched = models.PositiveIntegerField(_("known people"), default=0)
    subscriptions_created = models.PositiveIntegerField(_("new subscriptions"), default=0)
    rows_rejected = models.PositiveIntegerField(_("rejected rows"), default=0)
    # [{"row": 7, "column": "consent_date", "message": "..."}], at most MAX_IMPORT_ERRORS entries
    errors = models.JSONField(_("errors"), default=list, blank=True)
    failure = models.CharField(_("failure"), max_length=500, blank=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    # Last sign of life (uploaded, claimed, a chunk written): housekeeping fails a job whose
    # heartbeat is older than IMPORT_STALL_SECONDS (its task was lost or its worker died).
    heartbeat_at = models.DateTimeField(_("last sign of life"), default=timezone.now, editable=False)
    # The uploader's language: the worker writes the failure message in it.
    language = models.CharField(_("language"), max_length=16, blank=True, editable=False)

    class Meta:
        verbose_name = _("import")
        verbose_name_plural = _("imports")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.filename} ({self.get_status_display()})"

    @property
    def progress_percent(self) -> int:
        if self.status == self.Status.DONE:
            return 100
        if not self.total_rows:
            return 0
        return min(100, int(self.processed_rows * 100 / self.total_rows))


class TextOverride(TimeStampedModel):
    """A tenant's own wording of one citizen-facing text (subscribers.texts), in one language,
    for every channel or for one. The built-in text is used where there is none."""

    key = models.CharField(_("text"), max_length=40)
    language = models.CharField(
        _("language"), max_length=2, choices=[("de", _("German")), ("en", _("English"))], default="de"
    )
    channel = models.ForeignKey(
        "channels.Channel", null=True, blank=True, on_delete=models.CASCADE, related_name="+",
        verbose_name=_("channel"), help_text=_("Empty: for every channel."),
    )  # fmt: skip
    text = models.TextField(_("wording"))

    class Meta:
        verbose_name = _("citizen text")
        verbose_name_plural = _("citizen texts")
        ordering = ["key", "language", "channel_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["key", "language", "channel"], name="text_override_once_per_channel",
                condition=models.Q(channel__isnull=False),
            ),
            models.UniqueConstraint(
                fields=["key", "language"], name="text_override_once_per_tenant", condition=models.Q(channel__isnull=True)
            ),
        ]  # fmt: skip

    def __str__(self) -> str:
        return f"{self.get_language_display()}: {' '.join(self.text.split())[:60]}"
