"""Re-encrypt every stored provider credential and webhook secret with the newest key in FERNET_KEYS."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django_tenants.utils import schema_context

from messengers.outgoing.services import webhook_endpoints_reencrypt
from messengers.services import connection_rotate_credentials
from tenants.models import Tenant


class Command(BaseCommand):
    help = "After prepending a new key to FERNET_KEYS: move every secret to it (then drop the old key)."

    def handle(self, *args: Any, **options: Any) -> None:
        total = 0
        for schema in Tenant.objects.exclude(schema_name="public").values_list("schema_name", flat=True):
            with schema_context(schema):
                count = connection_rotate_credentials()
                hooks = webhook_endpoints_reencrypt()
            total += count + hooks
            self.stdout.write(f"{schema}: {count} connection(s) re-encrypted")
            if hooks:
                self.stdout.write(f"{schema}: {hooks} outgoing webhook secret(s) re-encrypted")
        self.stdout.write(self.style.SUCCESS(f"done: {total} secret(s) now use the newest key"))
