"""Per-tenant roll-ups feed the operator overview and /metrics (never cross-schema joins)."""

from __future__ import annotations

from typing import Any

from django.test import Client
from django_tenants.utils import schema_context

from analytics.models import TenantRollup
from analytics.services import tenant_rollup_compute
from analytics.tasks import tenant_rollup_all_task
from core.tenancy import connection
from tenants.models import Tenant


def test_rollup_writes_each_tenants_figures_to_the_shared_table(
    tenant: Tenant, tenant_b: Tenant, django_capture_on_commit_callbacks: Any
) -> None:
    metrics = tenant_rollup_compute()
    assert {"users", "messages_sent_24h", "connections_paused", "webhook_events_waiting"} <= set(metrics)
    with schema_context("public"):
        rollup = TenantRollup.objects.get(tenant=tenant)
        assert rollup.metrics == metrics
        assert not TenantRollup.objects.filter(tenant=tenant_b).exists()


def test_scheduled_rollup_runs_in_every_active_tenant(
    public: Any, tenant_a: Tenant, tenant_b: Tenant, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        assert tenant_rollup_all_task() >= 2
    connection.set_schema_to_public()
    assert set(TenantRollup.objects.values_list("tenant__schema_name", flat=True)) >= {"test_a", "test_b"}


def test_metrics_expose_per_tenant_rollups(public: Any, client_public: Client, tenant_a: Tenant) -> None:
    with schema_context(tenant_a.schema_name):
        connection.set_tenant(tenant_a)
        tenant_rollup_compute()
    connection.set_schema_to_public()
    text = client_public.get("/metrics").content.decode()
    assert 'mnl_tenant_messages_sent_24h{tenant="test_a"}' in text
