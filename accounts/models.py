"""Users (operators in `public`, staff in each tenant schema) and the audit log."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.contrib.postgres.fields import ArrayField
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from core.audit import audit_action_choices


class User(AbstractUser):
    language = models.CharField(
        _("language"),
        max_length=8,
        choices=settings.LANGUAGES,
        blank=True,
        help_text=_("Language of the admin for this user; empty uses the tenant's default."),
    )
    # Seeded by `seed_demo`. Only these users may skip two-factor enrolment, and only in DEMO_MODE.
    is_demo = models.BooleanField(_("demo user"), default=False, editable=False)
    # Set when an admin hides the "first steps" list on the admin start page before finishing it.
    first_steps_dismissed_at = models.DateTimeField(_("first steps hidden at"), null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")
        permissions = [("manage_tenant_settings", _("Can change the tenant's branding and defaults"))]


class AuditEvent(models.Model):
    """Append-only record of who did what. Written only through accounts.services.audit_log."""

    at = models.DateTimeField(_("at"), default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("actor"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # Kept even if the user is deleted later: the log must still say who it was.
    actor_label = models.CharField(_("actor name"), max_length=200, blank=True)
    # choices: the labels of core.audit (a callable, so new labels need no migration)
    action = models.CharField(_("action"), max_length=64, db_index=True, choices=audit_action_choices)
    target_type = models.CharField(_("target type"), max_length=64, blank=True)
    target_id = models.CharField(_("target id"), max_length=64, blank=True)
    target_label = models.CharField(_("target"), max_length=300, blank=True)
    details = models.JSONField(_("details"), default=dict, blank=True, encoder=DjangoJSONEncoder)
    ip_address = models.GenericIPAddressField(_("IP address"), null=True, blank=True)

    class Meta:
        verbose_name = _("audit event")
        verbose_name_plural = _("audit log")
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["target_type", "target_id"], name="audit_target_idx")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor_label or '-'} · {self.get_action_display()} · {self.target_label}"


# What an API key may be allowed to do: "<area>:read" lists and reads, "<area>:write" changes,
# "broadcasts:approve" approves and rejects (still only for a user with the approver role).
API_SCOPES = {
    "channels:read": _("Read channels"),
    "channels:write": _("Change alarm states"),
    "subscribers:read": _("Look up subscribers"),
    "subscribers:write": _("Add, import and erase subscribers"),
    "broadcasts:read": _("Read broadcasts"),
    "broadcasts:write": _("Write, submit and control broadcasts"),
    "broadcasts:approve": _("Approve and reject broadcasts"),
    "inbox:read": _("Read the inbox"),
    "inbox:write": _("Reply to, assign and close conversations"),
    "analytics:read": _("Read figures"),
}


class ApiKey(models.Model):
    """A credential for the REST API of one tenant (issue 13). Created by an admin in the tenant's
    admin and shown once; only its SHA-256 is stored (the secret is 256 random bits, so a slow
    password hash would add nothing), with the first characters kept visible to tell keys apart.

    A key acts as the user who created it: that user's roles apply, and the four-eyes rule sees
    that user, so a key can never approve what it (or its user) wrote. Its scopes narrow further
    what it may do."""

    name = models.CharField(_("name"), max_length=100)
    prefix = models.CharField(_("prefix"), max_length=16, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False)
    scopes = ArrayField(models.CharField(max_length=32), verbose_name=_("scopes"), default=list)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("acts as"),
        on_delete=models.CASCADE,
        related_name="api_keys",
        editable=False,
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True, editable=False)
    rate_limit = models.PositiveIntegerField(
        _("requests per minute"), default=120, help_text=_("More requests in a minute are refused with 429.")
    )

    class Meta:
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class IdempotencyRecord(models.Model):
    """The first answer to an API create sent with an `Idempotency-Key` header (R7): a retry
    with the same key and body gets it again, with another body a 409. The unique constraint
    makes concurrent retries wait for the first one's transaction and then replay it."""

    owner = models.CharField(max_length=40)  # "key:<id>" or "user:<id>": keys are per client
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField()
    response = models.JSONField(encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "key"], name="idempotency_owner_key_uniq")]

    def __str__(self) -> str:
        return f"{self.owner} {self.key}"
