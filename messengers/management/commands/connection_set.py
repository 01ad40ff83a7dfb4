"""Change an existing connection from the command line: the operator's way to set what tenant
admins may not (an API base or SMTP host off the allow-lists, see messengers.endpoints).

    python manage.py connection_set stuttgart 7 --api-base https://graph-proxy.internal.example
    python manage.py connection_set stuttgart 9 --credential host=mail.stuttgart.de --credential port=587
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django_tenants.utils import schema_context

from core.errors import ApplicationError
from messengers import services
from messengers.models import Connection
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Change a tenant's messenger connection (API base, credentials, name, rate)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("schema", help="tenant short name, e.g. stuttgart")
        parser.add_argument("connection_id", type=int, help="the id connection_add printed (or the admin shows)")
        parser.add_argument("--name", default=None)
        parser.add_argument("--api-base", default=None, help='a test server or proxy; "" for the provider\'s own API')
        parser.add_argument("--rate", type=float, default=None, help="messages per second")
        parser.add_argument(
            "--credential",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="repeatable; replaces only the keys given, e.g. --credential host=smtp.example.org",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        credentials: dict[str, str] = {}
        for item in options["credential"]:
            key, sep, value = item.partition("=")
            if not sep:
                raise CommandError(f"--credential needs KEY=VALUE, got {item!r}")
            credentials[key.strip()] = value
        fields: dict[str, Any] = {}
        if options["name"] is not None:
            fields["name"] = options["name"]
        if options["api_base"] is not None:
            fields["api_base"] = options["api_base"].strip()
        if options["rate"] is not None:
            fields["rate_limit_per_second"] = Decimal(str(options["rate"]))
        tenant = Tenant.objects.filter(schema_name=options["schema"]).first()
        if tenant is None or tenant.schema_name == "public":
            raise CommandError(f"no tenant {options['schema']!r}")
        with schema_context(tenant.schema_name):
            connection = Connection.objects.filter(pk=options["connection_id"]).first()
            if connection is None:
                raise CommandError(f"{tenant.schema_name} has no connection {options['connection_id']}")
            try:
                services.connection_update(
                    connection=connection, actor=None, credentials=credentials, by_operator=True, **fields
                )
            except ApplicationError as exc:
                raise CommandError(exc.message) from exc
            changed = sorted([*fields, *(f"credential {key}" for key in credentials)])
            self.stdout.write(
                self.style.SUCCESS(f"connection {connection.pk} ({connection}) updated: {', '.join(changed) or '-'}")
            )
