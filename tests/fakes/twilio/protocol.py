"""What the Twilio fake knows of the Messaging API's wire protocol: defaults, patterns, keyword
lists, the error codes and their envelope (`twilio_error`), request signing (`twilio_signature`)
and the settings."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from aiohttp import web

from tests.fakes.common import (
    CommonSettings,
    json_response,
)

DEFAULT_ACCOUNT_SID = "AC00000000000000000000000000000001"
DEFAULT_AUTH_TOKEN = "twilio-auth-token-0123456789abcd"
DEFAULT_NUMBER = "+4930123456"
DEFAULT_SERVICE_SID = "MG00000000000000000000000000000001"
API_VERSION = "2010-04-01"
TO_PATTERN = re.compile(r"(whatsapp:)?\+?[1-9][0-9]{6,14}")
SERVICE_PATTERN = re.compile(r"MG[0-9a-fA-F]{32}")
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
START_WORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_WORDS = frozenset({"HELP", "INFO"})

ERRORS: dict[int, tuple[int, str]] = {
    20003: (401, "Authenticate"),
    20404: (404, "The requested resource was not found"),
    20429: (429, "Too Many Requests"),
    20500: (500, "An internal server error has occurred"),
    21211: (400, "Invalid 'To' Phone Number"),
    21408: (400, "Permission to send an SMS has not been enabled for the region indicated by the 'To' number"),
    21602: (400, "Message body is required."),
    21603: (400, "A 'From' phone number is required."),
    21604: (400, "A 'To' phone number is required."),
    21606: (
        400,
        "The 'From' phone number provided is not a valid message-capable Twilio phone number for this destination/account.",
    ),
    21608: (400, "The number is unverified. Trial accounts may only send messages to verified numbers."),
    21609: (400, "Invalid StatusCallback"),
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21612: (400, "The 'To' phone number is not currently reachable via SMS"),
    21614: (400, "'To' number is not a valid mobile number"),
    21617: (400, "The concatenated message body exceeds the 1600 character limit."),
    21701: (400, "The Messaging Service Sid is invalid."),
    30003: (400, "Unreachable destination handset"),
    30005: (400, "Unknown destination handset"),
    30006: (400, "Landline or unreachable carrier"),
    30007: (400, "Message filtered"),
    30008: (400, "Unknown error"),
    63016: (400, "Failed to send freeform message because you are outside the allowed window."),
    63018: (400, "Rate limit exceeded for Channel"),
}


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str | Iterable[str]]) -> str:
    """X-Twilio-Signature: base64(HMAC-SHA1(token, url + name+value for sorted names and values))."""
    data = url
    for name in sorted(params):
        value = params[name]
        values = [value] if isinstance(value, str) else list(value)
        for item in sorted(values):
            data += name + item
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def twilio_error(code: int, message: str = "", http_status: int | None = None) -> web.Response:
    status, default = ERRORS.get(code, (400, "Error"))
    body = {
        "code": code,
        "message": message or default,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": http_status or status,
    }
    return json_response(body, http_status or status)


@dataclass
class TwilioSettings(CommonSettings):
    status_delays: dict[str, float] = field(
        default_factory=lambda: {"sent": 0.05, "delivered": 0.3, "read": 1.0, "failed": 0.1, "duplicate": 0.05}
    )
    statuses: tuple[str, ...] = ("sent", "delivered")  # plus "read" for whatsapp: recipients
    inbound_url: str = ""  # the number's messaging webhook; "" = webhook_url
    advanced_opt_out: bool = True  # add OptOutType to inbound keyword messages
    strict_senders: bool = False  # From must be one of the account's numbers (else 21606)
    account_status: str = "active"  # what the account fetch reports (active / suspended / closed)
    # A MediaUrl answers with a 307 to the media CDN (as Twilio does) or, when False, with the file.
    media_redirect: bool = True
    media_cdn_base: str = ""  # the CDN's origin in that redirect ("" = this fake)
