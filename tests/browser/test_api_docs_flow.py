"""Swagger UI and ReDoc of the REST API in Chromium: both render the schema from our own static
files under the site's Content-Security-Policy (stricter for images), with no script error and
no request to another host."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tenants.models import Tenant
from tests.conftest import LiveServer

pytestmark = pytest.mark.browser


@pytest.mark.parametrize(
    ("path", "shows"), [("/api/v1/docs/", "/api/v1/broadcasts/create/"), ("/api/v1/redoc/", "Messenger-Newsletter API")]
)
def test_api_docs_render_under_the_csp(
    browser: Any, live_server_multitenant: LiveServer, committed_tenant: Callable[..., Tenant], path: str, shows: str
) -> None:
    tenant = committed_tenant("Stadt Docs")
    domain = tenant.domains.get(is_primary=True).domain
    context = browser.new_context(locale="en-US")
    context.set_default_timeout(20_000)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
    page.on("response", lambda r: problems.append(f"{r.status}: {r.url}") if r.status >= 400 else None)
    external: list[str] = []  # answers from any other host (a request CSP refused gets none)
    page.on(
        "response",
        lambda r: external.append(r.url) if not r.url.startswith(("http://" + domain, "blob:", "data:")) else None,
    )
    try:
        response = page.goto(live_server_multitenant.url(domain, path))
        assert "img-src 'self' data:" in response.headers["content-security-policy"]
        page.get_by_text(shows).first.wait_for()
    finally:
        context.close()
    # nothing leaves for a CDN; the one refusal allowed is ReDoc's logo from Redocly's CDN, which
    # the docs pages' stricter img-src blocks before any request is made (ReDoc then hides it)
    assert external == []
    unexpected = [p for p in problems if "cdn.redoc.ly/redoc/logo-mini.svg" not in p]
    assert unexpected == [], problems
