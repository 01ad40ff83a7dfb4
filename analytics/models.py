"""Roll-ups: figures computed from the detailed data, written where the readers need them.

TenantRollup lives in the public schema (analytics is a shared app): each tenant's figures for
the operator overview and /metrics, so cross-tenant numbers never need cross-schema joins.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from tenants.models import Tenant


class TenantRollup(models.Model):
    """Per-tenant figures written by a task running inside each tenant, read by the operator
    overview. Cross-tenant numbers come from here, never from cross-schema joins."""

    schema_scope = "public"  # core.routers: no table in tenant schemas (analytics is in both app lists)

    tenant = models.OneToOneField(Tenant, verbose_name=_("tenant"), on_delete=models.CASCADE, related_name="rollup")
    computed_at = models.DateTimeField(_("computed at"))
    metrics = models.JSONField(_("figures"), default=dict)

    class Meta:
        verbose_name = _("tenant figures")
        verbose_name_plural = _("tenant figures")

    def __str__(self) -> str:
        return f"{self.tenant_id} @ {self.computed_at:%Y-%m-%d %H:%M}"


# --------------------------------------------------------------------------------------------
# Tenant schemas: per channel per day, folded from the consent ledger (analytics.rollups.channels)
# --------------------------------------------------------------------------------------------
class ChannelDay(models.Model):
    """One channel on one day (in the tenant's time zone): who joined, who left, and how many
    subscribed at the day's end. Only days on which something happened have a row; a day
    without one carries the previous row's figures.

    Written by analytics.rollups.channels only; the definitions are in its docstring."""

    schema_scope = "tenant"  # core.routers: no table in public (channels live in tenant schemas)

    channel = models.ForeignKey(
        "channels.Channel", verbose_name=_("channel"), on_delete=models.CASCADE, related_name="+"
    )
    day = models.DateField(_("day"))
    joins = models.PositiveIntegerField(_("joined"), default=0)
    leaves = models.PositiveIntegerField(_("left"), default=0)
    # at the end of the day (running sum of joins - leaves over every earlier day)
    subscribers = models.IntegerField(_("subscribers"), default=0)
    # {source: joins} (subscribers.models.Source values)
    joins_by_source = models.JSONField(_("joins by source"), default=dict)
    # {poster code: joins} for sign-ups through a QR poster
    joins_by_poster = models.JSONField(_("joins by poster"), default=dict)
    # {messenger: joins - leaves} of this day, by the messenger the person joined through ("" unknown)
    net_by_messenger = models.JSONField(_("change by messenger"), default=dict)
    # {messenger: subscribers} at the end of the day (running sum of net_by_messenger)
    subscribers_by_messenger = models.JSONField(_("subscribers by messenger"), default=dict)

    class Meta:
        verbose_name = _("channel day")
        verbose_name_plural = _("channel days")
        constraints = [models.UniqueConstraint(fields=["channel", "day"], name="channel_day_unique")]

    def __str__(self) -> str:
        return f"{self.channel_id} {self.day}"


class ChannelRollupState(models.Model):
    """How far the channel roll-up has read the consent ledger (one row per tenant schema).

    `last_event_id` is the highest ConsentEvent id folded; `gaps` are ids below it that were
    missing when it ran ([[first, last], …]: transactions still open then, or rolled back),
    looked at again on each run until they turn up or expire."""

    schema_scope = "tenant"  # core.routers

    last_event_id = models.BigIntegerField(_("last consent event"), default=0)
    gaps = models.JSONField(_("gaps"), default=list)
    folded_at = models.DateTimeField(_("folded at"), null=True, blank=True)

    class Meta:
        verbose_name = _("channel roll-up state")
        verbose_name_plural = _("channel roll-up states")

    def __str__(self) -> str:
        return f"≤ {self.last_event_id}"
