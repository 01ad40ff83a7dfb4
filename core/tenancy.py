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
