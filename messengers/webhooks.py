"""Provider webhooks, on the platform's public domain.

Order of work for every request: find the route (public table) → verify the signature on the
raw body with that connection's secret, failing closed (403, nothing stored) → parse (400 on a
malformed body, never 500) → store the events in the tenant's schema (unique key: replays are
no-ops) → answer 200. Applying the events is the workers' job (messengers.services).

The deciding part (route, verify, parse) is `webhook_accept`, which knows nothing of the server
that received the request. Two servers use it: the Django views below, and the fast ingest path
(messengers.ingest) that config.asgi puts in front of Django for the status-heavy POSTs; only
the storing differs (here one INSERT per route in the request; there a group commit).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods
from django_tenants.utils import schema_context

from messengers import selectors
from messengers.adapters.base import (
    Provider,
    WebhookEvent,
    WebhookParseError,
    WebhookRequest,
)
from messengers.adapters.whatsapp import whatsapp_routing_ids
from messengers.models import Connection
from messengers.services.webhook_events import webhook_events_store

logger = logging.getLogger(__name__)

TEXT = "text/plain; charset=utf-8"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
# Meta signs every notification; a request without a well-formed signature is refused before
# its body is even looked at (the same shape serves the e-mail relay's X-Mail-Signature).
META_SIGNATURE = re.compile(r"sha256=[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class Incoming:
    """A webhook POST as received, whichever server received it."""

    urls: tuple[str, ...]  # the public URLs the provider may have called (Twilio signs the URL)
    headers: Mapping[str, str]  # names lower-cased
    body: bytes
    query: Mapping[str, str] = field(default_factory=dict)

    def request(self, url: str | None = None) -> WebhookRequest:
        return WebhookRequest(
            method="POST", url=url or self.urls[0], headers=self.headers, body=self.body, query=self.query
        )


@dataclass(frozen=True)
class Batch:
    """Verified, parsed events for one connection, to be stored in its tenant's schema."""

    route: selectors.Route
    connection: Connection
    events: list[WebhookEvent]


@dataclass(frozen=True)
class Decision:
    """What to answer, and (for a 200) what to store first. Nothing is stored for other codes."""

    status: int
    body: str
    content_type: str = TEXT
    batches: tuple[Batch, ...] = ()


def _refuse(status: int, body: str) -> Decision:
    return Decision(status, body + "\n")


OK = "ok\n"


def webhook_accept(provider: Provider, route_key: str | None, incoming: Incoming) -> Decision:
    """Route, verify and parse one POSTed webhook (WhatsApp, Telegram, Twilio). Reads the routing
    table and the connections through the selectors' short-lived caches."""
    if provider == Provider.WHATSAPP:
        return _accept_whatsapp(route_key, incoming)
    if route_key is None:
        return _refuse(404, "unknown webhook route")
    route = selectors.route_by_key(provider, route_key)
    if route is None:
        return _refuse(404, "unknown webhook route")
    decision = _verify_and_parse(route, incoming)
    if isinstance(decision, Decision):
        return decision
    if provider == Provider.SMS:
        return Decision(200, EMPTY_TWIML, "text/xml", (decision,))
    return Decision(200, OK, TEXT, (decision,))


def _verify_and_parse(
    route: selectors.Route, incoming: Incoming, *, accounts: set[str] | None = None
) -> Batch | Decision:
    found = selectors.connection_adapter_cached(route.schema_name, route.connection_id)
    if found is None:
        return _refuse(404, "unknown connection")
    connection, adapter = found
    candidates = [incoming.request(url) for url in incoming.urls]
    verified = next((candidate for candidate in candidates if adapter.verify_webhook(candidate)), None)
    if verified is None:
        return _refuse(403, "signature mismatch")
    try:
        events = adapter.parse_webhook(verified)
    except WebhookParseError as exc:
        return _refuse(400, f"malformed body: {exc}")
    if accounts is not None:
        events = [event for event in events if event.account_id in accounts]
    return Batch(route, connection, events)


# --------------------------------------------------------------------------------------------
# WhatsApp Cloud API: one callback URL per Meta app, routed by metadata.phone_number_id;
# per-connection URLs work too.
# --------------------------------------------------------------------------------------------
def _accept_whatsapp(route_key: str | None, incoming: Incoming) -> Decision:
    if not META_SIGNATURE.fullmatch(incoming.headers.get("x-hub-signature-256", "").strip()):
        return _refuse(403, "missing or malformed X-Hub-Signature-256")
    own: selectors.Route | None = None
    if route_key:
        own = selectors.route_by_key(Provider.WHATSAPP, route_key)
        if own is None:
            return _refuse(404, "unknown webhook route")
    try:
        ids = whatsapp_routing_ids(incoming.body)
    except WebhookParseError as exc:
        if own is None:
            return _refuse(400, f"malformed body: {exc}")
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
                return _refuse(404, "unknown phone_number_id")
            found = own
        groups.setdefault(found, set()).add(account)
    if not groups:
        return Decision(200, OK)  # nothing for us (e.g. a field we do not subscribe to)
    # Every route's signature must hold before anything is stored for any tenant: the batches
    # are stored only after this returns them all.
    batches: list[Batch] = []
    for route, accounts in groups.items():
        result = _verify_and_parse(route, incoming, accounts=accounts)
        if isinstance(result, Decision):
            return result
        batches.append(result)
    return Decision(200, OK, TEXT, tuple(batches))


# --------------------------------------------------------------------------------------------
# The Django views (the fast path in messengers.ingest takes the same POSTs when config.asgi
# serves; these serve everything else, and every POST under runserver or a plain WSGI server)
# --------------------------------------------------------------------------------------------
def _text(status: int, body: str) -> HttpResponse:
    return HttpResponse(body + "\n", status=status, content_type=TEXT)


def _incoming(request: HttpRequest, urls: tuple[str, ...] | None = None) -> Incoming:
    return Incoming(
        urls=urls or (request.build_absolute_uri(),),
        headers={key.lower(): value for key, value in request.headers.items()},
        body=request.body,
        query=request.GET.dict(),
    )


def _store(decision: Decision) -> HttpResponse:
    """Store a 200 decision's events (one INSERT per route) and answer."""
    for batch in decision.batches:
        with schema_context(batch.route.schema_name):
            try:
                webhook_events_store(connection=batch.connection, events=batch.events, throttle=True)
            except (OperationalError, InterfaceError):
                # nothing stored: the provider retries a non-2xx answer (Meta for up to 7 days)
                logger.warning("webhook for %s not stored: database unavailable", batch.route.schema_name)
                return _text(503, "database unavailable, please retry")
    return HttpResponse(decision.body, status=decision.status, content_type=decision.content_type)


def _respond(
    request: HttpRequest, provider: Provider, route_key: str | None, urls: tuple[str, ...] | None = None
) -> HttpResponse:
    return _store(webhook_accept(provider, route_key, _incoming(request, urls)))


@csrf_exempt
@require_http_methods(["GET", "POST"])
def whatsapp(request: HttpRequest, route_key: str | None = None) -> HttpResponse:
    if request.method == "GET":
        return _whatsapp_handshake(request, route_key)
    return _respond(request, Provider.WHATSAPP, route_key)


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


# Telegram: per-connection URL, X-Telegram-Bot-Api-Secret-Token
@csrf_exempt
@require_http_methods(["POST"])
def telegram(request: HttpRequest, route_key: str) -> HttpResponse:
    return _respond(request, Provider.TELEGRAM, route_key)


def twilio_urls(direct: str, full_path: str) -> tuple[str, ...]:
    """Twilio signs the URL it called: behind a proxy that is PUBLIC_URL + path; directly, the
    request's own."""
    return tuple(dict.fromkeys([direct, settings.PUBLIC_URL + full_path]))


# Twilio: per-connection URL for inbound messages and status callbacks, X-Twilio-Signature over
# the URL Twilio called.
@csrf_exempt
@require_http_methods(["POST"])
def twilio(request: HttpRequest, route_key: str) -> HttpResponse:
    urls = twilio_urls(request.build_absolute_uri(), request.get_full_path())
    return _respond(request, Provider.SMS, route_key, urls=urls)


# --------------------------------------------------------------------------------------------
# E-mail: per-connection URL taking a raw RFC 822 message (Content-Type: message/rfc822), as an
# MTA's pipe script or an inbound relay posts it, signed `X-Mail-Signature: sha256=<hex>`
# (HMAC-SHA256 of the raw body with the connection's inbound secret). Read with a size cap of
# its own (mail with attachments exceeds Django's DATA_UPLOAD_MAX_MEMORY_SIZE); the body is
# never parsed before its signature holds. docs/operations.md "Inbound e-mail". Always served
# by Django (a few mails a minute, not thousands of statuses a second).
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
    incoming = Incoming(
        urls=(request.build_absolute_uri(),),
        headers={key.lower(): value for key, value in request.headers.items()},
        body=body,
    )
    result = _verify_and_parse(route, incoming)
    if isinstance(result, Decision):
        return HttpResponse(result.body, status=result.status, content_type=result.content_type)
    return _store(Decision(200, OK, TEXT, (result,)))
