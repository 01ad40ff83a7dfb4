"""A database router for apps that are in both SHARED_APPS and TENANT_APPS but whose models each
live in one kind of schema only: settings.SPLIT_SCHEMA_APPS = {app_label: [public-only models]};
every other model of such an app lives in tenant schemas only.

django-tenants' router decides per app; this one answers first for those apps (analytics keeps
TenantRollup in public for the operator, and its per-tenant roll-ups in each tenant's schema).
Tenant code still reads the public table: PostgreSQL's search_path ends in public.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import connections
from django_tenants.utils import get_public_schema_name


class SplitSchemaAppsRouter:
    def allow_migrate(self, db: str, app_label: str, model_name: str | None = None, **hints: Any) -> bool | None:
        public_only = settings.SPLIT_SCHEMA_APPS.get(app_label)
        if public_only is None or model_name is None:
            return None
        in_public = getattr(connections[db], "schema_name", get_public_schema_name()) == get_public_schema_name()
        return in_public if model_name in public_only else not in_public
