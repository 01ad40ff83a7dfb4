"""Rebuild every roll-up of settings.ANALYTICS_ROLLUPS from scratch, in every tenant (or those
named). Safe while the platform runs: each roll-up takes its own lock and writes in one
transaction, so readers see the old figures until the new ones are complete."""

from __future__ import annotations

import json
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django_tenants.utils import schema_context

from analytics.services import analytics_rollups_run
from core.tenancy import connection
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Rebuild every analytics roll-up of every tenant (or of --schema …) from the detailed data."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--schema", action="append", default=[], help="only this tenant (repeatable)")

    def handle(self, *args: Any, **options: Any) -> None:
        tenants = Tenant.objects.exclude(schema_name="public").order_by("schema_name")
        if options["schema"]:
            tenants = tenants.filter(schema_name__in=options["schema"])
            missing = set(options["schema"]) - set(tenants.values_list("schema_name", flat=True))
            if missing:
                raise CommandError(f"no such tenant: {', '.join(sorted(missing))}")
        for tenant in tenants:
            started = time.monotonic()
            with schema_context(tenant.schema_name):
                connection.set_tenant(tenant)
                report = analytics_rollups_run(full=True)
            if options["verbosity"]:
                self.stdout.write(
                    f"{tenant.schema_name}: {json.dumps(report, sort_keys=True)} ({time.monotonic() - started:.1f} s)"
                )
