"""Reads on tenants (public schema)."""

from __future__ import annotations

from django.db.models import QuerySet
from django_tenants.utils import get_public_schema_name

from tenants.models import Tenant


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
