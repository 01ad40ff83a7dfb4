"""Fake WhatsApp Business Cloud API (Meta Graph API), per providers.md section 1.

API (bearer token in `Authorization`):
    POST /{version}/{phone_number_id}/messages         send (text, image, video, audio, document,
                                                       sticker, location, contacts, reaction,
                                                       interactive, template) or mark-as-read
    GET  /{version}/{phone_number_id}                  phone-number lookup
    GET  /{version}/{waba_id}/message_templates        template list with cursor paging

Behaviour: Graph error envelopes with the documented codes, a seeded template catalogue
(132001/132000/132015/132016), the 24-hour customer-service window per recipient (free-form to a
closed window: 200, then an async `failed` status 131047), throughput limit per phone number
(130429 as HTTP 429 or 400), optional pair rate (131056), fault injection, and status webhooks
(sent → delivered → read, batched per phone number, signed with `X-Hub-Signature-256` over the
exact ASCII-escaped bytes sent). Control API: see `FakeServer` plus /_fake/window, /_fake/templates,
/_fake/template_status, /_fake/numbers, /_fake/synthesize, /_fake/handshake.

    python -m tests.fakes.whatsapp --port 8081 --app-secret S --access-token T --webhook-url URL --rate 80
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import math
import re
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import aiohttp
from aiohttp import web

from tests.fakes.common import (
    CommonSettings,
    Delivery,
    FakeServer,
    Fault,
    SlidingWindowLimiter,
    common_arguments,
    common_settings,
    dumps,
    json_response,
    run_cli,
)

API_VERSION_PATTERN = r"v[0-9]+\.[0-9]+"
DEFAULT_PHONE_NUMBER_ID = "106540352242922"
DEFAULT_DISPLAY_NUMBER = "15550783881"
DEFAULT_WABA_ID = "102290129340398"
DEFAULT_APP_SECRET = "app-secret"
DEFAULT_ACCESS_TOKEN = "access-token"
ERROR_HREF = "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"

# code -> (title, HTTP status, details)
GRAPH_ERRORS: dict[int, tuple[str, int, str]] = {
    0: ("AuthException", 401, "We were unable to authenticate the app user."),
    1: ("API Unknown", 400, "Invalid request or possible server error."),
    2: ("API Service", 503, "Temporary due to downtime or due to being overloaded."),
    3: ("API Method", 500, "Capability or permissions issue."),
    4: ("API Too Many Calls", 400, "The app has reached its API call rate limit."),
    10: ("API Permission Denied", 403, "Permission is either not granted or has been removed."),
    100: ("Invalid parameter", 400, "The request included one or more unsupported or misspelled parameters."),
    190: ("Access token has expired", 401, "Error validating access token."),
    368: ("Temporarily blocked for policies violations", 403, "The WhatsApp Business Account is restricted."),
    80007: ("Rate limit issues", 400, "The WhatsApp Business Account has reached its rate limit."),
    130429: ("Rate limit hit", 429, "Cloud API message throughput has been reached."),
    130472: ("User's number is part of an experiment", 400, "Failed to send message because of an experiment."),
    131000: ("Something went wrong", 500, "Message failed to send due to an unknown error."),
    131005: ("Access denied", 403, "Permission is either not granted or has been removed."),
    131008: ("Required parameter is missing", 400, "The request is missing a required parameter."),
    131009: ("Parameter value is not valid", 400, "One or more parameter values are invalid."),
    131016: ("Service unavailable", 503, "A service is temporarily unavailable."),
    131021: ("Recipient cannot be sender", 400, "Sender and recipient phone number is the same."),
    131026: ("Message undeliverable", 400, "Unable to deliver message."),
    131030: ("Recipient phone number not in allowed list", 400, "Add the recipient to the allowed list."),
    131031: ("Account has been locked", 403, "The WhatsApp Business Account is locked."),
    131042: ("Business eligibility payment issue", 400, "There was an error related to your payment method."),
    131045: ("Incorrect certificate", 400, "Message failed to send due to a phone number registration error."),
    131047: (
        "Re-engagement message",
        400,
        "Message failed to send because more than 24 hours have passed since the customer last replied to this number.",
    ),
    131048: ("Spam rate limit hit", 400, "Message failed to send because there are restrictions on messages."),
    131049: ("This message was not delivered to maintain healthy ecosystem engagement.", 400, "Per-user limit."),
    131050: ("User has stopped marketing messages", 400, "The user opted out of marketing messages."),
    131051: ("Unsupported message type", 400, "Unsupported message type."),
    131052: ("Media download error", 400, "Unable to download the media sent by the user."),
    131053: ("Media upload error", 400, "Unable to upload the media used in the message."),
    131056: (
        "(Business Account, Consumer Account) pair rate limit hit",
        400,
        "Too many messages sent from the sender phone number to the same recipient phone number in a short "
        "period of time.",
    ),
    131057: ("Account in maintenance mode", 500, "Business Account is in maintenance mode."),
    132000: ("Number of parameters does not match the expected number of params", 400, "Parameter count mismatch."),
    132001: ("Template name does not exist in the translation", 404, "Template does not exist in that language."),
    132005: ("Translated text too long", 400, "Translated text is too long."),
    132007: ("Template Format Character Policy Violated", 400, "Template content violates a WhatsApp policy."),
    132012: ("Parameter format does not match format in the created template", 400, "Parameter format mismatch."),
    132015: ("Template is Paused", 400, "Template is paused due to low quality."),
    132016: ("Template is Disabled", 400, "Template has been paused too many times and is disabled."),
    135000: ("Generic user error", 400, "Message failed to send because of an unknown error."),
}

MEDIA_TYPES = ("image", "video", "audio", "document", "sticker")
MESSAGE_TYPES = frozenset({*MEDIA_TYPES, "text", "location", "contacts", "interactive", "template", "reaction"})
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
PHONE = re.compile(r"\+?[0-9]{7,15}")
NON_DIGITS = re.compile(r"[^0-9]")

DEFAULT_TEMPLATES: tuple[dict[str, Any], ...] = (
    {
        "name": "hello_world",
        "language": "en_US",
        "status": "APPROVED",
        "category": "UTILITY",
        "components": [{"type": "BODY", "text": "Hello World"}],
    },
    {
        "name": "citizen_alert_v2",
        "language": "de",
        "status": "APPROVED",
        "category": "UTILITY",
        "components": [
            {"type": "HEADER", "format": "IMAGE"},
            {"type": "BODY", "text": "Achtung: {{1}} ist ab {{2}} gesperrt."},
            {
                "type": "BUTTONS",
                "buttons": [
                    {"type": "QUICK_REPLY", "text": "Verstanden"},
                    {"type": "URL", "text": "Details", "url": "https://example.org/r/{{1}}"},
                ],
            },
        ],
    },
    {
        "name": "newsletter_update",
        "language": "de",
        "status": "APPROVED",
        "category": "MARKETING",
        "components": [
            {"type": "BODY", "text": "Neuigkeiten aus {{1}}: {{2}}"},
            {"type": "FOOTER", "text": "Abmelden mit STOP"},
        ],
    },
    {
        "name": "newsletter_update",
        "language": "en_US",
        "status": "APPROVED",
        "category": "MARKETING",
        "components": [{"type": "BODY", "text": "News from {{1}}: {{2}}"}],
    },
    {
        "name": "video_briefing",
        "language": "de",
        "status": "APPROVED",
        "category": "UTILITY",
        "components": [{"type": "HEADER", "format": "VIDEO"}, {"type": "BODY", "text": "Briefing {{1}}"}],
    },
    {
        "name": "paused_promo",
        "language": "de",
        "status": "PAUSED",
        "category": "MARKETING",
        "components": [{"type": "BODY", "text": "Angebot"}],
    },
    {
        "name": "disabled_promo",
        "language": "de",
        "status": "DISABLED",
        "category": "MARKETING",
        "components": [{"type": "BODY", "text": "Alt"}],
    },
    {
        "name": "pending_notice",
        "language": "de",
        "status": "PENDING",
        "category": "UTILITY",
        "components": [{"type": "BODY", "text": "Bald"}],
    },
)


def digits(value: str) -> str:
    return NON_DIGITS.sub("", value)


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def graph_error(
    code: int,
    *,
    message: str = "",
    http_status: int | None = None,
    details: str = "",
    subcode: int | None = None,
) -> web.Response:
    title, default_status, default_details = GRAPH_ERRORS.get(code, ("Unknown error", 400, "Unknown error."))
    error: dict[str, Any] = {
        "message": f"(#{code}) {message or title}",
        "type": "OAuthException",
        "code": code,
        "error_data": {"messaging_product": "whatsapp", "details": details or default_details},
        "fbtrace_id": "A" + uuid.uuid4().hex[:22],
    }
    if code == 190:
        error["message"] = "Error validating access token: The session is invalid because the user logged out."
        error["error_subcode"] = 467
        del error["error_data"]
    if subcode is not None:
        error["error_subcode"] = subcode
    return json_response({"error": error}, http_status or default_status)


@dataclass
class PhoneNumber:
    id: str
    display_phone_number: str = DEFAULT_DISPLAY_NUMBER
    verified_name: str = "Stadt Musterstadt"
    waba_id: str = DEFAULT_WABA_ID
    app_secret: str | None = None  # None = the fake's app secret
    webhook_url: str | None = None  # None = settings.webhook_url
    quality_rating: str = "GREEN"


@dataclass
class WhatsAppSettings(CommonSettings):
    status_delays: dict[str, float] = field(
        default_factory=lambda: {"sent": 0.05, "delivered": 0.3, "read": 1.0, "failed": 0.1, "duplicate": 0.05}
    )
    statuses: tuple[str, ...] = ("sent", "delivered", "read")  # pushed for every accepted message
    enforce_window: bool = True  # free-form outside the 24 h window fails with 131047
    window_hours: float = 24.0
    rate_limit_status: int = 429  # HTTP status of 130429 (Meta uses 429 and 400)
    pair_limit: int = 0  # messages per pair_window to one recipient; 0 = off (131056)
    pair_window: float = 6.0
    batch_size: int = 1  # statuses per webhook POST
    batch_linger: float = 0.0  # seconds a partial batch may wait (0 = end of the loop iteration)
    strict_numbers: bool = False  # unknown phone_number_id -> error 100 (else auto-registered)


class FakeWhatsApp(FakeServer):
    name: ClassVar[str] = "whatsapp"
    settings_class: ClassVar[type[CommonSettings]] = WhatsAppSettings
    settings: WhatsAppSettings

    def __init__(
        self,
        *,
        app_secret: str = DEFAULT_APP_SECRET,
        access_token: str | Iterable[str] = DEFAULT_ACCESS_TOKEN,
        phone_number_id: str | Iterable[str] | None = DEFAULT_PHONE_NUMBER_ID,
        waba_id: str = DEFAULT_WABA_ID,
        templates: Iterable[Mapping[str, Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.app_secret = app_secret
        self.tokens = {access_token} if isinstance(access_token, str) else set(access_token)
        self.waba_id = waba_id
        self.numbers: dict[str, PhoneNumber] = {}
        ids = [phone_number_id] if isinstance(phone_number_id, str) else list(phone_number_id or ())
        for index, pnid in enumerate(ids):
            self.numbers[pnid] = PhoneNumber(id=pnid, display_phone_number=str(15550783881 + index), waba_id=waba_id)
        self._initial_numbers = dict(self.numbers)
        self._initial_templates = [dict(t) for t in (DEFAULT_TEMPLATES if templates is None else templates)]
        self.templates: dict[tuple[str, str], dict[str, Any]] = {}
        self._load_templates(self._initial_templates)
        self.windows: dict[str, float] = {}  # wa_id -> wall time of the last inbound message
        self.inbound_ids: set[str] = set()
        self.pair_limiter = SlidingWindowLimiter(None)
        self._seq = 0
        self._salt = uuid.uuid4().hex[:8].upper()

    # ------------------------------------------------------------------ state
    def _load_templates(self, items: Iterable[Mapping[str, Any]]) -> None:
        self.templates = {}
        for item in items:
            self._add_template(item)

    def _add_template(self, item: Mapping[str, Any]) -> dict[str, Any]:
        template: dict[str, Any] = {
            "name": str(item["name"]),
            "language": str(item["language"]),
            "status": str(item.get("status", "APPROVED")).upper(),
            "category": str(item.get("category", "UTILITY")).upper(),
            "id": str(
                item.get("id")
                or int(hashlib.sha256(f"{item['name']}/{item['language']}".encode()).hexdigest()[:12], 16)
            ),
            "parameter_format": str(item.get("parameter_format", "POSITIONAL")),
            "components": [dict(c) for c in item.get("components") or [{"type": "BODY", "text": item.get("body", "")}]],
        }
        self.templates[(template["name"], template["language"])] = template
        return template

    def reset_state(self) -> None:
        self.numbers = dict(self._initial_numbers)
        self._load_templates(self._initial_templates)
        self.windows.clear()
        self.inbound_ids.clear()
        self.pair_limiter.clear()

    def on_settings_changed(self, changed: set[str]) -> None:
        if not changed or changed & {"pair_limit", "pair_window"}:
            self.pair_limiter = SlidingWindowLimiter(self.settings.pair_limit or None, self.settings.pair_window)
        if self._batcher is not None:
            self._batcher.size = max(1, self.settings.batch_size)
            self._batcher.linger = self.settings.batch_linger

    def recipient_key(self, recipient: str) -> str:
        return digits(recipient)

    def default_fault(self, kind: str) -> Fault:
        if kind == "5xx":
            return Fault("5xx", code=131000, http_status=500)
        if kind == "rate_limit":
            return Fault("rate_limit", code=130429)
        if kind == "async_fail":
            return Fault("async_fail", code=131026)
        if kind == "error":
            return Fault("error", code=131026)
        return Fault(kind)

    def config_extra(self) -> dict[str, Any]:
        return {
            "phone_numbers": {k: vars(v) for k, v in self.numbers.items()},
            "waba_id": self.waba_id,
            "windows": dict(self.windows),
        }

    def _number(self, pnid: str) -> PhoneNumber | None:
        number = self.numbers.get(pnid)
        if number is None and not self.settings.strict_numbers and pnid.isdigit():
            number = self.numbers[pnid] = PhoneNumber(
                id=pnid, display_phone_number="1555" + pnid[-7:].rjust(7, "0"), waba_id=self.waba_id
            )
        return number

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return False
        token = header[7:].strip()
        if not token:
            return False
        return not self.tokens or token in self.tokens

    def window_open(self, wa_id: str) -> bool:
        last = self.windows.get(wa_id)
        return last is not None and time.time() - last < self.settings.window_hours * 3600

    def _new_wamid(self, wa_id: str) -> str:
        self._seq += 1
        raw = f"{wa_id}_{self._salt}{self._seq:012d}".encode()
        return "wamid." + base64.b64encode(raw).decode()

    # ------------------------------------------------------------------ routes
    def add_routes(self, app: web.Application) -> None:
        version = "{version:" + API_VERSION_PATTERN + "}"
        app.router.add_post(f"/{version}/{{pnid}}/messages", self._handle_messages)
        app.router.add_get(f"/{version}/{{waba_id}}/message_templates", self._handle_templates)
        app.router.add_get(f"/{version}/{{object_id}}", self._handle_lookup)
        app.router.add_post("/_fake/handshake", self._control_handshake)

    def control_routes(self) -> list[tuple[str, str, Any]]:
        return [
            ("POST", "/window", lambda p: self._set_window(**p)),
            ("GET", "/templates", lambda p: {"templates": list(self.templates.values())}),
            ("POST", "/templates", lambda p: self._add_template(p)),
            ("POST", "/template_status", lambda p: self._set_template_status(**p)),
            ("POST", "/numbers", lambda p: vars(self._register_number(**p))),
            ("POST", "/synthesize", lambda p: self._synthesize(**p)),
        ]

    async def _handle_messages(self, request: web.Request) -> web.Response:
        now = time.monotonic()
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            entry = self.log.add(request, raw.decode("utf-8", "replace"), kind="send", now=now)
            return self._finish(entry, graph_error(100, message="Invalid JSON body"), "error:100")
        if body.get("status") == "read" and "message_id" in body:
            entry = self.log.add(request, body, kind="mark_read", now=now)
            return self._mark_read(request, body, entry)
        to = body.get("to")
        wa_id = digits(to) if isinstance(to, str) else ""
        entry = self.log.add(request, body, kind="send", recipient=wa_id, now=now)
        self.stats.attempt(now)
        if not self._authorized(request):
            return self._finish(entry, graph_error(190), "error:190")
        number = self._number(request.match_info["pnid"])
        if number is None:
            return self._unknown_object(entry, request.match_info["pnid"], "post")
        invalid = self._validate(body)
        if invalid is not None:
            return self._finish(entry, graph_error(invalid[0], details=invalid[1]), f"error:{invalid[0]}")
        async_fail: int | None = None
        fault = self.faults.pick(wa_id)
        if fault is not None:
            if fault.kind == "async_fail":
                async_fail = fault.code
            else:
                response = await self._fault_response(request, fault)
                if response is None:  # connection already reset: nothing will be sent
                    self.stats.outcomes["fault:reset"] += 1
                    return web.Response()
                return self._finish(entry, response, f"fault:{fault.kind}")
        wait = self.limiter.try_acquire(number.id, now)
        if wait is not None:
            return self._finish(entry, graph_error(130429, http_status=self.settings.rate_limit_status), "error:130429")
        if self.settings.pair_limit and self.pair_limiter.try_acquire(f"{number.id}:{wa_id}", now) is not None:
            return self._finish(entry, graph_error(131056), "error:131056")
        message_type = body.get("type", "text")
        category = "service"
        template_status = ""
        if message_type == "template":
            problem, template = self._check_template(body.get("template"))
            if problem is not None:
                return self._finish(entry, graph_error(problem[0], details=problem[1]), f"error:{problem[0]}")
            assert template is not None
            category = template["category"].lower()
            template_status = "accepted"
        elif async_fail is None and self.settings.enforce_window and not self.window_open(wa_id):
            async_fail = 131047
        wamid = self._new_wamid(wa_id)
        self.stats.accepted(now)
        reference = body.get("biz_opaque_callback_data") or ""
        self.record_sent(
            {
                "id": wamid,
                "to": to,
                "wa_id": wa_id,
                "type": message_type,
                "phone_number_id": number.id,
                "reference": reference,
                "body": body,
                "at": time.time(),
                "async_error": async_fail,
            }
        )
        self._schedule_statuses(number.id, wamid, wa_id, reference, async_fail, category)
        message: dict[str, Any] = {"id": wamid}
        if template_status:
            message["message_status"] = template_status
        result = {"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": wa_id}], "messages": [message]}
        return self._finish(entry, json_response(result), "accepted_async_fail" if async_fail else "ok")

    def _finish(self, entry: dict[str, Any], response: web.Response, outcome: str) -> web.Response:
        entry["status"] = response.status
        if outcome != "ok":
            self.stats.outcomes[outcome] += 1
        self.stats.http_status[response.status] += 1
        return response

    def _unknown_object(self, entry: dict[str, Any], object_id: str, verb: str) -> web.Response:
        message = (
            f"Unsupported {verb} request. Object with ID '{object_id}' does not exist, cannot be loaded due to "
            "missing permissions, or does not support this operation."
        )
        return self._finish(entry, graph_error(100, message=message, subcode=33), "error:100")

    async def _fault_response(self, request: web.Request, fault: Fault) -> web.Response | None:
        if fault.kind in ("timeout", "reset"):
            if await self.apply_transport_fault(request, fault):
                return None
            return graph_error(2, http_status=504)
        if fault.kind == "rate_limit":
            headers = {"Retry-After": str(math.ceil(fault.retry_after))} if fault.retry_after else None
            response = graph_error(
                fault.code or 130429, http_status=fault.http_status or self.settings.rate_limit_status
            )
            if headers:
                response.headers.update(headers)
            return response
        return graph_error(fault.code or 131000, http_status=fault.http_status, message=fault.message)

    def _validate(self, body: Mapping[str, Any]) -> tuple[int, str] | None:
        if body.get("messaging_product") != "whatsapp":
            return 100, "The parameter messaging_product is required and must be 'whatsapp'."
        to = body.get("to")
        if not isinstance(to, str) or not to:
            return 131008, "The parameter to is required."
        if not PHONE.fullmatch(to):
            return 100, "Invalid parameter: to must be a phone number with country code."
        message_type = body.get("type", "text")
        if message_type not in MESSAGE_TYPES:
            return 131051, f"Unsupported message type {message_type!r}."
        reference = body.get("biz_opaque_callback_data")
        if reference is not None and (not isinstance(reference, str) or len(reference) > 512):
            return 100, "biz_opaque_callback_data must be a string of at most 512 characters."
        payload = body.get(message_type)
        if message_type == "template":
            return None  # checked against the catalogue later
        if not isinstance(payload, dict):
            return 131008, f"The parameter {message_type} is required."
        if message_type == "text":
            text = payload.get("body")
            if not isinstance(text, str) or not text:
                return 131008, "The parameter text['body'] is required."
            if len(text) > 4096:
                return 100, "text['body'] is longer than 4096 characters."
        elif message_type in MEDIA_TYPES:
            if ("id" in payload) == ("link" in payload):
                return 100, f"Exactly one of {message_type}['id'] or {message_type}['link'] is required."
            if len(str(payload.get("caption", ""))) > 1024:
                return 100, "caption is longer than 1024 characters."
        elif message_type == "interactive":
            return self._validate_interactive(payload)
        return None

    @staticmethod
    def _validate_interactive(payload: Mapping[str, Any]) -> tuple[int, str] | None:
        body = payload.get("body")
        if not isinstance(body, dict) or not body.get("text"):
            return 131008, "The parameter interactive['body']['text'] is required."
        if len(str(body["text"])) > 1024:
            return 131009, "interactive['body']['text'] is longer than 1024 characters."
        action = payload.get("action")
        if not isinstance(action, dict):
            return 131008, "The parameter interactive['action'] is required."
        kind = payload.get("type")
        if kind == "button":
            buttons = action.get("buttons")
            if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
                return 131009, "interactive buttons: between 1 and 3 buttons are required."
            titles = []
            for button in buttons:
                reply = button.get("reply") if isinstance(button, dict) else None
                if not isinstance(reply, dict) or not reply.get("id") or not reply.get("title"):
                    return 131008, "Each button needs reply.id and reply.title."
                if len(str(reply["title"])) > 20 or len(str(reply["id"])) > 256:
                    return 131009, "Button title must be at most 20 characters and id at most 256."
                titles.append(reply["title"])
            if len(set(titles)) != len(titles):
                return 131009, "Button titles must be unique."
        elif kind == "cta_url":
            params = action.get("parameters")
            if action.get("name") != "cta_url" or not isinstance(params, dict):
                return 131008, "cta_url needs action.name 'cta_url' and parameters."
            if not params.get("display_text") or not str(params.get("url", "")).startswith(("http://", "https://")):
                return 131009, "cta_url needs display_text and an http(s) url."
        elif kind not in ("list", "product", "product_list", "flow", "location_request_message"):
            return 131009, f"Unsupported interactive type {kind!r}."
        return None

    def _check_template(self, template: Any) -> tuple[tuple[int, str] | None, dict[str, Any] | None]:
        if not isinstance(template, dict):
            return (131008, "The parameter template is required."), None
        name = template.get("name")
        language = template.get("language")
        code = language.get("code") if isinstance(language, dict) else None
        if not isinstance(name, str) or not isinstance(code, str) or not name or not code:
            return (131008, "template name and language.code are required."), None
        entry = self.templates.get((name, code))
        if entry is None or entry["status"] in ("PENDING", "REJECTED", "IN_APPEAL"):
            return (132001, f"template name ({name}) does not exist in {code}"), None
        if entry["status"] == "PAUSED":
            return (132015, f"Template {name} is paused."), None
        if entry["status"] == "DISABLED":
            return (132016, f"Template {name} is disabled."), None
        components = template.get("components") or []
        if not isinstance(components, list) or not all(isinstance(c, dict) for c in components):
            return (100, "template components must be a list of objects."), None
        given: dict[str, list[Any]] = {}
        buttons: dict[str, list[Any]] = {}
        for component in components:
            params = component.get("parameters") or []
            if not isinstance(params, list):
                return (100, "component parameters must be a list."), None
            kind = str(component.get("type", "")).lower()
            if kind == "button":
                buttons[str(component.get("index"))] = params
            else:
                given.setdefault(kind, []).extend(params)
        for component in entry["components"]:
            kind = str(component.get("type", "")).upper()
            if kind == "BODY":
                expected = len(set(PLACEHOLDER.findall(str(component.get("text", "")))))
                if len(given.get("body", [])) != expected:
                    return (132000, f"body expects {expected} parameters, got {len(given.get('body', []))}"), None
            elif kind == "HEADER" and str(component.get("format", "TEXT")).upper() in ("IMAGE", "VIDEO", "DOCUMENT"):
                header_format = str(component["format"]).lower()
                header = given.get("header", [])
                if len(header) != 1:
                    return (132000, f"header expects one {header_format} parameter"), None
                if not isinstance(header[0], dict) or header[0].get("type") != header_format:
                    return (132012, f"header parameter must be of type {header_format}"), None
            elif kind == "BUTTONS":
                for index, button in enumerate(component.get("buttons") or []):
                    templated = button.get("type") == "URL" and PLACEHOLDER.search(str(button.get("url", "")))
                    if templated and len(buttons.get(str(index), [])) != 1:
                        return (132000, f"URL button {index} expects one parameter"), None
        return None, entry

    def _mark_read(self, request: web.Request, body: Mapping[str, Any], entry: dict[str, Any]) -> web.Response:
        if not self._authorized(request):
            return self._finish(entry, graph_error(190), "error:190")
        if self._number(request.match_info["pnid"]) is None:
            return self._unknown_object(entry, request.match_info["pnid"], "post")
        if body.get("message_id") not in self.inbound_ids:
            return self._finish(entry, graph_error(131009, details="Invalid message_id."), "error:131009")
        return self._finish(entry, json_response({"success": True}), "mark_read")

    async def _handle_lookup(self, request: web.Request) -> web.Response:
        entry = self.log.add(request, None, kind="lookup")
        if not self._authorized(request):
            return self._finish(entry, graph_error(190), "error:190")
        object_id = request.match_info["object_id"]
        number = self._number(object_id)
        if number is None:
            return self._unknown_object(entry, object_id, "get")
        data = {
            "verified_name": number.verified_name,
            "code_verification_status": "VERIFIED",
            "display_phone_number": number.display_phone_number,
            "quality_rating": number.quality_rating,
            "platform_type": "CLOUD_API",
            "throughput": {"level": "STANDARD"},
            "id": number.id,
        }
        wanted = request.query.get("fields")
        if wanted:
            keys = {f.strip() for f in wanted.split(",")} | {"id"}
            data = {k: v for k, v in data.items() if k in keys}
        return self._finish(entry, json_response(data), "lookup")

    async def _handle_templates(self, request: web.Request) -> web.Response:
        entry = self.log.add(request, None, kind="templates")
        if not self._authorized(request):
            return self._finish(entry, graph_error(190), "error:190")
        waba_id = request.match_info["waba_id"]
        if self.settings.strict_numbers and waba_id != self.waba_id:
            return self._unknown_object(entry, waba_id, "get")
        items = list(self.templates.values())
        for key in ("name", "status", "language", "category"):
            if key in request.query:
                items = [t for t in items if str(t[key]).lower() == request.query[key].lower()]
        try:
            limit = max(1, min(int(request.query.get("limit", "25")), 1000))
            start = (
                int(base64.b64decode(request.query["after"]).decode().split(":")[1]) + 1
                if "after" in request.query
                else 0
            )
        except (ValueError, IndexError, UnicodeDecodeError):
            return self._finish(entry, graph_error(100, message="Invalid paging parameters"), "error:100")
        page = items[start : start + limit]
        result: dict[str, Any] = {"data": page}
        if page:
            cursors = {
                "before": base64.b64encode(f"idx:{start}".encode()).decode(),
                "after": base64.b64encode(f"idx:{start + len(page) - 1}".encode()).decode(),
            }
            result["paging"] = {"cursors": cursors}
            if start + len(page) < len(items):
                result["paging"]["next"] = str(request.url.update_query(after=cursors["after"], limit=str(limit)))
        return self._finish(entry, json_response(result), "templates")

    # ------------------------------------------------------------------ webhooks
    def _schedule_statuses(
        self, pnid: str, wamid: str, wa_id: str, reference: str, fail: int | None, category: str
    ) -> None:
        settings = self.settings
        names = ["failed"] if fail else list(settings.statuses)
        number = self.numbers.get(pnid)
        if not ((number.webhook_url if number else None) or settings.webhook_url):
            self.stats.webhook_dropped += len(names)  # nobody to tell: skip the work (benchmarks)
            return
        delays = sorted(settings.delay(name) for name in names)
        if settings.reorder_rate and len(names) > 1 and self.rng.random() < settings.reorder_rate:
            self.rng.shuffle(names)
        else:
            delays = [settings.delay(name) for name in names]
        for name, delay in zip(names, delays, strict=True):
            self.scheduler.later(delay, self._emit_status, pnid, wamid, name, wa_id, reference, fail, category)
            if settings.duplicate_rate and self.rng.random() < settings.duplicate_rate:
                extra = delay + settings.delay("duplicate")
                self.scheduler.later(extra, self._emit_status, pnid, wamid, name, wa_id, reference, fail, category)

    def _emit_status(
        self, pnid: str, wamid: str, status: str, wa_id: str, reference: str, fail: int | None, category: str
    ) -> None:
        item: dict[str, Any] = {
            "id": wamid,
            "status": status,
            "timestamp": str(int(time.time())),
            "recipient_id": wa_id,
        }
        if reference:
            item["biz_opaque_callback_data"] = reference
        if status == "failed" and fail:
            title, _status, details = GRAPH_ERRORS.get(fail, ("Unknown error", 400, ""))
            item["errors"] = [
                {"code": fail, "title": title, "message": title, "error_data": {"details": details}, "href": ERROR_HREF}
            ]
        else:
            item["pricing"] = {"billable": True, "pricing_model": "PMP", "category": category, "type": "regular"}
        self.batcher.add(pnid, item)

    def batch_flush(self, key: str, items: list[Any]) -> None:
        if self.settings.reorder_rate and len(items) > 1 and self.rng.random() < self.settings.reorder_rate:
            self.rng.shuffle(items)
        self.push_value(key, {"statuses": items}, events=len(items))

    def envelope(self, pnid: str, value: Mapping[str, Any]) -> dict[str, Any]:
        number = self._number(pnid) or PhoneNumber(id=pnid)
        return {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": number.waba_id,
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {
                                    "display_phone_number": number.display_phone_number,
                                    "phone_number_id": pnid,
                                },
                                **value,
                            },
                        }
                    ],
                }
            ],
        }

    def push_value(self, pnid: str, value: Mapping[str, Any], *, events: int = 1) -> bytes | None:
        """Sign and queue one webhook POST with this `value`; returns the exact bytes (None: no target)."""
        number = self._number(pnid)
        url = (number.webhook_url if number else None) or self.settings.webhook_url
        if not url:
            self.stats.webhook_dropped += events
            return None
        body = dumps(self.envelope(pnid, value))
        secret = (number.app_secret if number else None) or self.app_secret
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(secret, body)}
        self.submit_webhook(Delivery(url=url, body=body, headers=headers, events=events))
        return body

    def simulate_inbound(
        self,
        sender: str = "491701234567",
        kind: str = "text",
        text: str = "",
        *,
        payload: str = "",
        context_id: str = "",
        name: str = "Erika Muster",
        phone_number_id: str = "",
        media_id: str = "",
        mime_type: str = "",
        latitude: float = 52.52,
        longitude: float = 13.405,
        message: Mapping[str, Any] | None = None,
        message_id: str = "",
        open_window: bool = True,
        **aliases: Any,
    ) -> dict[str, Any]:
        """Push an inbound message webhook (kinds: text, image, video, audio, document, sticker,
        location, contacts, reaction, button, interactive, list_reply, unsupported, raw)."""
        sender = str(aliases.pop("from", sender))
        if aliases:
            raise ValueError(f"unknown inbound parameters: {sorted(aliases)}")
        pnid = phone_number_id or next(iter(self.numbers), DEFAULT_PHONE_NUMBER_ID)
        number = self._number(pnid) or PhoneNumber(id=pnid)
        wa_id = digits(sender)
        wamid = message_id or "wamid." + base64.b64encode(f"IN_{wa_id}_{uuid.uuid4().hex}".encode()).decode()
        msg: dict[str, Any] = {"from": wa_id, "id": wamid, "timestamp": str(int(time.time()))}
        if kind == "raw":
            msg.update(message or {})
        elif kind == "text":
            msg.update(type="text", text={"body": text or "Hallo"})
        elif kind in MEDIA_TYPES:
            media: dict[str, Any] = {
                "id": media_id or str(uuid.uuid4().int)[:16],
                "mime_type": mime_type or {"image": "image/jpeg", "video": "video/mp4"}.get(kind, "application/pdf"),
                "sha256": hashlib.sha256(wamid.encode()).hexdigest(),
            }
            if text:
                media["caption"] = text
            msg.update(type=kind, **{kind: media})
        elif kind == "location":
            msg.update(type="location", location={"latitude": latitude, "longitude": longitude, "name": text})
        elif kind == "contacts":
            msg.update(
                type="contacts",
                contacts=[
                    {
                        "name": {"formatted_name": text or "Max Muster", "first_name": "Max"},
                        "phones": [{"phone": "+49 170 7654321", "wa_id": "491707654321", "type": "CELL"}],
                    }
                ],
            )
        elif kind == "reaction":
            msg.update(type="reaction", reaction={"message_id": context_id, "emoji": text})
        elif kind == "button":
            msg.update(type="button", button={"payload": payload, "text": text})
            msg["context"] = {"from": number.display_phone_number, "id": context_id}
        elif kind in ("interactive", "button_reply"):
            msg.update(
                type="interactive", interactive={"type": "button_reply", "button_reply": {"id": payload, "title": text}}
            )
            msg["context"] = {"from": number.display_phone_number, "id": context_id}
        elif kind == "list_reply":
            reply = {"id": payload, "title": text, "description": ""}
            msg.update(type="interactive", interactive={"type": "list_reply", "list_reply": reply})
            msg["context"] = {"from": number.display_phone_number, "id": context_id}
        elif kind == "unsupported":
            msg.update(
                type="unsupported",
                errors=[{"code": 131051, "title": "Message type unknown", "message": "Message type unknown"}],
            )
        else:
            raise ValueError(f"unknown inbound kind {kind!r}")
        if context_id and "context" not in msg and kind != "reaction":
            msg["context"] = {"from": number.display_phone_number, "id": context_id}
        if open_window:
            self.windows[wa_id] = time.time()
        self.inbound_ids.add(wamid)
        value = {"contacts": [{"profile": {"name": name}, "wa_id": wa_id}], "messages": [msg]}
        body = self.push_value(pnid, value)
        return {"id": wamid, "body": None if body is None else body.decode()}

    # ------------------------------------------------------------------ control helpers
    def _set_window(
        self, recipient: str, open: bool = True, age_hours: float | None = None, **_: Any
    ) -> dict[str, Any]:
        wa_id = digits(recipient)
        if not open:
            self.windows.pop(wa_id, None)
        else:
            self.windows[wa_id] = time.time() - (age_hours or 0.0) * 3600
        return {"recipient": wa_id, "open": self.window_open(wa_id)}

    def _set_template_status(self, name: str, language: str, status: str) -> dict[str, Any]:
        template = self.templates[(name, language)]
        template["status"] = status.upper()
        return template

    def _register_number(
        self,
        phone_number_id: str,
        display_phone_number: str = DEFAULT_DISPLAY_NUMBER,
        verified_name: str = "Stadt Musterstadt",
        app_secret: str | None = None,
        webhook_url: str | None = None,
        waba_id: str | None = None,
    ) -> PhoneNumber:
        number = PhoneNumber(
            id=phone_number_id,
            display_phone_number=display_phone_number,
            verified_name=verified_name,
            waba_id=waba_id or self.waba_id,
            app_secret=app_secret,
            webhook_url=webhook_url,
        )
        self.numbers[phone_number_id] = number
        return number

    def _synthesize(
        self,
        count: int = 1,
        statuses: Iterable[str] = ("sent", "delivered", "read"),
        phone_number_id: str = "",
        recipient: str = "491700000000",
    ) -> dict[str, Any]:
        """Push status events for `count` made-up messages (webhook ingestion benchmarks)."""
        pnid = phone_number_id or next(iter(self.numbers), DEFAULT_PHONE_NUMBER_ID)
        wamids = []
        for _ in range(int(count)):
            wamid = self._new_wamid(digits(recipient))
            wamids.append(wamid)
            for name in statuses:
                self._emit_status(pnid, wamid, name, digits(recipient), "", None, "utility")
        return {"count": len(wamids), "first": wamids[0] if wamids else None}

    async def _control_handshake(self, request: web.Request) -> web.Response:
        params = await request.json() if request.can_read_body else {}
        result = await self._handshake(str(params["verify_token"]), params.get("url"), params.get("challenge"))
        return json_response(result)

    async def _handshake(
        self, verify_token: str, url: str | None = None, challenge: str | None = None
    ) -> dict[str, Any]:
        """Meta's GET verification request; ok when the endpoint echoes the challenge with 200."""
        target = url or self.settings.webhook_url
        challenge = challenge or str(self.rng.randint(10**9, 2 * 10**9))
        query = {"hub.mode": "subscribe", "hub.challenge": challenge, "hub.verify_token": verify_token}
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(target, params=query) as response:
            text = await response.text()
        return {"ok": response.status == 200 and text == challenge, "status": response.status, "body": text[:200]}

    # ------------------------------------------------------------------ in-process API
    def handshake(self, verify_token: str, url: str | None = None, challenge: str | None = None) -> dict[str, Any]:
        assert self._loop is not None, "start() the fake first"
        return asyncio.run_coroutine_threadsafe(self._handshake(verify_token, url, challenge), self._loop).result(30)

    def open_window(self, recipient: str, *, age_hours: float = 0.0) -> None:
        """Pretend the person wrote to us `age_hours` ago (older than 24 h = window closed)."""
        self._call(self._set_window, recipient, True, age_hours)

    def close_window(self, recipient: str) -> None:
        self._call(self._set_window, recipient, False)

    def add_template(self, **template: Any) -> dict[str, Any]:
        return self._call(self._add_template, template)

    def set_template_status(self, name: str, language: str, status: str) -> dict[str, Any]:
        return self._call(self._set_template_status, name, language, status)

    def register_number(self, phone_number_id: str, **kwargs: Any) -> PhoneNumber:
        return self._call(self._register_number, phone_number_id, **kwargs)

    def synthesize_statuses(self, count: int, **kwargs: Any) -> dict[str, Any]:
        return self._call(self._synthesize, count, **kwargs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake WhatsApp Cloud API")
    common_arguments(parser)
    parser.add_argument("--app-secret", default=DEFAULT_APP_SECRET)
    parser.add_argument("--access-token", action="append", help="accepted bearer token (repeatable; none = any)")
    parser.add_argument("--phone-number-id", action="append", help="known phone number id (repeatable)")
    parser.add_argument("--waba-id", default=DEFAULT_WABA_ID)
    parser.add_argument("--strict-numbers", action="store_true", help="unknown phone number ids -> error 100")
    parser.add_argument("--open-windows", action="store_true", help="do not enforce the 24 h window")
    parser.add_argument("--batch-size", type=int, default=1, help="statuses per webhook POST")
    parser.add_argument("--batch-linger", type=float, default=0.0)
    parser.add_argument("--pair-limit", type=int, default=0, help="messages per 6 s to one person (0 = off)")
    parser.add_argument("--rate-limit-status", type=int, default=429, choices=(400, 429))
    parser.add_argument("--no-read", action="store_true", help="push sent and delivered only")
    args = parser.parse_args(argv)
    fake = FakeWhatsApp(
        host=args.host,
        port=args.port,
        seed=args.seed,
        app_secret=args.app_secret,
        access_token=args.access_token or (),
        phone_number_id=args.phone_number_id or DEFAULT_PHONE_NUMBER_ID,
        waba_id=args.waba_id,
        strict_numbers=args.strict_numbers,
        enforce_window=not args.open_windows,
        batch_size=args.batch_size,
        batch_linger=args.batch_linger,
        pair_limit=args.pair_limit,
        rate_limit_status=args.rate_limit_status,
        statuses=("sent", "delivered") if args.no_read else ("sent", "delivered", "read"),
        **common_settings(args),
    )
    run_cli(fake, args)


if __name__ == "__main__":
    main()
