"""Users (operators in `public`, staff in each tenant schema) and the audit log."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractUser
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
