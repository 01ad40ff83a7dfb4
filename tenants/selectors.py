"""Reads on tenants (public schema)."""

from __future__ import annotations

import time

from django.db.models import QuerySet
from django_tenants.utils import get_public_schema_name

from core.http import host_base_url
from core.tenancy import connection as db
from tenants.models import Domain, Tenant

# The one place that builds a tenant's absolute URLs (admin links in e-mails, subscriber links,
# tracked links, password set-up links).
_BASE_URL_CACHE: dict[str, tuple[float, str]] = {}
BASE_URL_CACHE_SECONDS = 60.0


def tenant_list_active() -> QuerySet[Tenant]:
    return Tenant.objects.exclude(schema_name=get_public_schema_name()).filter(status=Tenant.Status.ACTIVE)


def tenant_list_overview() -> QuerySet[Tenant]:
    """Every tenant with its primary domain and roll-up, for the operator list (3 queries total)."""
    return (
        Tenant.objects.exclude(schema_name=get_public_schema_name())
        .select_related("rollup")
        .prefetch_related("domains")
        .order_by("name")
    )


def tenant_primary_domain(tenant: Tenant) -> str:
    for domain in tenant.domains.all():
        if domain.is_primary:
            return domain.domain
    return ""


def tenant_base_url(domain: str) -> str:
    """Absolute base URL of a domain, with the scheme and port of PUBLIC_URL."""
    return host_base_url(domain)


def tenant_public_base_url() -> str:
    """https://<current tenant's primary domain>[:port] with PUBLIC_URL's scheme and port.

    Cached per process for a minute: the broadcast pipeline asks once per e-mail recipient."""
    schema = db.schema_name
    hit = _BASE_URL_CACHE.get(schema)
    now = time.monotonic()
    if hit and now - hit[0] < BASE_URL_CACHE_SECONDS:
        return hit[1]
    domains = list(
        Domain.objects.filter(tenant__schema_name=schema).order_by("-is_primary", "pk").values_list("domain", flat=True)
    )
    if not domains:
        raise RuntimeError(f"tenant {schema} has no domain; cannot build public links")
    base = tenant_base_url(domains[0])
    _BASE_URL_CACHE[schema] = (now, base)
    return base


def tenant_absolute_url(path: str) -> str:
    """`path` on the current tenant's primary domain."""
    return tenant_public_base_url() + path
