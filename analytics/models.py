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


class BroadcastStats(models.Model):
    """One broadcast's figures, folded from its Delivery rows, clicks and the consent ledger by
    analytics.rollups.broadcasts (the broadcast page and the comparison list read only this).

    Counts are of recipients (Delivery rows): `sent` left us (sent_at set), `delivered` and `read`
    by their final status, `read_15min` read at most 15 minutes after it was sent to them.
    `unique_clicks` is None when the tenant tracks clicks only in aggregate (no per-person
    clicks exist); `clicks` counts every counted click in either mode."""

    schema_scope = "tenant"  # core.routers: points at broadcasts, which exists only in tenant schemas

    broadcast = models.OneToOneField(
        "broadcasts.Broadcast",
        verbose_name=_("broadcast"),
        primary_key=True,
        on_delete=models.CASCADE,
        related_name="stats",
    )
    computed_at = models.DateTimeField(_("computed at"))
    # no open rows and the broadcast is over: only a marked change computes it again
    settled = models.BooleanField(_("settled"), default=False)
    recipients = models.PositiveIntegerField(_("recipients"), default=0)
    sent = models.PositiveIntegerField(_("sent"), default=0)
    delivered = models.PositiveIntegerField(_("delivered"), default=0)
    read = models.PositiveIntegerField(_("read"), default=0)
    read_15min = models.PositiveIntegerField(_("read within 15 minutes"), default=0)
    failed = models.PositiveIntegerField(_("failed"), default=0)
    skipped = models.PositiveIntegerField(_("skipped"), default=0)
    clicks = models.PositiveIntegerField(_("clicks"), default=0)
    unique_clicks = models.PositiveIntegerField(_("people who clicked"), null=True, blank=True)
    unsubscribes = models.PositiveIntegerField(_("unsubscribes within 24 hours"), default=0)
    # the last send to a recipient; unsubscribes are counted until 24 hours after it
    last_sent_at = models.DateTimeField(_("last sent at"), null=True, blank=True)
    unsubscribes_settled = models.BooleanField(_("unsubscribes final"), default=False)
    cost_eur = models.DecimalField(_("cost (EUR)"), max_digits=12, decimal_places=2, default=0)
    # [{"status": "failed"|"skipped", "provider": "whatsapp", "kind": "blocked", "count": 3}, …]
    failures = models.JSONField(_("failures by reason and messenger"), default=list)
    # rows by status {"sent": …, "read": …}, and those re-sent after a worker died
    by_status = models.JSONField(_("recipients by status"), default=dict)
    possible_duplicates = models.PositiveIntegerField(_("possible duplicates"), default=0)
    # what went out (broadcasts.selectors.broadcast_sent_content reads it for a settled broadcast):
    # [[provider, demo look, language, use template, count], …] of the rows sent, delivered or read
    went_out = models.JSONField(_("what went out"), default=list)
    # {"whatsapp": {"recipients": …, "sent": …, "delivered": …, "read": …, "failed": …}, …}
    by_provider = models.JSONField(_("by messenger"), default=dict)
    # {"bucket_minutes": 15, "delivered": [cumulative per bucket …], "read": […], "clicked": […] or None}
    timeline = models.JSONField(_("timeline"), default=dict)

    class Meta:
        verbose_name = _("broadcast figures")
        verbose_name_plural = _("broadcast figures")

    def __str__(self) -> str:
        return f"{self.broadcast_id} @ {self.computed_at:%Y-%m-%d %H:%M}"


class BroadcastStatsMark(models.Model):
    """A broadcast whose figures changed since the last fold (written on the status path and by
    clicks, one row per broadcast and transaction; the fold deletes what it takes). No foreign
    key and no index: an insert here costs as little as an insert can."""

    schema_scope = "tenant"

    id = models.BigAutoField(primary_key=True)
    broadcast_id = models.BigIntegerField(_("broadcast"))

    class Meta:
        verbose_name = _("changed broadcast")
        verbose_name_plural = _("changed broadcasts")

    def __str__(self) -> str:
        return str(self.broadcast_id)


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
        "channels.Channel", verbose_name=_("channel"), on_delete=models.CASCADE, related_name="+", db_index=False
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
