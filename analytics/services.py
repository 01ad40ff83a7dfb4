"""Writes of analytics: computing roll-ups and storing them where their readers look.

The figures themselves come from each app's small count selectors (ROLLUP_SOURCES); analytics
sits above the apps and calls them, the apps know nothing of roll-ups.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.utils import timezone
from django.utils.module_loading import import_string
from django_tenants.utils import get_public_schema_name, schema_context

from accounts.selectors import account_rollup
from analytics.models import TenantRollup
from analytics.selectors_operator import tenant_activity_rollup
from broadcasts.selectors import broadcast_rollup
from core.tenancy import connection
from messengers.selectors import messenger_rollup
from subscribers.selectors import subscriber_rollup
from tenants.models import Tenant

# Each returns a dict of figures of the current tenant schema.
ROLLUP_SOURCES: list[Callable[[], dict[str, Any]]] = [
    account_rollup,
    subscriber_rollup,
    broadcast_rollup,
    messenger_rollup,
    tenant_activity_rollup,
]


def tenant_rollup_compute() -> dict[str, Any]:
    """Runs inside a tenant schema (a task queued in every active tenant) and writes this
    tenant's figures to the shared roll-up table for the operator overview. If a source fails,
    nothing is written: the tenant keeps its last figures with the time they are from."""
    schema_name = connection.schema_name
    metrics: dict[str, Any] = {}
    for source in ROLLUP_SOURCES:
        metrics.update(source())
    with schema_context(get_public_schema_name()):
        tenant = Tenant.objects.get(schema_name=schema_name)
        TenantRollup.objects.update_or_create(
            tenant=tenant, defaults={"computed_at": timezone.now(), "metrics": metrics}
        )
    return metrics


def analytics_rollups_run(*, full: bool) -> dict[str, Any]:
    """Inside a tenant: every roll-up of settings.ANALYTICS_ROLLUPS (dotted paths of
    `fn(*, full: bool) -> dict`), folding what changed, or from scratch with `full`.
    Returns each one's report by its path."""
    return {path: import_string(path)(full=full) for path in settings.ANALYTICS_ROLLUPS}
