"""django-q2 entry points of accounts (thin: a service call per tenant)."""

from __future__ import annotations

from accounts import services


def idempotency_purge_task() -> int:
    """Periodic (per tenant, tenants/schedules.py): forget idempotency records older than a day."""
    return services.idempotency_purge()
