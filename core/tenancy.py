"""Typed access to django-tenants' connection methods (the stubs only know Django's wrapper).

from core.tenancy import connection
connection.set_tenant(tenant); connection.schema_name
"""

from __future__ import annotations

from typing import Any, Protocol, cast

from django.db import connection as _connection
from django.db.backends.utils import CursorWrapper


class TenantConnection(Protocol):
    schema_name: str
    tenant: Any
    connection: Any  # the DB-API connection (psycopg) once connected

    def ensure_connection(self) -> None: ...

    def close(self) -> None: ...

    def set_tenant(self, tenant: Any, include_public: bool = True) -> None: ...

    def set_schema(self, schema_name: str, include_public: bool = True) -> None: ...

    def set_schema_to_public(self) -> None: ...

    def cursor(self) -> CursorWrapper: ...


connection = cast(TenantConnection, _connection)


def current_schema() -> str:
    return connection.schema_name


def current_tenant() -> Any:
    """The tenant whose schema is active, without a query when the full object is set.

    Requests (django-tenants' middleware) and tasks (core.tasks.run_in_schema) set the Tenant
    itself; a plain schema_context() sets only a stand-in with the schema name, so then the row
    is read from public. Code inside a tenant schema reads the tenant's settings (time zone,
    language, name) through this rather than querying the public table on every call: a
    request's or task's statements then stay inside its schema (docs/operations.md, "Beyond one
    PostgreSQL")."""
    tenant = connection.tenant
    if getattr(tenant, "pk", None) is not None and hasattr(tenant, "kind"):
        return tenant
    from django_tenants.utils import get_tenant_model

    return get_tenant_model().objects.filter(schema_name=connection.schema_name).first() or tenant
