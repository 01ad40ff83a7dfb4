"""Bring the database to the state the code expects, in one process (fast second starts):
shared migrations, the tenant template, tenant migrations, cache table, roles, schedules."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from tenants.services import tenant_ensure_public


class Command(BaseCommand):
    help = "Migrate everything and apply roles and schedules (what `make run` and a deploy do)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--seed-demo", action="store_true", help="also create/refresh the demo tenants")

    def handle(self, *args: Any, **options: Any) -> None:
        quiet = {"verbosity": 0, "interactive": False}
        steps: list[tuple[str, Any]] = [
            ("shared migrations", lambda: call_command("migrate_schemas", shared=True, **quiet)),
            ("platform domain", tenant_ensure_public),
            ("tenant template", lambda: call_command("tenant_template", verbosity=0)),
            ("tenant migrations", lambda: call_command("migrate_schemas", tenant=True, **quiet)),
            ("roles", lambda: call_command("sync_roles", verbosity=0)),
            ("schedules", lambda: call_command("setup_schedules", verbosity=0)),
        ]
        if settings.CACHES["default"]["BACKEND"].endswith("DatabaseCache"):
            steps.insert(1, ("cache table", lambda: call_command("createcachetable", verbosity=0)))
        if options["seed_demo"]:
            steps.append(("demo data", lambda: call_command("seed_demo", verbosity=0)))
        for name, step in steps:
            started = time.perf_counter()
            step()
            self.stdout.write(f"  ✓ {name} ({time.perf_counter() - started:.1f}s)")
