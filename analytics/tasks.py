"""django-q2 entry points of analytics; each a few lines that call a service."""

from __future__ import annotations

from typing import Any

from analytics import services
from tenants.tasks import for_each_active_tenant


def tenant_rollup_task() -> dict[str, Any]:
    """Runs inside one tenant: its figures for the operator overview."""
    return services.tenant_rollup_compute()


def tenant_rollup_all_task() -> int:
    """Scheduled in public: queue the roll-up inside every active tenant."""
    return for_each_active_tenant(tenant_rollup_task)
