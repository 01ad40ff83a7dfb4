"""django-q2 entry points of analytics; each a few lines that call a service."""

from __future__ import annotations

from typing import Any

from analytics import services
from analytics.rollups.broadcasts import broadcast_stats_fold
from tenants.tasks import for_each_active_tenant


def tenant_rollup_task() -> dict[str, Any]:
    """Runs inside one tenant: its figures for the operator overview."""
    return services.tenant_rollup_compute()


def tenant_rollup_all_task() -> int:
    """Scheduled in public: queue the roll-up inside every active tenant."""
    return for_each_active_tenant(tenant_rollup_task)


def analytics_fold_task() -> dict[str, Any]:
    """Runs inside one tenant: fold what changed into every roll-up (settings.ANALYTICS_ROLLUPS)."""
    return services.analytics_rollups_run(full=False)


def analytics_fold_all_task() -> int:
    """Scheduled in public: queue the fold inside every active tenant."""
    return for_each_active_tenant(analytics_fold_task)


def broadcast_stats_fold_task() -> dict[str, int]:
    """Runs inside one tenant after a broadcast ended: its final figures without waiting."""
    return broadcast_stats_fold(full=False)
