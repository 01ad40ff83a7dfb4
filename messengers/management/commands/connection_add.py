"""Add a messenger connection to a tenant from the command line (operators, scripts, the demo).

    python manage.py connection_add stuttgart telegram --name "Stuttgart Bot" \\
        --credential bot_token=123456:ABC --public-address @stuttgart_bot
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django_tenants.utils import schema_context

from core.errors import ApplicationError
from messengers import selectors, services
from messengers.adapters.base import Provider
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Add a messenger connection to a tenant; prints its id and webhook URL."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("schema", help="tenant short name, e.g. stuttgart")
        parser.add_argument("provider", choices=[p.value for p in Provider])
        parser.add_argument("--name", required=True)
        parser.add_argument(
            "--credential",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="repeatable, e.g. --credential access_token=EAAG… --credential app_secret=…",
        )
        parser.add_argument(
            "--external-id", default="", help="WhatsApp phone number id, Telegram bot id, Twilio sender, e-mail sender"
        )
        parser.add_argument("--account-id", default="", help="WhatsApp WABA id or Twilio Account SID")
        parser.add_argument("--public-address", default="", help="what citizens see: +49…, @bot, address")
        parser.add_argument("--api-base", default="", help="point at a test server instead of the real API")
        parser.add_argument("--rate", type=float, default=None, help="messages per second")
        parser.add_argument("--tier", type=int, default=None, help="WhatsApp messaging tier (250, 2000, …, 0)")
        parser.add_argument("--price", type=float, default=None, help="EUR per message (segment)")
        parser.add_argument("--register-webhook", action="store_true", help="Telegram: call setWebhook now")

    def handle(self, *args: Any, **options: Any) -> None:
        credentials: dict[str, str] = {}
        for item in options["credential"]:
            key, sep, value = item.partition("=")
            if not sep:
                raise CommandError(f"--credential needs KEY=VALUE, got {item!r}")
            credentials[key.strip()] = value
        tenant = Tenant.objects.filter(schema_name=options["schema"]).first()
        if tenant is None or tenant.schema_name == "public":
            raise CommandError(f"no tenant {options['schema']!r}")
        with schema_context(tenant.schema_name):
            try:
                connection = services.connection_create(
                    provider=options["provider"],
                    name=options["name"],
                    credentials=credentials,
                    external_id=options["external_id"],
                    account_id=options["account_id"],
                    public_address=options["public_address"],
                    api_base=options["api_base"],
                    rate_limit_per_second=options["rate"],
                    whatsapp_tier=options["tier"],
                    price_per_message=options["price"],
                    by_operator=True,  # operators may point connections anywhere (test servers)
                )
            except ApplicationError as exc:
                raise CommandError(exc.message) from exc
            url = selectors.connection_webhook_url(connection)
            self.stdout.write(self.style.SUCCESS(f"connection {connection.pk} created: {connection}"))
            self.stdout.write(f"id:          {connection.pk}")
            self.stdout.write(f"webhook URL: {url or '(none needed)'}")
            if connection.provider == Provider.WHATSAPP:
                self.stdout.write(
                    "             (or the shared https://<platform>/webhooks/whatsapp/ routed by phone_number_id)"
                )
            if options["register_webhook"] and connection.provider == Provider.TELEGRAM:
                result = services.connection_register_webhook(connection=connection)
                self.stdout.write(f"setWebhook:  {'ok' if result.ok else 'FAILED'} {result.detail}")
