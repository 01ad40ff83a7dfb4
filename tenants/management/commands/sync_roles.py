"""Apply the role table (accounts.roles + every app's roles.py) in every tenant and the template."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django_tenants.utils import schema_context, schema_exists

from accounts.services import roles_sync
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Create/update the role groups and their permissions in every tenant schema."

    def handle(self, *args: Any, **options: Any) -> None:
        schemas = list(Tenant.objects.exclude(schema_name="public").values_list("schema_name", flat=True))
        if schema_exists(settings.TENANT_BASE_SCHEMA):
            schemas.append(settings.TENANT_BASE_SCHEMA)
        for schema in schemas:
            with schema_context(schema):
                counts = roles_sync()
            if options["verbosity"]:
                self.stdout.write(f"{schema}: " + ", ".join(f"{role}={n}" for role, n in sorted(counts.items())))
