"""Add a messenger connection to a tenant from the command line (operators, scripts, the demo).

    python manage.py connection_add stuttgart telegram --name "Stuttgart Bot" \\
        --credential bot_token=123456:ABC --public-address @stuttgart_bot

A connection no channel carries answers every START with "available: none", so the new one is
added to every public channel unless `--channels` names others or `--no-channels` none; the
output says which. A Telegram webhook secret the command generated is printed once.

It lives in `channels`, not `messengers`, because it wires the new connection into channels:
channels build on messengers, and messengers names no channel.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django_tenants.utils import schema_context

from channels.models import Channel
from channels.selectors import channel_list_public
from channels.services import channel_update
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
        parser.add_argument(
            "--channels",
            default=None,
            metavar="SLUG[,SLUG…]",
            help="the channels that carry the connection (default: every public channel)",
        )
        parser.add_argument(
            "--no-channels", action="store_true", help="no channel carries it yet (nobody can subscribe through it)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        credentials: dict[str, str] = {}
        for item in options["credential"]:
            key, sep, value = item.partition("=")
            if not sep:
                raise CommandError(f"--credential needs KEY=VALUE, got {item!r}")
            credentials[key.strip()] = value
        if options["channels"] is not None and options["no_channels"]:
            raise CommandError("use either --channels or --no-channels")
        tenant = Tenant.objects.filter(schema_name=options["schema"]).first()
        if tenant is None or tenant.schema_name == "public":
            raise CommandError(f"no tenant {options['schema']!r}")
        with schema_context(tenant.schema_name):
            with transaction.atomic():  # a refused channel leaves no connection behind
                channels = self._channels(options)
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
                    for channel in channels:
                        channel_update(channel=channel, connections=[*channel.connections.all(), connection])
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
            if connection.provider == Provider.TELEGRAM and not credentials.get("webhook_secret", "").strip():
                secret = selectors.connection_credentials(connection)["webhook_secret"]
                self.stdout.write(f"webhook secret: {secret}")
                self.stdout.write(
                    "             (generated, shown only now: Telegram sends it with every update; "
                    '--register-webhook or the admin\'s "Register webhook" gives it to Telegram)'
                )
            self._report_channels(channels, chosen=options["channels"] is not None or options["no_channels"])
            if options["register_webhook"] and connection.provider == Provider.TELEGRAM:
                result = services.connection_register_webhook(connection=connection)
                self.stdout.write(f"setWebhook:  {'ok' if result.ok else 'FAILED'} {result.detail}")

    @staticmethod
    def _channels(options: dict[str, Any]) -> list[Channel]:
        if options["no_channels"]:
            return []
        if options["channels"] is None:
            return list(channel_list_public())
        slugs = [slug.strip().lower() for slug in options["channels"].split(",") if slug.strip()]
        found = {channel.slug: channel for channel in Channel.objects.filter(slug__in=slugs)}
        missing = [slug for slug in slugs if slug not in found]
        if missing:
            known = ", ".join(Channel.objects.order_by("slug").values_list("slug", flat=True)) or "none"
            raise CommandError(f"no channel {missing[0]!r}; the channels are: {known}")
        return [found[slug] for slug in dict.fromkeys(slugs)]

    def _report_channels(self, channels: list[Channel], *, chosen: bool) -> None:
        if not channels:
            self.stdout.write(
                self.style.WARNING(
                    "channels:    none: no channel carries it, so people cannot subscribe through it yet. "
                    'Add it to a channel (admin: Channels, "carried by") or use --channels.'
                )
            )
            return
        names = ", ".join(channel.slug for channel in channels)
        how = "" if chosen else " (every public channel; choose with --channels SLUG,…, or --no-channels)"
        self.stdout.write(f"channels:    {names}{how}")
