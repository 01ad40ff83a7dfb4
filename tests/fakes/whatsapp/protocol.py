"""What the WhatsApp fake knows of Meta's wire protocol: defaults, the Graph error codes and their
envelope (`graph_error`), the seeded template catalogue, payload signing (`sign`), and the
settings and phone-number records the fake keeps."""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.common import (
    CommonSettings,
    json_response,
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
    # where media URLs point ("" = this fake; another origin plays Meta's CDN or a hostile one)
    media_url_base: str = ""
