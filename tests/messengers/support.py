"""Shared helpers for the messenger-layer tests: connections made through the services, request
signing written from providers.md (independently of the adapters and the fakes), webhook posts
through the Django test client on the public domain, and counting events in every tenant."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django.core.cache import cache
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context

from core.tenancy import connection as db
from messengers import selectors, services
from messengers.models import Connection, WebhookEvent
from tenants.models import Tenant
from tests.conftest import TENANT_A, TENANT_B
from tests.fakes.fixtures import (
    TG_TOKEN,
    TW_ACCOUNT,
    TW_NUMBER,
    TW_TOKEN,
    WA_APP_SECRET,
    WA_PHONE_NUMBER_ID,
    WA_TOKEN,
    WA_VERIFY_TOKEN,
    WA_WABA_ID,
)

WA_PATH = "/webhooks/whatsapp/"


def forget_caches() -> None:
    """Route and adapter caches live 5 s per process and the apply flag APPLY_LOCK_SECONDS in the
    cache; a test must not see the previous test's (rolled back) connections through them."""
    selectors.route_cache_clear()
    selectors.adapter_cache_clear()
    # The flag is per tenant (tenant-aware cache keys). A rolled-back test never ran the apply
    # task it queued on commit, so its flag would keep the next test from queueing one.
    with KeepTenant():
        for schema in (TENANT_A[0], TENANT_B[0]):
            with schema_context(schema):
                cache.delete(services.APPLY_FLAG)


# --------------------------------------------------------------------------------------------
# Connections (through the service, so the public routing table is written too)
# --------------------------------------------------------------------------------------------
def whatsapp_connection(
    *,
    pnid: str = WA_PHONE_NUMBER_ID,
    app_secret: str = WA_APP_SECRET,
    access_token: str = WA_TOKEN,
    verify_token: str = WA_VERIFY_TOKEN,
    api_base: str = "",
    name: str = "WhatsApp",
    waba_id: str = WA_WABA_ID,
) -> Connection:
    credentials = {"access_token": access_token, "app_secret": app_secret}
    if verify_token:
        credentials["verify_token"] = verify_token
    return services.connection_create(
        provider="whatsapp",
        name=name,
        credentials=credentials,
        external_id=pnid,
        account_id=waba_id,
        api_base=api_base,
        by_operator=True,  # an operator points connections at the fakes (messengers.endpoints)
    )


def telegram_connection(
    *, token: str = TG_TOKEN, secret: str = "", api_base: str = "", name: str = "Bot"
) -> Connection:
    credentials = {"bot_token": token}
    if secret:
        credentials["webhook_secret"] = secret
    return services.connection_create(
        provider="telegram", name=name, credentials=credentials, api_base=api_base, by_operator=True
    )


def twilio_connection(
    *, token: str = TW_TOKEN, api_base: str = "", name: str = "SMS", number: str = TW_NUMBER
) -> Connection:
    return services.connection_create(
        provider="sms",
        name=name,
        credentials={"auth_token": token},
        external_id=number,
        account_id=TW_ACCOUNT,
        api_base=api_base,
        by_operator=True,
    )


def route_path(conn: Connection) -> str:
    """The per-connection webhook path (what connection_webhook_url gives, without PUBLIC_URL)."""
    return selectors.WEBHOOK_PATHS[conn.provider_enum].format(route=conn.route_key)


# --------------------------------------------------------------------------------------------
# Signatures, written from providers.md 1.6 / 2.5 / 3.5
# --------------------------------------------------------------------------------------------
def meta_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def twilio_signature(token: str, url: str, params: Sequence[tuple[str, str]]) -> str:
    grouped: dict[str, list[str]] = {}
    for name, value in params:
        grouped.setdefault(name, []).append(value)
    data = url + "".join(name + value for name in sorted(grouped) for value in sorted(grouped[name]))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def meta_json(payload: Any) -> bytes:
    """Compact JSON with \\uXXXX escapes: the form Meta sends and signs."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=True).encode()


def wa_envelope(*changes: tuple[str | None, Mapping[str, Any]], waba_id: str = WA_WABA_ID) -> dict[str, Any]:
    """A notification with one change per (phone_number_id, value); None leaves metadata out."""
    built = []
    for pnid, value in changes:
        full: dict[str, Any] = {"messaging_product": "whatsapp"}
        if pnid is not None:
            full["metadata"] = {"display_phone_number": "15550783881", "phone_number_id": pnid}
        full.update(value)
        built.append({"field": "messages", "value": full})
    return {"object": "whatsapp_business_account", "entry": [{"id": waba_id, "changes": built}]}


def wa_status(
    wamid: str, status: str, timestamp: int, *, code: int | None = None, recipient: str = "491701234567"
) -> dict[str, Any]:
    item: dict[str, Any] = {"id": wamid, "status": status, "timestamp": str(timestamp), "recipient_id": recipient}
    if code is not None:
        item["errors"] = [{"code": code, "title": f"error {code}", "message": f"error {code}"}]
    return item


def wa_text(wamid: str, sender: str, text: str, timestamp: int) -> dict[str, Any]:
    return {"from": sender, "id": wamid, "timestamp": str(timestamp), "type": "text", "text": {"body": text}}


# --------------------------------------------------------------------------------------------
# Posting webhooks through the Django test client (the public domain)
# --------------------------------------------------------------------------------------------
class KeepTenant:
    """The tenant middleware leaves the connection in the schema of the last request; tests go
    on working in their own tenant afterwards."""

    def __enter__(self) -> None:
        self.tenant = db.tenant

    def __exit__(self, *exc: object) -> None:
        if self.tenant is not None and self.tenant.schema_name != "public":
            db.set_tenant(self.tenant)
        else:
            db.set_schema_to_public()


def post_whatsapp(
    client: Any,  # the Django test client, or tests.messengers.ingest_support.IngestClient
    body: bytes,
    *,
    secret: str | None = WA_APP_SECRET,
    path: str = WA_PATH,
    signature: str | None = None,
) -> Any:
    headers: dict[str, str] = {}
    if signature is not None:
        headers["HTTP_X_HUB_SIGNATURE_256"] = signature
    elif secret is not None:
        headers["HTTP_X_HUB_SIGNATURE_256"] = meta_signature(secret, body)
    with KeepTenant():
        return client.post(path, data=body, content_type="application/json", **headers)


def post_telegram(client: Client, conn_or_path: Connection | str, body: bytes, *, secret: str | None) -> Any:
    path = conn_or_path if isinstance(conn_or_path, str) else route_path(conn_or_path)
    headers = {"HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN": secret} if secret is not None else {}
    with KeepTenant():
        return client.post(path, data=body, content_type="application/json", **headers)  # type: ignore[arg-type]


def post_twilio(
    client: Client,
    path: str,
    params: Sequence[tuple[str, str]],
    *,
    token: str | None = TW_TOKEN,
    signed_url: str | None = None,
    signature: str | None = None,
    host: str = "localhost",
) -> Any:
    """POST form params; signed over `signed_url` (default: the URL the test client calls)."""
    body = urlencode(list(params)).encode()
    headers: dict[str, str] = {"HTTP_HOST": host}
    if signature is None and token is not None:
        signature = twilio_signature(token, signed_url or f"http://{host}{path}", params)
    if signature is not None:
        headers["HTTP_X_TWILIO_SIGNATURE"] = signature
    with KeepTenant():
        return client.post(
            path,
            data=body,
            content_type="application/x-www-form-urlencoded",
            **headers,  # type: ignore[arg-type]
        )


def replay(client: Client, received: Any, path: str, *, host: str = "localhost") -> Any:
    """Send a webhook a fake pushed (exact bytes and headers) to our endpoint instead."""
    forwarded = {
        "HTTP_" + name.upper().replace("-", "_"): value
        for name, value in received.headers.items()
        if name.startswith(("x-hub-", "x-telegram-", "x-twilio-"))
    }
    with KeepTenant():
        return client.post(
            path,
            data=received.body,
            content_type=received.headers.get("content-type", "application/json"),
            HTTP_HOST=host,
            **forwarded,
        )


# --------------------------------------------------------------------------------------------
# Looking at every tenant
# --------------------------------------------------------------------------------------------
def events_per_tenant(tenants: Iterable[Tenant]) -> dict[str, int]:
    counts = {}
    with KeepTenant():
        for tenant in tenants:
            with schema_context(tenant.schema_name):
                counts[tenant.schema_name] = WebhookEvent.objects.count()
    return counts


def apply_all() -> dict[str, int]:
    """Work off everything stored, deferred rows included (as the retry loop eventually would)."""
    WebhookEvent.objects.exclude(state=WebhookEvent.State.APPLIED).update(
        applied_at=timezone.now() - timedelta(seconds=1)
    )
    return services.webhook_events_apply()
