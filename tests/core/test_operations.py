"""/healthz, /metrics, tenant-tagged logs, tenant-scoped cache keys."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
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


# --------------------------------------------------------------------------------------------
# /metrics lists every tenant: never public in production. /healthz tells no versions.
# --------------------------------------------------------------------------------------------
PRODUCTION_ENV = {
    "SECRET_KEY": "k" * 60,
    "ALLOWED_HOSTS": "example.org",
    "FERNET_KEYS": "pGk8eU3l0ay6Vd7pRj0mVxS9j0bZlO8wq3d3ZqkQf1Y=",
    "DATABASE_URL": "postgres://x@127.0.0.1:1/x",
}


def _import_production(monkeypatch: pytest.MonkeyPatch, **env: str | None) -> Any:
    import importlib
    import sys

    for key, value in {**PRODUCTION_ENV, **env}.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    sys.modules.pop("config.settings.production", None)
    try:
        return importlib.import_module("config.settings.production")
    finally:
        sys.modules.pop("config.settings.production", None)


@pytest.mark.parametrize("token", [None, "", "   ", "short"])
def test_production_refuses_to_start_without_a_metrics_token(
    monkeypatch: pytest.MonkeyPatch, token: str | None
) -> None:
    with pytest.raises(ImproperlyConfigured, match="METRICS_TOKEN"):
        _import_production(monkeypatch, METRICS_TOKEN=token)


def test_production_starts_with_a_metrics_token(monkeypatch: pytest.MonkeyPatch) -> None:
    production = _import_production(monkeypatch, METRICS_TOKEN="m" * 32)
    assert production.METRICS_TOKEN == "m" * 32


@override_settings(METRICS_TOKEN="s3cret-token-for-the-scraper")
@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Bearer wrong",
        "bearer s3cret-token-for-the-scraper",
        "Bearer s3cret-token-for-the-scraper ",
        "Bearer s3cret-token-for-the-scrape",
        "Basic czNjcmV0LXRva2VuLWZvci10aGUtc2NyYXBlcg==",
        "s3cret-token-for-the-scraper",
    ],
)
def test_metrics_refuse_every_request_without_the_exact_token(
    client_public: Client, public: Any, header: str | None
) -> None:
    extra: dict[str, Any] = {} if header is None else {"HTTP_AUTHORIZATION": header}
    response = client_public.get("/metrics", **extra)
    assert response.status_code == 401
    assert "mnl_tenants" not in response.content.decode() and "test_a" not in response.content.decode()
    assert client_public.get("/metrics?token=s3cret-token-for-the-scraper").status_code == 401


def test_metrics_are_not_served_on_tenant_domains(client_a: Client, tenant: Tenant) -> None:
    assert client_a.get("/metrics").status_code == 404


VERSION = re.compile(r"\d+\.\d+\.\d+|version", re.IGNORECASE)


@pytest.mark.parametrize("host", ["localhost", "tenant-a.localhost"])
def test_healthz_tells_no_versions_or_broker_details(db: Any, tenant_a: Tenant, host: str) -> None:
    from django_q.brokers import get_broker

    response = Client(HTTP_HOST=host).get("/healthz")
    assert response.status_code == 200
    text = response.content.decode()
    assert get_broker().info() not in text
    assert not VERSION.search(text), text
    body = response.json()
    assert set(body) == {"status", "checks"}
    assert set(body["checks"]["queue"]) <= {"ok", "waiting", "ms", "clusters", "error"}
    assert set(body["checks"]["database"]) <= {"ok", "ms", "error"}
