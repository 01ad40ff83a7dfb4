"""Every URL parameter of every page outside the admin (tenant and platform domain), filled with
hostile values and sent as GET, HEAD and POST, gets a 4xx answer or a normal page, never a 500.

The admin sites have their own walk (tests/core/test_admin_hostile_ids.py). Values: over-long
tokens (Python refuses to turn more than 4,300 digits into an int), ids beyond bigint, non-ASCII
digits (int() accepts them, hmac.compare_digest refuses non-ASCII text), NUL bytes (PostgreSQL
refuses them in text), and the shapes of our own tokens with each part broken."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RegexPattern, RoutePattern

from tenants.models import Tenant
from tests.helpers import ROUTE_PARAMETER, fill_route

SIG = "AAAAAAAAAAAA"  # the length of a tracked-link signature
HOSTILE = [
    "x" * 5000,
    "f" * 5000 + f"-1-{SIG}",
    f"1-{'f' * 5000}-{SIG}",
    "9" * 5000,
    "ffffffffffffffffffffffff-1-" + SIG,
    f"7fffffffffffffff-7fffffffffffffff-{SIG}",
    f"١٢-1-{SIG}",  # Arabic-Indic digits
    f"1-1-{SIG}é",
    "ä",
    "\x00",
    f"1\x00-1-{SIG}",
    "-1",
    "0",
    "99999999999999999999",
    "1_0",
    f"1_0-1-{SIG}",
    f" 1-1-{SIG}",
    "--",
    "1.",
    ".x",
    "zzzzzzzzzzzzzzzzzzzzzzzz.sig",
    "1." + "A" * 5000,
    "%2e%2e",
    "..",
]
SKIP_PREFIXES = ("admin/",)


def _routes(patterns: list[Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for entry in patterns:
        pattern = entry.pattern
        if isinstance(pattern, RoutePattern):
            text = str(pattern)
        elif isinstance(pattern, RegexPattern):
            text = "RE:" + str(pattern)
        else:  # pragma: no cover - Django has only these two
            raise AssertionError(pattern)
        if isinstance(entry, URLResolver):
            if prefix + text not in SKIP_PREFIXES:
                yield from _routes(entry.url_patterns, prefix + text)
        elif isinstance(entry, URLPattern):
            yield prefix + text, entry


def _urls(urlconf: str) -> list[str]:
    urls = []
    for route, _entry in _routes(get_resolver(urlconf).url_patterns):
        if not ROUTE_PARAMETER.search(route) and "RE:" not in route:
            continue
        for value in HOSTILE:
            filled = fill_route(route, value)
            if filled is not None:
                urls.append(filled)
    return urls


def _server_errors(host: str, urls: list[str]) -> list[tuple[str, str, int]]:
    client = Client(HTTP_HOST=host, raise_request_exception=False)
    found = []
    for url in urls:
        for method in ("get", "head", "post"):
            response = getattr(client, method)(url.replace("%", "%25"))
            if response.status_code >= 500:
                found.append((method, url[:80], response.status_code))
    return found


def test_every_url_parameter_of_the_tenant_domain_survives_hostile_values(tenant: Tenant) -> None:
    urls = _urls("config.urls_tenant")
    assert any(url.startswith("/l/") for url in urls) and any(url.startswith("/unsubscribe/") for url in urls)
    assert not _server_errors("tenant-a.localhost", urls)


def test_every_url_parameter_of_the_platform_domain_survives_hostile_values(public: Any) -> None:
    urls = _urls("config.urls_public")
    assert any(url.startswith("/webhooks/telegram/") for url in urls)
    assert not _server_errors("localhost", urls)


@pytest.mark.parametrize(
    ("route", "value", "expected"),
    [
        ("l/<str:token>", "abc", "/l/abc"),
        ("status/<slug:slug>.json", "ä", None),
        ("status/<slug:slug>.json", "a-b", "/status/a-b.json"),
        ("x/<int:pk>/", "-1", None),
        (
            "accounts/RE:^password/reset/key/(?P<uidb36>[0-9A-Za-z]+)-(?P<key>.+)/$",
            "x",
            "/accounts/password/reset/key/x-x/",
        ),
        ("accounts/RE:^password/reset/key/(?P<uidb36>[0-9A-Za-z]+)-(?P<key>.+)/$", "ä", None),
        ("accounts/RE:^confirm-email/(?P<key>[-:\\w]+)/$", "zz", "/accounts/confirm-email/zz/"),
    ],
)
def test_the_walker_fills_only_what_the_resolver_would_pass(route: str, value: str, expected: str | None) -> None:
    assert fill_route(route, value) == expected


@pytest.mark.parametrize(
    "url", ["/subscribe/?channel=%00", "/archive/?page=1%00", "/admin/?q=%00", "/accounts/login/?next=%00", "/x%00/"]
)
def test_nul_bytes_in_the_url_are_refused_with_400(tenant: Tenant, url: str) -> None:
    response = Client(HTTP_HOST="tenant-a.localhost", raise_request_exception=False).get(url)
    assert response.status_code == 400
