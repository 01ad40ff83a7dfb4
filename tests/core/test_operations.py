"""/healthz, /metrics, tenant-tagged logs, tenant-scoped cache keys."""

from __future__ import annotations

import logging
from typing import Any

from django.core.cache import cache
from django.test import Client, override_settings

from core.logging import JsonFormatter, TenantFilter
from core.tenancy import connection
from tenants.models import Tenant
from tests.conftest import in_tenant


def test_healthz_reports_database_and_queue(client_public: Client, public: Any) -> None:
    response = client_public.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["queue"]["ok"] is True


def test_healthz_also_answers_on_tenant_domains(client_a: Client, tenant: Tenant) -> None:
    assert client_a.get("/healthz").status_code == 200


def test_metrics_are_prometheus_text_with_platform_figures(client_public: Client, public: Any) -> None:
    client_public.get("/healthz")
    response = client_public.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    assert 'mnl_tenants{status="active"}' in text
    assert "mnl_queue_tasks" in text
    assert "mnl_http_requests_total" in text


@override_settings(METRICS_TOKEN="s3cret")
def test_metrics_token_is_enforced_when_configured(client_public: Client, public: Any) -> None:
    assert client_public.get("/metrics").status_code == 401
    assert client_public.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret").status_code == 200


def test_log_records_carry_the_tenant_schema(tenant: Tenant) -> None:
    record = logging.makeLogRecord({"msg": "hello %s", "args": ("world",)})
    TenantFilter().filter(record)
    assert record.schema_name == tenant.schema_name  # type: ignore[attr-defined]
    line = JsonFormatter().format(record)
    assert f'"tenant": "{tenant.schema_name}"' in line and '"message": "hello world"' in line


def test_cache_keys_are_scoped_to_the_tenant(tenant: Tenant, tenant_b: Tenant) -> None:
    cache.set("alarm-state", "red")
    assert cache.get("alarm-state") == "red"
    with in_tenant(tenant_b):
        assert cache.get("alarm-state") is None
        cache.set("alarm-state", "green")
    assert cache.get("alarm-state") == "red"
    connection.set_schema_to_public()
    assert cache.get("alarm-state") is None
