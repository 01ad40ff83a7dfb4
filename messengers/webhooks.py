"""Provider webhooks, on the platform's public domain.

Order of work for every request: find the route (public table) → verify the signature on the
raw body with that connection's secret, failing closed (403, nothing stored) → parse (400 on a
malformed body, never 500) → store the events in the tenant's schema (unique key: replays are
no-ops) → answer 200. Applying the events is the workers' job (messengers.services).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods
from django_tenants.utils import schema_context

from messengers import selectors
from messengers.adapters.base import (
    ConnectionConfig,
    Provider,
    WebhookParseError,
    WebhookRequest,
)
from messengers.adapters.whatsapp import whatsapp_routing_ids
from messengers.services.webhook_events import webhook_events_store

logger = logging.getLogger(__name__)


def _request(request: HttpRequest, url: str | None = None) -> WebhookRequest:
    return WebhookRequest(
        method=request.method or "POST",
        url=url or request.build_absolute_uri(),
        headers={key.lower(): value for key, value in request.headers.items()},
        body=request.body,
        query=request.GET.dict(),
    )


def _text(status: int, body: str) -> HttpResponse:
    return HttpResponse(body + "\n", status=status, content_type="text/plain; charset=utf-8")


def _ingest(
    route: selectors.Route,
    build: Callable[[ConnectionConfig], list[WebhookRequest]],
    *,
    accounts: set[str] | None = None,
) -> HttpResponse | int:
    """Verify, parse and store for one route. Returns a response on refusal, else #events."""
    with schema_context(route.schema_name):
        found = selectors.connection_adapter_cached(route.schema_name, route.connection_id)
        if found is None:
            return _text(404, "unknown connection")
        connection, adapter = found
        candidates = build(adapter.config)
        verified = next((candidate for candidate in candidates if adapter.verify_webhook(candidate)), None)
        if verified is None:
            return _text(403, "signature mismatch")
        try:
            events = adapter.parse_webhook(verified)
        except WebhookParseError as exc:
            return _text(400, f"malformed body: {exc}")
        if accounts is not None:
            events = [event for event in events if event.account_id in accounts]
        try:
            webhook_events_store(connection=connection, events=events, throttle=True)
        except (OperationalError, InterfaceError):
            # nothing stored: the provider retries a non-2xx answer (Meta for up to 7 days)
            logger.warning("webhook for %s not stored: database unavailable", route.schema_name)
            return _text(503, "database unavailable, please retry")
        return len(events)


# --------------------------------------------------------------------------------------------
# WhatsApp Cloud API: one callback URL per Meta app, routed by metadata.phone_number_id;
# per-connection URLs work too.
# --------------------------------------------------------------------------------------------
# Meta signs every notification; a request without a well-formed signature is refused before
# its body is even looked at.
META_SIGNATURE = re.compile(r"sha256=[0-9a-fA-F]{64}")


@csrf_exempt
@require_http_methods(["GET", "POST"])
def whatsapp(request: HttpRequest, route_key: str | None = None) -> HttpResponse:
    if request.method == "GET":
        return _whatsapp_handshake(request, route_key)
    if not META_SIGNATURE.fullmatch(request.headers.get("X-Hub-Signature-256", "").strip()):
        return _text(403, "missing or malformed X-Hub-Signature-256")
    own: selectors.Route | None = None
    if route_key:
        own = selectors.route_by_key(Provider.WHATSAPP, route_key)
        if own is None:
            return _text(404, "unknown webhook route")
    try:
        ids = whatsapp_routing_ids(request.body)
    except WebhookParseError as exc:
        if own is None:
            return _text(400, f"malformed body: {exc}")
        ids = set()  # verified below, then refused as malformed by the parser
    # Which phone_number_ids go to which connection. Every number that is in the routing table
    # goes to its own connection, also on a per-connection URL (one Meta app may serve the
    # numbers of several tenants); on a per-connection URL, unknown numbers and changes without
    # metadata belong to that connection. On the shared URL they belong to nobody.
    groups: dict[selectors.Route, set[str]] = {own: {""}} if own is not None else {}
    for account in sorted(ids):
        found = selectors.route_by_external_id(Provider.WHATSAPP, account)
        if found is None:
            if own is None:
                logger.warning("WhatsApp webhook for unknown phone_number_id %s", account)
                return _text(404, "unknown phone_number_id")
            found = own
        groups.setdefault(found, set()).add(account)
    if not groups:
        return _text(200, "ok")  # nothing for us (e.g. a field we do not subscribe to)
    incoming = _request(request)
    # Verify every route first: a body is stored for no tenant unless all signatures hold.
    for route in groups:
        with schema_context(route.schema_name):
            pair = selectors.connection_adapter_cached(route.schema_name, route.connection_id)
            if pair is None or not pair[1].verify_webhook(incoming):
                return _text(403, "signature mismatch")
    for route, accounts in groups.items():
        result = _ingest(route, lambda config: [incoming], accounts=accounts)
        if isinstance(result, HttpResponse):
            return result
    return _text(200, "ok")


def _whatsapp_handshake(request: HttpRequest, route_key: str | None) -> HttpResponse:
    mode = request.GET.get("hub.mode", "")
    token = request.GET.get("hub.verify_token", "")
    challenge = request.GET.get("hub.challenge", "")
    if mode != "subscribe" or not token:
        return _text(400, "expected hub.mode=subscribe and hub.verify_token")
    route = selectors.route_by_verify_token(token)
    if route is None or (route_key and selectors.route_by_key(Provider.WHATSAPP, route_key) != route):
        return _text(403, "verify token mismatch")
    return HttpResponse(challenge, content_type="text/plain")


# --------------------------------------------------------------------------------------------
# Telegram: per-connection URL, X-Telegram-Bot-Api-Secret-Token
# --------------------------------------------------------------------------------------------
@csrf_exempt
@require_http_methods(["POST"])
def telegram(request: HttpRequest, route_key: str) -> HttpResponse:
    route = selectors.route_by_key(Provider.TELEGRAM, route_key)
    if route is None:
        return _text(404, "unknown webhook route")
    incoming = _request(request)
    result = _ingest(route, lambda config: [incoming])
    return result if isinstance(result, HttpResponse) else _text(200, "ok")


# --------------------------------------------------------------------------------------------
# Twilio: per-connection URL for inbound messages and status callbacks, X-Twilio-Signature over
# the URL Twilio called. Behind a proxy that is PUBLIC_URL + path; directly, the request's own.
# --------------------------------------------------------------------------------------------
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


@csrf_exempt
@require_http_methods(["POST"])
def twilio(request: HttpRequest, route_key: str) -> HttpResponse:
    route = selectors.route_by_key(Provider.SMS, route_key)
    if route is None:
        return _text(404, "unknown webhook route")

    def candidates(config: Any) -> list[WebhookRequest]:
        urls = [request.build_absolute_uri(), settings.PUBLIC_URL + request.get_full_path()]
        return [_request(request, url) for url in dict.fromkeys(urls)]

    result = _ingest(route, candidates)
    if isinstance(result, HttpResponse):
        return result
    return HttpResponse(EMPTY_TWIML, content_type="text/xml")


# --------------------------------------------------------------------------------------------
# E-mail: per-connection URL taking a raw RFC 822 message (Content-Type: message/rfc822), as an
# MTA's pipe script or an inbound relay posts it, signed `X-Mail-Signature: sha256=<hex>`
# (HMAC-SHA256 of the raw body with the connection's inbound secret). Read with a size cap of
# its own (mail with attachments exceeds Django's DATA_UPLOAD_MAX_MEMORY_SIZE); the body is
# never parsed before its signature holds. docs/operations.md "Inbound e-mail".
# --------------------------------------------------------------------------------------------
MAIL_CONTENT_TYPES = frozenset({"message/rfc822", ""})  # "": a client that sends none


@csrf_exempt
@require_http_methods(["POST"])
def email(request: HttpRequest, route_key: str) -> HttpResponse:
    if not META_SIGNATURE.fullmatch(request.headers.get("X-Mail-Signature", "").strip()):
        return _text(403, "missing or malformed X-Mail-Signature")
    route = selectors.route_by_key(Provider.EMAIL, route_key)
    if route is None:
        return _text(404, "unknown webhook route")
    if request.content_type not in MAIL_CONTENT_TYPES:
        return _text(415, "expected Content-Type: message/rfc822")
    limit = settings.EMAIL_INBOUND_MAX_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return _text(400, "invalid Content-Length")
    if declared > limit:
        return _text(413, f"message larger than {limit} bytes")
    body = request.read(limit + 1)
    if len(body) > limit:
        return _text(413, f"message larger than {limit} bytes")
    incoming = WebhookRequest(
        method="POST",
        url=request.build_absolute_uri(),
        headers={key.lower(): value for key, value in request.headers.items()},
        body=body,
    )
    result = _ingest(route, lambda config: [incoming])
    return result if isinstance(result, HttpResponse) else _text(200, "ok")
