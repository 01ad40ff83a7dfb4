"""Channels (topics such as "Feinstaubalarm" or "Verkehr") and the state of alarm channels."""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.validators import RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from core.models import TimeStampedModel

hex_colour = RegexValidator(r"^#[0-9a-fA-F]{6}$", _("Enter a colour as #RRGGBB."))


class Priority(models.TextChoices):
    NORMAL = "normal", _("Normal")
    ALERT = "alert", _("Alert")  # not held by quiet hours; emergency bypass possible


class Channel(TimeStampedModel):
    class AlarmState(models.TextChoices):
        INACTIVE = "inactive", _("Inactive")
        ANNOUNCED = "announced", _("Announced")
        ACTIVE = "active", _("Active")
        ALL_CLEAR = "all_clear", _("All clear")

    name = models.CharField(_("name"), max_length=100)
    slug = models.SlugField(
        _("short name"), max_length=60, unique=True, help_text=_("Used in links and deep links, e.g. feinstaub.")
    )
    description = models.TextField(_("description"), blank=True)
    # Normalised (upper case, no accents/punctuation) keywords, e.g. ["FEINSTAUB", "FEINSTAUBALARM"].
    keywords = ArrayField(models.CharField(max_length=40), verbose_name=_("keywords"), default=list, blank=True)
    icon = models.CharField(_("icon"), max_length=8, blank=True, help_text=_("An emoji, e.g. 🌫️"))
    color = models.CharField(_("colour"), max_length=7, default="#1f4e8c", validators=[hex_colour])
    is_public = models.BooleanField(
        _("public"), default=True, help_text=_("Shown on the subscribe page, the archive and the status widget.")
    )
    is_active = models.BooleanField(_("active"), default=True)
    requires_approval = models.BooleanField(_("approval required"), default=True)
    connections = models.ManyToManyField(
        "messengers.Connection", verbose_name=_("carried by"), related_name="channels", blank=True
    )
    default_priority = models.CharField(
        _("default priority"), max_length=8, choices=Priority.choices, default=Priority.NORMAL
    )
    welcome_text_de = models.TextField(_("welcome text (German)"), blank=True)
    welcome_text_en = models.TextField(_("welcome text (English)"), blank=True)
    position = models.PositiveSmallIntegerField(_("position"), default=0)

    is_alarm = models.BooleanField(_("alarm channel"), default=False)
    alarm_state = models.CharField(
        _("alarm state"), max_length=10, choices=AlarmState.choices, default=AlarmState.INACTIVE
    )
    alarm_state_changed_at = models.DateTimeField(_("alarm state since"), null=True, blank=True)
    # Standard texts proposed as drafts when the alarm state changes (issue: broadcasts).
    alarm_text_start = models.TextField(_("text when the alarm starts"), blank=True)
    alarm_text_update = models.TextField(_("text for an update"), blank=True)
    alarm_text_end = models.TextField(_("text for the all-clear"), blank=True)

    class Meta:
        verbose_name = _("channel")
        verbose_name_plural = _("channels")
        ordering = ["position", "name"]
        permissions = [("change_alarm_state", _("Can change the alarm state of an alarm channel"))]

    def __str__(self) -> str:
        return self.name

    def welcome_text(self, language: str) -> str:
        return (self.welcome_text_en if language == "en" else self.welcome_text_de) or self.welcome_text_de


class AlarmStateChange(models.Model):
    """History of an alarm channel's state: who changed it, when, from what to what."""

    channel = models.ForeignKey(
        Channel, verbose_name=_("channel"), on_delete=models.CASCADE, related_name="alarm_history"
    )
    from_state = models.CharField(_("previous state"), max_length=10, choices=Channel.AlarmState.choices)
    to_state = models.CharField(_("new state"), max_length=10, choices=Channel.AlarmState.choices)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("changed by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    changed_by_label = models.CharField(
        _("changed by (name)"), max_length=200, blank=True
    )  # "api:sensor-network", a user name …
    note = models.CharField(_("note"), max_length=300, blank=True)
    at = models.DateTimeField(_("time"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("alarm state change")
        verbose_name_plural = _("alarm state changes")
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.channel_id}: {self.from_state} → {self.to_state}"
