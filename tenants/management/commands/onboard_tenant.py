"""Onboard a tenant from the command line; the same service as the operator admin's form."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.errors import ApplicationError
from tenants.models import Tenant
from tenants.notifications import send_admin_welcome
from tenants.services import tenant_onboard


class Command(BaseCommand):
    help = "Create a tenant: schema, primary domain, default roles, sandbox messenger and first admin."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--schema", required=True, help="short name, e.g. bochum")
        parser.add_argument("--name", required=True, help='display name, e.g. "Stadt Bochum"')
        parser.add_argument("--domain", required=True, help="e.g. bochum.localhost")
        parser.add_argument("--admin-email", required=True)
        parser.add_argument("--kind", default=Tenant.Kind.MUNICIPALITY, choices=Tenant.Kind.values)
        parser.add_argument("--timezone", default="Europe/Berlin")
        parser.add_argument("--language", default="de", choices=["de", "en"])

    def handle(self, *args: Any, **options: Any) -> None:
        def progress(step: str) -> None:
            self.stdout.write(f"  … {step}")
            self.stdout.flush()

        self.stdout.write(f"Onboarding {options['name']} ({options['schema']})")
        try:
            result = tenant_onboard(
                schema_name=options["schema"],
                name=options["name"],
                domain=options["domain"],
                admin_email=options["admin_email"],
                kind=options["kind"],
                timezone_name=options["timezone"],
                language=options["language"],
                progress=progress,
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        send_admin_welcome(result)
        for step, seconds in result.steps:
            self.stdout.write(f"  ✓ {step} ({seconds:.2f}s)")
        self.stdout.write(self.style.SUCCESS(f"Ready in {result.seconds:.2f}s: {result.tenant.name}"))
        self.stdout.write(f"  admin user:   {result.admin_user.get_username()} <{result.admin_user.email}>")
        self.stdout.write(f"  log in at:    {result.login_url}")
        self.stdout.write(f"  set password: {result.password_link}")
