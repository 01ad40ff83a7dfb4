"""A database router placed before django-tenants' TenantSyncRouter: a per-model choice of schema.

An app in both SHARED_APPS and TENANT_APPS gets its tables in public and in every tenant schema.
A model of such an app that belongs to one side only says so with a class attribute
`schema_scope = "public"` (e.g. the operators' per-tenant figures) or `"tenant"` (e.g. a
tenant's roll-ups, whose foreign keys point at tables that exist only in tenant schemas); its
migrations then run only there and are recorded as applied (with no table) on the other side.
For everything else this router has no opinion and TenantSyncRouter decides.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django_tenants.utils import get_public_schema_name

from core.tenancy import connection


class SchemaScopeRouter:
    def allow_migrate(self, db: str, app_label: str, model_name: str | None = None, **hints: Any) -> bool | None:
        if model_name is None:
            return None
        try:
            # the model as the code has it now (a migration's historical model has no class attributes)
            model = apps.get_model(app_label, model_name)
        except LookupError:
            return None
        scope = getattr(model, "schema_scope", None)
        if scope is None:
            return None
        in_public = connection.schema_name == get_public_schema_name()
        return None if (scope == "public") == in_public else False
