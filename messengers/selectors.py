"""Reads of the messenger layer: adapter configuration, webhook routing, admin lists, sandbox."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Count, F, OuterRef, Q, QuerySet, Subquery
from django_tenants.utils import get_public_schema_name, schema_context

from core import crypto
from core.memo import BoundedTTLCache
from messengers.adapters import get_adapter
from messengers.adapters.base import Adapter, ConnectionConfig, Provider
from messengers.models import Connection, Contact, SandboxMessage, WebhookEvent
from tenants.models import WebhookRoute

WEBHOOK_PATHS = {
    Provider.WHATSAPP: "/webhooks/whatsapp/{route}/",
    Provider.TELEGRAM: "/webhooks/telegram/{route}/",
    Provider.SMS: "/webhooks/twilio/{route}/",
    Provider.EMAIL: "/webhooks/email/{route}/",
}


def connection_credentials(connection: Connection) -> dict[str, str]:
    return {k: str(v) for k, v in crypto.decrypt_json(connection.credentials_encrypted).items()}


def connection_webhook_url(connection: Connection) -> str:
    template = WEBHOOK_PATHS.get(connection.provider_enum)
    if not template:
        return ""
    return settings.PUBLIC_URL + template.format(route=connection.route_key)


def connection_config(connection: Connection) -> ConnectionConfig:
    return ConnectionConfig(
        provider=connection.provider_enum,
        credentials=connection_credentials(connection),
        external_id=connection.external_id,
        account_id=connection.account_id,
        api_base=connection.api_base,
        webhook_url=connection_webhook_url(connection),
        connection_id=connection.pk,
    )


# --------------------------------------------------------------------------------------------
# The demo's look-alike connections (Connection.demo_presents_as)
# --------------------------------------------------------------------------------------------
DEMO_LOOKS = (Provider.WHATSAPP, Provider.TELEGRAM, Provider.EMAIL)


def connection_demo_look(connection: Connection) -> str:
    """The messenger this sandbox connection imitates on the demo's public pages, or "" — always
    "" unless settings.DEMO_MODE is on, so outside the demo no connection poses as another."""
    if not settings.DEMO_MODE or connection.provider != Provider.SANDBOX:
        return ""
    look = connection.demo_presents_as
    return look if look in DEMO_LOOKS else ""


def connection_shown_provider(connection: Connection) -> str:
    """What the public subscribe page shows a connection as: its provider, or the demo look."""
    return connection_demo_look(connection) or connection.provider


def connection_receiving_mail() -> Connection | None:
    """The tenant's first active e-mail connection with inbound mail switched on (an inbound
    secret): replies to its address (plus-addressed ones too) reach the platform."""
    for connection in Connection.objects.filter(provider=Provider.EMAIL, status=Connection.Status.ACTIVE).order_by(
        "pk"
    ):
        try:
            secret = connection_credentials(connection).get("inbound_secret")
        except crypto.SecretDecryptionError:
            continue
        if secret and "@" in connection.external_id:
            return connection
    return None


def connection_list_admin() -> QuerySet[Connection]:
    return Connection.objects.annotate(
        contact_count=Count("contacts", filter=Q(contacts__status=Contact.Status.ACTIVE), distinct=True)
    )


def connection_sandbox() -> Connection | None:
    return Connection.objects.filter(provider=Provider.SANDBOX, status=Connection.Status.ACTIVE).order_by("pk").first()


# --------------------------------------------------------------------------------------------
# Routing (public schema), with a short in-process cache: webhooks arrive thousands of times a
# second and the table changes only when a connection is saved.
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Route:
    schema_name: str
    connection_id: int
    provider: str
    tenant_active: bool


# Unknown keys are cached too (a retrying provider asks again and again), so the cache is bounded:
# route keys in URLs are chosen by whoever sends the request.
ROUTE_CACHE: BoundedTTLCache[Route | None] = BoundedTTLCache(maxsize=4096, ttl=5.0)


# Connection + adapter (decrypted credentials) per (schema, connection id), kept as briefly as
# the routes: thousands of status webhooks a second must not each decrypt the credentials again.
ADAPTER_CACHE: BoundedTTLCache[tuple[Connection, Adapter] | None] = BoundedTTLCache(maxsize=1024, ttl=5.0)


def route_cache_clear() -> None:
    ROUTE_CACHE.clear()


def adapter_cache_clear() -> None:
    """Drop this process's cached adapters (a connection's secrets changed)."""
    ADAPTER_CACHE.clear()


def connection_adapter_cached(schema_name: str, connection_id: int) -> tuple[Connection, Adapter] | None:
    """The connection and its adapter, from ADAPTER_CACHE; None for an unknown connection. Only
    a miss enters the tenant's schema (a hit must cost nothing: the ingest path's event loop)."""

    def load() -> tuple[Connection, Adapter] | None:
        with schema_context(schema_name):
            return _connection_adapter(connection_id)

    return ADAPTER_CACHE.get_or_load((schema_name, connection_id), load)


def _connection_adapter(connection_id: int) -> tuple[Connection, Adapter] | None:
    connection = Connection.objects.filter(pk=connection_id).first()
    if connection is None:
        return None
    return connection, get_adapter(connection_config(connection))


def _route_from_row(row: Any) -> Route:
    return Route(
        schema_name=row.tenant.schema_name,
        connection_id=row.connection_id,
        provider=row.provider,
        tenant_active=row.tenant.status == "active",
    )


# What messengers.models.new_route_key makes (token_urlsafe); anything else is nobody's route.
ROUTE_KEY = re.compile(r"[A-Za-z0-9_-]{1,40}", re.ASCII)


def route_by_key(provider: Provider, route_key: str) -> Route | None:
    if not ROUTE_KEY.fullmatch(route_key):
        return None
    return _cached(
        ("key", f"{provider.value}:{route_key}"), lambda: _lookup(provider=provider.value, route_key=route_key)
    )


def route_by_external_id(provider: Provider, external_id: str) -> Route | None:
    return _cached(
        ("ext", f"{provider.value}:{external_id}"), lambda: _lookup(provider=provider.value, external_id=external_id)
    )


def _lookup(**filters: str) -> Route | None:
    if any("\x00" in value for value in filters.values()):
        return None  # PostgreSQL refuses NUL in text; no route has one

    with schema_context(get_public_schema_name()):
        row = WebhookRoute.objects.select_related("tenant").filter(**filters).first()
        return _route_from_row(row) if row else None


def _cached(key: tuple[str, str], load: Any) -> Route | None:
    return ROUTE_CACHE.get_or_load(key, load)


def route_by_verify_token(token: str) -> Route | None:
    """Meta's GET handshake on the shared /webhooks/whatsapp/ URL carries only the verify token."""
    digest = hashlib.sha256(token.encode()).hexdigest()
    with schema_context(get_public_schema_name()):
        for row in (
            WebhookRoute.objects.select_related("tenant")
            .filter(provider=Provider.WHATSAPP.value)
            .exclude(verify_token_sha256="")
        ):
            if hmac.compare_digest(row.verify_token_sha256, digest):
                return _route_from_row(row)
    return None


# --------------------------------------------------------------------------------------------
# Sandbox
# --------------------------------------------------------------------------------------------
SANDBOX_SEARCH_MAX = 100  # characters of a search term; longer input is cut, never an error
PHONE_PUNCTUATION = re.compile(r"[\s()/.-]+")


def sandbox_people(connection: Connection) -> QuerySet[Contact]:
    return Contact.objects.filter(connection=connection).order_by("display_name", "address")


def sandbox_connections() -> QuerySet[Connection]:
    """Every active sandbox connection (the simulator switches between them)."""
    return Connection.objects.filter(provider=Provider.SANDBOX, status=Connection.Status.ACTIVE).order_by("pk")


def sandbox_phone_list(connection: Connection, *, query: str = "") -> QuerySet[Contact]:
    """The simulated phones of a sandbox connection with their last chat bubble (`last_text`,
    `last_at`), newest conversation first, filtered by name, number or last message text.

    One query however many phones (the last bubble is a subquery, not a query per row). The
    search term is cut to SANDBOX_SEARCH_MAX characters and stripped of NUL (PostgreSQL refuses
    it in text); LIKE wildcards in it match literally (Django escapes them for icontains)."""
    last = SandboxMessage.objects.filter(connection=connection, address=OuterRef("address")).order_by("-pk")
    phones = Contact.objects.filter(connection=connection).annotate(
        last_text=Subquery(last.values("text")[:1]), last_at=Subquery(last.values("created_at")[:1])
    )
    term = query.replace("\x00", "").strip()[:SANDBOX_SEARCH_MAX]
    if term:
        match = Q(display_name__icontains=term) | Q(address__icontains=term) | Q(last_text__icontains=term)
        digits = PHONE_PUNCTUATION.sub("", term)
        if digits and digits != term:
            match |= Q(address__icontains=digits)  # "+49 155 …" finds +49155…
        phones = phones.filter(match)
    return phones.order_by(F("last_at").desc(nulls_last=True), "display_name", "address", "pk")


def sandbox_conversation(connection: Connection, address: str, after_id: int = 0) -> QuerySet[SandboxMessage]:
    return SandboxMessage.objects.filter(connection=connection, address=address, pk__gt=after_id).order_by("pk")


def messenger_rollup() -> dict[str, int]:
    """Per-tenant figures for the operator overview: connections in trouble, webhook backlog."""
    return {
        "connections_paused": Connection.objects.exclude(status=Connection.Status.ACTIVE).count(),
        "webhook_events_waiting": WebhookEvent.objects.filter(state=WebhookEvent.State.PENDING).count(),
        "webhook_events_failed": WebhookEvent.objects.filter(state=WebhookEvent.State.FAILED).count(),
    }


def connection_list_in_trouble() -> QuerySet[Connection]:
    """Connections paused by an admin or automatically after credential errors, most recent
    first, with the reason in status_detail (the admin start page's "needs you" list)."""
    return Connection.objects.filter(status=Connection.Status.PAUSED).order_by("-updated_at", "pk")


def connection_exists_outside_sandbox() -> bool:
    """Whether the tenant has connected a real messenger (the admin start page's first step)."""
    return Connection.objects.exclude(provider=Provider.SANDBOX).exists()
