"""The one small interface every messenger provider implements, and its value objects.

An adapter knows a provider's wire protocol (paths, bodies, errors, webhooks, signatures) and
nothing about our models: it receives a `ConnectionConfig` (decrypted credentials, ids, base
URL) and frozen value objects, and returns value objects or raises `ProviderError`. Callers
(services, the send pipeline, webhook views) never see provider-specific JSON.

    adapter = get_adapter(config)
    result = adapter.send(OutgoingMessage(to="+491701234567", text="Feinstaubalarm ab morgen"))
    result = await adapter.send_async(session, message)     # bulk path (aiohttp)
    ok = adapter.verify_webhook(request); events = adapter.parse_webhook(request)
    check = adapter.check_credentials()
    ref = type(adapter).media_ref(kind, payload)                # an inbound message's file, if any
    media = adapter.fetch_media(ref, max_bytes=16 * 2**20)      # its bytes, on demand

Errors are classified by the provider's own error code (never by HTTP status alone) into an
`ErrorKind`, which says whether to retry (and after how long) or why not.
"""

from __future__ import annotations

import abc
import asyncio
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal

if TYPE_CHECKING:
    import aiohttp


class Provider(enum.StrEnum):
    WHATSAPP = "whatsapp"
    TELEGRAM = "telegram"
    SMS = "sms"  # Twilio Programmable Messaging
    EMAIL = "email"  # SMTP
    SANDBOX = "sandbox"  # built-in simulated phones


# --------------------------------------------------------------------------------------------
# Configuration handed to an adapter (built from a messengers.Connection by the caller)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ConnectionConfig:
    provider: Provider
    credentials: Mapping[str, str] = field(repr=False)  # decrypted secrets: never in reprs or logs
    # WhatsApp: phone_number_id · Telegram: bot id · Twilio: sender number (E.164) or MG… service
    # · e-mail: from address · sandbox: connection id
    external_id: str = ""
    # WhatsApp: WABA id · Twilio: Account SID · others: empty
    account_id: str = ""
    api_base: str = ""  # overridable so a connection can point at a fake server; "" = provider default
    # Where the provider should send webhooks for this connection (Telegram setWebhook,
    # Twilio StatusCallback); "" when not applicable.
    webhook_url: str = ""
    timeout: float = 10.0
    connection_id: int | None = None


# Credential keys per provider (what the admin form asks for, write-only):
CREDENTIAL_FIELDS: dict[Provider, tuple[str, ...]] = {
    Provider.WHATSAPP: ("access_token", "app_secret", "verify_token"),
    Provider.TELEGRAM: ("bot_token", "webhook_secret"),
    Provider.SMS: ("auth_token",),
    Provider.EMAIL: ("host", "port", "username", "password", "use_tls", "inbound_secret"),
    Provider.SANDBOX: (),
}


# --------------------------------------------------------------------------------------------
# Outgoing messages
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Button:
    """A link button (url) or a reply button (payload). Titles: WhatsApp ≤ 20 chars, ≤ 3 buttons."""

    title: str
    url: str = ""
    payload: str = ""


@dataclass(frozen=True)
class Media:
    url: str  # publicly reachable https URL (providers fetch it)
    kind: Literal["image", "video"] = "image"
    mime_type: str = ""


@dataclass(frozen=True)
class TemplateRef:
    """A WhatsApp template send (the only thing allowed outside the 24-hour window)."""

    name: str
    language: str  # e.g. "de", "en_US"
    body_params: tuple[str, ...] = ()
    header_media: Media | None = None
    # (button index, parameter) for URL buttons with a dynamic suffix
    button_params: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True)
class OutgoingMessage:
    to: str  # E.164 number, Telegram chat id, e-mail address, or sandbox phone address
    text: str = ""
    media: Media | None = None
    buttons: tuple[Button, ...] = ()
    template: TemplateRef | None = None
    subject: str = ""  # e-mail only
    html: str = ""  # e-mail only, optional alternative part
    # Our own id of this send (Delivery / outbound message id). WhatsApp: biz_opaque_callback_data;
    # e-mail: part of the Message-ID; Twilio: appended to StatusCallback as ?ref=.
    reference: str = ""
    # E-mail: https URL for List-Unsubscribe + List-Unsubscribe-Post (RFC 8058) and the footer.
    unsubscribe_url: str = ""
    unsubscribe_mailto: str = ""
    reply_to_provider_id: str = ""  # quote a previous message where the provider supports it
    silent: bool = False  # Telegram disable_notification


@dataclass(frozen=True)
class SendResult:
    provider_message_id: str
    # what the provider said about acceptance ("accepted", "queued", "held_for_quality_assessment" …)
    provider_status: str = ""


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------
class ErrorKind(enum.StrEnum):
    # retryable
    RATE_LIMITED = "rate_limited"  # honour retry_after; slow the connection down
    TEMPORARY = "temporary"  # 5xx, timeouts, resets, provider outage: retry with backoff
    # permanent for this recipient
    BLOCKED = "blocked"  # person blocked us / opted out at the provider (Telegram 403, Twilio 21610)
    NOT_ON_MESSENGER = "not_on_messenger"  # no WhatsApp account, chat not found, deactivated (131026)
    INVALID_RECIPIENT = "invalid_recipient"  # malformed or unroutable number/address (21211)
    WINDOW_CLOSED = "window_closed"  # outside WhatsApp's 24 h window: needs a template (131047, 63016)
    PAIR_RATE = "pair_rate"  # too many messages to this one person right now (131056): retry later
    # permanent for this message
    BAD_REQUEST = "bad_request"  # invalid parameter / template mismatch / unsupported content
    TEMPLATE_PROBLEM = "template_problem"  # template missing, paused or disabled (132001, 132015 …)
    # permanent for the whole connection (pause sending, tell an admin)
    BAD_CREDENTIALS = "bad_credentials"  # token invalid/expired (190, 401, 20003)
    ACCOUNT_PROBLEM = "account_problem"  # account locked/blocked/payment (368, 131031, 131042)


RETRYABLE_KINDS = frozenset({ErrorKind.RATE_LIMITED, ErrorKind.TEMPORARY, ErrorKind.PAIR_RATE})
# Errors that say the person cannot be reached on this connection (mark the contact blocked).
UNREACHABLE_KINDS = frozenset({ErrorKind.BLOCKED, ErrorKind.NOT_ON_MESSENGER, ErrorKind.INVALID_RECIPIENT})
CONNECTION_KINDS = frozenset({ErrorKind.BAD_CREDENTIALS, ErrorKind.ACCOUNT_PROBLEM})


class ProviderError(Exception):
    """A classified failure of one provider call."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        code: str = "",
        http_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{kind.value}: {message}" + (f" (code {code})" if code else ""))
        self.kind = kind
        self.message = message
        self.code = code
        self.http_status = http_status
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE_KINDS

    @property
    def permanent(self) -> bool:
        return not self.retryable

    @property
    def unreachable(self) -> bool:
        return self.kind in UNREACHABLE_KINDS

    @property
    def affects_connection(self) -> bool:
        return self.kind in CONNECTION_KINDS


# ProviderError.code of the media download's own refusals (no provider code applies)
MEDIA_TOO_LARGE = "media_too_large"
MEDIA_HOST_REFUSED = "media_host_refused"


class WebhookParseError(ValueError):
    """The webhook body is not what this provider sends (answer 400, store nothing)."""


# --------------------------------------------------------------------------------------------
# Webhooks: what arrives, and the normalised events it turns into
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WebhookRequest:
    method: str
    url: str  # the full public URL the provider called (Twilio signs it)
    headers: Mapping[str, str]  # keys lower-cased
    body: bytes  # raw bytes, exactly as received (signatures cover these)
    query: Mapping[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


StatusName = Literal["sent", "delivered", "read", "failed"]
InboundKind = Literal[
    "text",
    "image",
    "video",
    "audio",
    "document",
    "sticker",
    "location",
    "contacts",
    "reaction",
    "button",
    "interactive",
    "start",
    "block",
    "unblock",
    "unknown",
]


@dataclass(frozen=True)
class StatusEvent:
    """What happened to one of our outbound messages."""

    provider_message_id: str
    status: StatusName
    at: datetime
    recipient: str = ""
    error_code: str = ""
    error_title: str = ""
    error_kind: ErrorKind | None = None  # classified like a sync error, when status == "failed"
    reference: str = ""  # echo of OutgoingMessage.reference where the provider returns it
    # The provider account the event belongs to (WhatsApp metadata.phone_number_id), so one
    # webhook body carrying several numbers can be split per tenant; "" where not applicable.
    account_id: str = ""

    @property
    def dedupe_key(self) -> str:
        return f"status:{self.provider_message_id}:{self.status}"


@dataclass(frozen=True)
class InboundMessage:
    """Something a person sent us (or did: blocked the bot, tapped a button)."""

    provider_message_id: str
    sender: str  # address on this connection: E.164 number, Telegram chat id, e-mail, sandbox address
    at: datetime
    kind: InboundKind
    text: str = ""  # text, caption, button title, "/start payload" payload, reaction emoji …
    sender_name: str = ""
    payload: Mapping[str, Any] = field(default_factory=dict)  # kind-specific details (media id, lat/lon …)
    reply_to_provider_id: str = ""  # the message of ours this replies to (context), if any
    language: str = ""  # Telegram's language_code hint
    account_id: str = ""  # as StatusEvent.account_id

    @property
    def dedupe_key(self) -> str:
        return f"msg:{self.provider_message_id}"


WebhookEvent = StatusEvent | InboundMessage


@dataclass(frozen=True)
class MediaRef:
    """Where the file of an inbound message is, as the provider's webhook named it."""

    ref: str  # WhatsApp media id · Telegram file_id · Twilio MediaUrl
    mime_type: str = ""  # as the webhook declared it; "" = not said
    filename: str = ""  # documents; "" = none given
    size: int | None = None  # bytes, where the webhook says (Telegram)
    voice: bool = False  # a voice note rather than an audio file


@dataclass(frozen=True)
class MediaFile:
    """A downloaded file: the provider's bytes and what the provider says they are."""

    content: bytes = field(repr=False)
    mime_type: str
    filename: str = ""


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    detail: str  # human readable: "Connected as @stuttgart_bot" / "Token rejected (code 401)"
    info: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TemplateInfo:
    name: str
    language: str
    category: str  # UTILITY / MARKETING / AUTHENTICATION
    status: str  # APPROVED / PENDING / REJECTED / PAUSED / DISABLED
    body: str = ""
    parameter_count: int = 0
    components: Sequence[Mapping[str, Any]] = ()


# --------------------------------------------------------------------------------------------
# The interface
# --------------------------------------------------------------------------------------------
class Adapter(abc.ABC):
    provider: ClassVar[Provider]
    # Whether send_async is a real non-blocking implementation (HTTP providers) rather than the
    # default thread-offloaded send().
    native_async: ClassVar[bool] = False

    def __init__(self, config: ConnectionConfig) -> None:
        self.config = config

    @abc.abstractmethod
    def send(self, message: OutgoingMessage) -> SendResult:
        """Send one message; raises ProviderError (classified) on failure."""

    async def send_async(self, session: aiohttp.ClientSession, message: OutgoingMessage) -> SendResult:
        """Bulk path. HTTP adapters override this with aiohttp; the default runs send() in a thread."""
        return await asyncio.to_thread(self.send, message)

    @abc.abstractmethod
    def verify_webhook(self, request: WebhookRequest) -> bool:
        """Check the provider's signature over the raw body (constant time). Fail closed."""

    @abc.abstractmethod
    def parse_webhook(self, request: WebhookRequest) -> list[WebhookEvent]:
        """Normalise a verified webhook body; raises WebhookParseError on malformed input."""

    @abc.abstractmethod
    def check_credentials(self) -> CheckResult:
        """Ask the provider whether the configured credentials work (never raises)."""

    def register_webhook(self, url: str) -> CheckResult:
        """Tell the provider where to send webhooks (Telegram setWebhook). Default: nothing to do."""
        return CheckResult(ok=True, detail="nothing to register")

    def list_templates(self) -> list[TemplateInfo]:
        """Message templates known to the provider (WhatsApp). Default: none."""
        return []

    @classmethod
    def media_ref(cls, kind: str, payload: Mapping[str, Any]) -> MediaRef | None:
        """The file of an inbound message stored with this kind and payload (what parse_webhook
        put there), or None: no file, or a payload without a usable id. Never raises, needs no
        credentials (the thread calls it for every entry). Default: no media."""
        return None

    def fetch_media(self, ref: MediaRef, *, max_bytes: int) -> MediaFile:
        """Download an inbound message's file from the provider, at most `max_bytes` (more:
        ProviderError BAD_REQUEST with code MEDIA_TOO_LARGE). Only the configured API host and
        the operator's media hosts are contacted (messengers.endpoints.media_url_allowed);
        failures raise ProviderError, classified like sends. Default: this provider has none."""
        raise ProviderError(ErrorKind.BAD_REQUEST, f"{self.provider.value} messages carry no downloadable files")
