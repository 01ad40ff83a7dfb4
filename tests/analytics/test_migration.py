"""TenantRollup moved from tenants to analytics: the migration keeps every row.

Runs the migrations back to before the move and forward again inside the test's transaction
(PostgreSQL DDL is transactional), so the session's database is left as it was."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from analytics.models import TenantRollup
from tenants.models import Tenant

TENANTS_BEFORE = ("tenants", "0002_webhook_routes_due_work_quiet_hours")
BEFORE: list[tuple[str, str | None]] = [TENANTS_BEFORE, ("analytics", None)]
AFTER: list[tuple[str, str | None]] = [
    ("tenants", "0003_tenantrollup_moves_to_analytics"),
    ("analytics", "0001_initial"),
]


def _tables() -> set[str]:
    with connection.cursor() as cursor:
        return set(connection.introspection.table_names(cursor))


def test_the_roll_up_rows_move_with_the_model(public: Any, tenant_a: Tenant) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    assert "tenants_tenantrollup" in _tables() and "analytics_tenantrollup" not in _tables()
    old_apps = executor.loader.project_state(TENANTS_BEFORE).apps
    old_model = old_apps.get_model("tenants", "TenantRollup")
    computed_at = timezone.now()
    old_model.objects.update_or_create(
        tenant_id=tenant_a.pk, defaults={"computed_at": computed_at, "metrics": {"users": 7}}
    )

    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)

    assert "analytics_tenantrollup" in _tables() and "tenants_tenantrollup" not in _tables()
    rollup = TenantRollup.objects.get(tenant=tenant_a)
    assert (rollup.metrics, rollup.computed_at) == ({"users": 7}, computed_at)
    assert Tenant.objects.filter(rollup__metrics__users=7).get() == tenant_a
