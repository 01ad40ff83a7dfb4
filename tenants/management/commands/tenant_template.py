"""Create or update the template schema that new tenants are cloned from.

Run after `migrate_schemas` on every deploy (make run / make test do). Cloning a migrated
schema takes about a second; running every tenant migration for a new tenant takes ten.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django_tenants.utils import schema_context, schema_exists

from accounts.services import roles_sync
from core.tenancy import connection


class Command(BaseCommand):
    help = "Create or migrate the tenant template schema (TENANT_BASE_SCHEMA)."

    def handle(self, *args: Any, **options: Any) -> None:
        name = settings.TENANT_BASE_SCHEMA
        started = time.perf_counter()
        if not schema_exists(name):
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE SCHEMA "{name}"')
            if options["verbosity"]:
                self.stdout.write(f"created schema {name}")
        call_command(
            "migrate_schemas",
            tenant=True,
            schema_name=name,
            interactive=False,
            verbosity=max(0, options["verbosity"] - 1),
        )
        with schema_context(name):
            roles_sync()
        connection.set_schema_to_public()
        if options["verbosity"]:
            self.stdout.write(
                self.style.SUCCESS(f"template schema {name} is current ({time.perf_counter() - started:.1f}s)")
            )
