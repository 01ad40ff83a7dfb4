"""The OpenAPI schema: valid without warnings, the checked-in docs/openapi.yaml is current, and
Swagger UI and ReDoc are served from our own static files without inline scripts (CSP)."""

from __future__ import annotations

import re
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import translation

from tenants.models import Tenant
from tests.api.support import DOMAIN_A

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"


def test_schema_is_valid_and_the_checked_in_file_is_current() -> None:
    out = StringIO()
    with translation.override("en"):  # DRF's descriptions are translated; the file is English
        call_command(
            "spectacular", "--validate", "--fail-on-warn", "--urlconf", "config.urls_tenant", "--lang", "en", stdout=out
        )
    assert out.getvalue() == SCHEMA_FILE.read_text(), (
        "docs/openapi.yaml is stale: run manage.py spectacular --urlconf config.urls_tenant --lang en --file docs/openapi.yaml"
    )


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/docs/", "/api/v1/redoc/"])
def test_docs_pages_use_own_static_files_and_no_inline_script(tenant: Tenant, path: str) -> None:
    response = Client(HTTP_HOST=DOMAIN_A).get(path)
    assert response.status_code == 200
    page = response.content.decode()
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, re.S)
    assert scripts and all('src="/static/' in attrs and not body.strip() for attrs, body in scripts)
    assert "https://" not in page and "http://" not in page
    assert "script-src 'self'" in response["Content-Security-Policy"]


@pytest.mark.django_db
def test_schema_endpoint_needs_no_key(tenant: Tenant) -> None:
    response = Client(HTTP_HOST=DOMAIN_A).get("/api/v1/schema/")
    assert response.status_code == 200 and b"/api/v1/broadcasts/create/" in response.content


def test_every_operation_is_documented_with_examples_and_errors() -> None:
    import yaml

    schema = yaml.safe_load(SCHEMA_FILE.read_text())
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert {"400", "401", "403", "429"} <= set(responses), (method, path)
            examples = [r for r in responses.values() if "examples" in r.get("content", {}).get("application/json", {})]
            assert examples, (method, path)
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body is not None:
                assert "examples" in body, (method, path)
