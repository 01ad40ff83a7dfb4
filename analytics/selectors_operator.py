"""The operator's per-tenant overview (public admin): each tenant's last figures from the shared
roll-up table, and the figures a tenant adds to it.

`tenant_figures` reads TenantRollup in the public schema only, in one query for every tenant: the
numbers were written by the roll-up task inside each tenant (analytics.services), so the page
never joins or visits a tenant schema. A suspended tenant is no longer rolled up and keeps its
last numbers; so does a tenant whose roll-up failed, shown with the time they are from.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Max
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django_tenants.utils import get_public_schema_name

from accounts.models import User
from analytics.models import TenantRollup
from analytics.selectors import ROLLUP_STALE_AFTER
from broadcasts.models import Broadcast
from channels.models import Channel
from subscribers.models import ConsentEvent
from tenants.models import Tenant


def tenant_activity_rollup() -> dict[str, Any]:
    """Figures of the current tenant for the operator overview (a source of
    analytics.services.tenant_rollup_compute): active channels, and the last time anything
    happened (a consent change, a broadcast starting to send, a staff login), ISO 8601 or None."""
    moments = [
        ConsentEvent.objects.aggregate(at=Max("at"))["at"],
        Broadcast.objects.aggregate(at=Max("send_started_at"))["at"],
        User.objects.aggregate(at=Max("last_login"))["at"],
    ]
    known = [moment for moment in moments if moment is not None]
    return {
        "channels_active": Channel.objects.filter(is_active=True).count(),
        "last_activity_at": max(known).isoformat() if known else None,
    }


@dataclass(frozen=True)
class TenantFigures:
    tenant: Tenant
    computed_at: datetime | None  # None: never rolled up
    subscribers: int | None
    messages_per_day: int | None  # sent in the 24 hours before computed_at
    failed_per_day: int | None
    channels_active: int | None
    last_activity_at: datetime | None
    stale: bool  # an active tenant whose figures are missing or older than ROLLUP_STALE_AFTER

    @property
    def suspended(self) -> bool:
        return self.tenant.status == Tenant.Status.SUSPENDED

    @property
    def error_percent(self) -> float | None:
        """Failed messages among those sent or failed in the 24 hours, in percent."""
        if self.messages_per_day is None or self.failed_per_day is None:
            return None
        tried = self.messages_per_day + self.failed_per_day
        return round(100.0 * self.failed_per_day / tried, 1) if tried else None


def _int(metrics: dict[str, Any], key: str) -> int | None:
    value = metrics.get(key)
    return int(value) if isinstance(value, int | float) else None


def tenant_figures() -> list[TenantFigures]:
    """Every tenant (active and suspended) with its last roll-up, by name; one query."""
    now = timezone.now()
    rows = []
    tenants = Tenant.objects.exclude(schema_name=get_public_schema_name()).select_related("rollup").order_by("name")
    for tenant in tenants:
        rollup: TenantRollup | None = getattr(tenant, "rollup", None)
        metrics = rollup.metrics if rollup is not None else {}
        last = metrics.get("last_activity_at")
        rows.append(
            TenantFigures(
                tenant=tenant,
                computed_at=rollup.computed_at if rollup is not None else None,
                subscribers=_int(metrics, "subscribers_active"),
                messages_per_day=_int(metrics, "messages_sent_24h"),
                failed_per_day=_int(metrics, "messages_failed_24h"),
                channels_active=_int(metrics, "channels_active"),
                last_activity_at=parse_datetime(last) if isinstance(last, str) else None,
                stale=tenant.status != Tenant.Status.SUSPENDED
                and (rollup is None or now - rollup.computed_at > ROLLUP_STALE_AFTER),
            )
        )
    return rows
