"""django-q2 entry points for tenants; each a few lines that call a service."""

from core.tasks import for_each_active_tenant


def tenant_rollup_all_task() -> int:
    """Scheduled in public: queue the roll-up inside every active tenant."""
    return for_each_active_tenant("tenants.services.tenant_rollup_compute")
