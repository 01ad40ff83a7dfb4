"""Every registered ModelAdmin of both admin sites, walked with hostile object ids (non-numeric,
beyond bigint, encoded slashes, NUL, non-ASCII digits) in every URL it has (change, history,
delete, the custom views) and hostile values in its changelist's search, ordering, paging and
filter parameters: never a 500. (An id such as " 1" or an Arabic-Indic one may well show object
1: Django's IntegerField reads them as 1, which opens nothing the user could not open anyway.)"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.admin import ModelAdmin, SimpleListFilter
from django.test import Client
from django.urls import URLPattern

from accounts.models import User
from core.admin_sites import operator_site, tenant_site
from core.tenancy import connection
from tenants.models import Tenant
from tests.helpers import ROUTE_PARAMETER, enrol_totp, fill_route

# What a client sends (the test client percent-decodes once, like a WSGI server).
HOSTILE_IDS = [
    "abc",
    "1.5",
    "-1",
    "1e3",
    "%201",
    "99999999999999999999",
    "9223372036854775808",
    "9" * 5000,
    "1%2F2",
    "1_2F2",  # the admin's own quoting of "/"
    "%00",
    "1%00",
    "%C3%A4",  # ä
    "%D9%A1",  # Arabic-Indic one: int() accepts it
    "%C2%B2",  # superscript two: isdigit() says yes, int() says no
    "1%20OR%201=1",
]
# Every id goes to the change view; the other views (history, delete, custom ones) and POSTs get
# a few of each kind, to keep the walk to a couple of thousand requests.
FEW_IDS = ["abc", "99999999999999999999", "9" * 5000, "1%2F2", "%C2%B2"]
POSTED_IDS = ["abc", "99999999999999999999", "1%2F2"]
HOSTILE_QUERY_VALUES = ["abc", "99999999999999999999", "%00"]


def _staff_client(host: str, schema_is_public: bool) -> Client:
    user = User.objects.create_superuser(username="walker", email="walker@example.org", password="x" * 12)
    enrol_totp(user)
    client = Client(HTTP_HOST=host, HTTP_ACCEPT_LANGUAGE="en", raise_request_exception=False)
    client.force_login(user)
    assert client.get("/admin/").status_code == 200, "the walker must get into the admin"
    return client


def _object_urls(model_admin: ModelAdmin[Any]) -> list[tuple[str, str]]:
    """(method, url) for every admin URL with a parameter, filled with each hostile id."""
    base = f"admin/{model_admin.model._meta.app_label}/{model_admin.model._meta.model_name}/"
    urls = []
    for pattern in model_admin.get_urls():
        if not isinstance(pattern, URLPattern):
            continue
        route = base + str(pattern.pattern)
        if not ROUTE_PARAMETER.search(route):
            continue
        for value in HOSTILE_IDS if route.endswith("/change/") else FEW_IDS:
            if fill_route(route, value.replace("%", "P")) is None:  # the resolver's check, on a %-free stand-in
                continue
            url = "/" + ROUTE_PARAMETER.sub(value.replace("\\", "\\\\"), route)
            urls.append(("get", url))
            if value in POSTED_IDS:
                urls.append(("post", url))
    return urls


def _filter_parameters(model_admin: ModelAdmin[Any]) -> list[str]:
    names = ["q", "p", "o"]
    for entry in model_admin.list_filter:
        if isinstance(entry, type) and issubclass(entry, SimpleListFilter):
            names.append(str(entry.parameter_name))
        elif isinstance(entry, str):
            names += [f"{entry}__exact", f"{entry}__id__exact"]
    return names


def _changelist_urls(model_admin: ModelAdmin[Any]) -> list[str]:
    base = f"/admin/{model_admin.model._meta.app_label}/{model_admin.model._meta.model_name}/"
    return [f"{base}?{name}={value}" for name in _filter_parameters(model_admin) for value in HOSTILE_QUERY_VALUES]


def _walk(client: Client, site: Any) -> tuple[int, list[tuple[str, str, int]]]:
    requests = [(method, url) for model_admin in site._registry.values() for method, url in _object_urls(model_admin)]
    requests += [("get", url) for model_admin in site._registry.values() for url in _changelist_urls(model_admin)]
    bad = []
    for method, url in requests:
        status = getattr(client, method)(url).status_code
        if status >= 500:
            bad.append((method, url[:100], status))
    return len(requests), bad


def test_tenant_admin_survives_hostile_ids_and_parameters(tenant: Tenant) -> None:
    client = _staff_client("tenant-a.localhost", schema_is_public=False)
    requests, bad = _walk(client, tenant_site)
    assert requests > 400 and len(tenant_site._registry) >= 10
    assert not bad, bad


def test_operator_admin_survives_hostile_ids_and_parameters(public: Any) -> None:
    client = _staff_client("localhost", schema_is_public=True)
    connection.set_schema_to_public()
    requests, bad = _walk(client, operator_site)
    assert requests > 80 and len(operator_site._registry) >= 3
    assert not bad, bad


@pytest.mark.parametrize("site", [tenant_site, operator_site], ids=["tenant", "operator"])
def test_every_registered_admin_has_object_urls_the_walk_reaches(site: Any) -> None:
    for model_admin in site._registry.values():
        urls = _object_urls(model_admin)
        assert any(url.endswith("/change/") for _method, url in urls), model_admin
        assert any("%2F" in url for _method, url in urls)
