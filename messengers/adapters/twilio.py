"""Twilio Programmable Messaging adapter (SMS, and WhatsApp via Twilio), per providers.md section 3.

Sends a form-encoded Messages.json POST with Basic auth (Account SID = config.account_id, Auth
Token = credentials["auth_token"]): To, From (or MessagingServiceSid when config.external_id starts
with "MG"), Body (link buttons appended as "Title: URL" lines; reply buttons cannot be shown over
SMS and are left out), MediaUrl, and StatusCallback = config.webhook_url + "?ref=<reference>".
A template whose name is a Content SID ("HX…") is sent as ContentSid + ContentVariables.

Inbound media: the webhook's MediaUrl0 (on the API host, checked) is fetched with Basic auth;
Twilio redirects it to its media CDN, which is followed (without credentials) when the target is
on MESSENGER_MEDIA_HOST_ALLOWLIST. Only the first of several files is shown.

Errors are classified by Twilio's `code`; status callbacks and inbound messages are verified with
`X-Twilio-Signature` (HMAC-SHA1 over the full URL + sorted form parameters, accepting the URL with
and without the default port, and the bodySHA256 variant for JSON bodies).

Why not the `twilio` package's RequestValidator: its documented algorithm is exactly this one
(base64 HMAC-SHA1 of the URL plus the sorted parameter names and values, tried with and without
the default port, bodySHA256 for non-form bodies), which takes ~25 lines here (twilio_signature,
url_variants, verify_webhook). Adopting it would add the whole Twilio SDK (its generated REST
client and its own HTTP dependencies) to replace them, and we would still have to build its
inputs from our WebhookRequest and try the proxy's URL variants ourselves. Kept, decided for
issue 9; tests check the example signature Twilio publishes (test_adapter_twilio).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, cast
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import aiohttp

from messengers.adapters._http import (
    HttpSendAdapter,
    RawResponse,
    download_sync,
    link_lines,
    parse_retry_after,
    request_sync,
)
from messengers.adapters.base import (
    MEDIA_HOST_REFUSED,
    CheckResult,
    ConnectionConfig,
    ErrorKind,
    InboundMessage,
    MediaFile,
    MediaRef,
    OutgoingMessage,
    Provider,
    ProviderError,
    SendResult,
    StatusEvent,
    WebhookEvent,
    WebhookParseError,
    WebhookRequest,
)
from messengers.endpoints import media_url_allowed

if TYPE_CHECKING:
    from messengers.adapters.base import InboundKind, StatusName

DEFAULT_API_BASE = "https://api.twilio.com"
API_VERSION = "2010-04-01"
# Twilio account states (Accounts resource); anything else is reported as "not active".
ACCOUNT_STATES = frozenset({"active", "suspended", "closed"})
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
START_WORDS = frozenset({"START", "YES", "UNSTOP"})
DEFAULT_PORTS = {"https": 443, "http": 80}
MEDIA_KINDS = frozenset({"image", "video", "audio", "document"})
MEDIA_REDIRECTS = 2

K = ErrorKind
ERROR_KINDS: dict[int, ErrorKind] = {
    20003: K.BAD_CREDENTIALS,
    20005: K.ACCOUNT_PROBLEM,  # account not active
    20404: K.ACCOUNT_PROBLEM,  # the account or resource in the path does not exist
    20429: K.RATE_LIMITED,
    14107: K.RATE_LIMITED,
    30001: K.RATE_LIMITED,  # sender queue overflow
    63017: K.RATE_LIMITED,
    63018: K.RATE_LIMITED,
    20500: K.TEMPORARY,
    20503: K.TEMPORARY,
    30003: K.TEMPORARY,  # handset unreachable (switched off): may work later
    30008: K.TEMPORARY,
    21610: K.BLOCKED,
    30004: K.BLOCKED,
    21211: K.INVALID_RECIPIENT,
    21212: K.INVALID_RECIPIENT,
    21265: K.INVALID_RECIPIENT,
    21407: K.INVALID_RECIPIENT,
    21421: K.INVALID_RECIPIENT,
    21612: K.INVALID_RECIPIENT,
    21614: K.INVALID_RECIPIENT,
    30005: K.INVALID_RECIPIENT,
    30006: K.INVALID_RECIPIENT,
    63024: K.INVALID_RECIPIENT,
    63003: K.NOT_ON_MESSENGER,
    63016: K.WINDOW_CLOSED,
    21408: K.ACCOUNT_PROBLEM,
    21603: K.ACCOUNT_PROBLEM,  # no sender configured on the connection
    21606: K.ACCOUNT_PROBLEM,
    21608: K.ACCOUNT_PROBLEM,
    21660: K.ACCOUNT_PROBLEM,
    21701: K.ACCOUNT_PROBLEM,
    21703: K.ACCOUNT_PROBLEM,
    21704: K.ACCOUNT_PROBLEM,
    21705: K.ACCOUNT_PROBLEM,
    30002: K.ACCOUNT_PROBLEM,  # account suspended
    21602: K.BAD_REQUEST,
    21604: K.BAD_REQUEST,
    21609: K.BAD_REQUEST,
    21617: K.BAD_REQUEST,
    21619: K.BAD_REQUEST,
    21620: K.BAD_REQUEST,
    30007: K.BAD_REQUEST,  # carrier filtered the content
    63013: K.BAD_REQUEST,
}
DEFAULT_RETRY_AFTER: dict[int, float] = {20429: 1.0, 14107: 1.0, 63018: 1.0, 63017: 1.0, 30001: 60.0}
ERROR_TITLES: dict[str, str] = {
    "30003": "Unreachable destination handset",
    "30004": "Message blocked",
    "30005": "Unknown destination handset",
    "30006": "Landline or unreachable carrier",
    "30007": "Message filtered",
    "30008": "Unknown error",
    "63016": "Outside the allowed window",
    "63018": "Rate limit exceeded for channel",
}
STATUS_NAMES: dict[str, StatusName] = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "failed": "failed",
    "undelivered": "failed",
}


def classify(code: int | None, http_status: int | None = None) -> ErrorKind:
    if code is not None and code in ERROR_KINDS:
        return ERROR_KINDS[code]
    if http_status is None:
        return K.BAD_REQUEST
    if http_status == 429:
        return K.RATE_LIMITED
    if http_status >= 500:
        return K.TEMPORARY
    if http_status == 401:
        return K.BAD_CREDENTIALS
    return K.BAD_REQUEST


def twilio_signature(auth_token: str, url: str, params: Mapping[str, Iterable[str]]) -> str:
    """base64(HMAC-SHA1(auth_token, url + name + value … for names sorted, values sorted))."""
    data = url + "".join(name + value for name in sorted(params) for value in sorted(params[name]))
    return base64.b64encode(hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def url_variants(url: str) -> list[str]:
    """The URL as given, with the scheme's default port added, and with it removed."""
    parts = urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    prefix = userinfo + at
    host, port = hostport, ""
    if hostport.rfind(":") > hostport.rfind("]"):
        host, _, port = hostport.rpartition(":")
    default = DEFAULT_PORTS.get(parts.scheme.lower())
    variants = [url]
    if default is not None:
        if not port:
            variants.append(urlunsplit(parts._replace(netloc=f"{prefix}{host}:{default}")))
        elif port == str(default):
            variants.append(urlunsplit(parts._replace(netloc=f"{prefix}{host}")))
    return variants


def _form(body: bytes) -> list[tuple[str, str]]:
    try:
        text = body.decode("utf-8")
        return parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text), errors="strict")
    except (UnicodeDecodeError, ValueError) as exc:
        raise WebhookParseError(f"body is not form-encoded ({type(exc).__name__})") from None


def _code(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():  # not "²"
        return int(value.strip())
    return None


class TwilioAdapter(HttpSendAdapter):
    provider: ClassVar[Provider] = Provider.SMS

    def __init__(self, config: ConnectionConfig) -> None:
        super().__init__(config)
        token = config.credentials.get("auth_token", "")
        account = config.account_id
        root = (config.api_base or DEFAULT_API_BASE).rstrip("/")
        self._account_url = f"{root}/{API_VERSION}/Accounts/{quote(account, safe='')}"
        self._messages_url = self._account_url + "/Messages.json"
        self._root = root
        basic = base64.b64encode(f"{account}:{token}".encode()).decode()
        self._auth_headers = {"Authorization": f"Basic {basic}", "Accept": "application/json"}
        self._form_headers = {**self._auth_headers, "Content-Type": "application/x-www-form-urlencoded"}
        self._sender_field = "MessagingServiceSid" if config.external_id.startswith("MG") else "From"
        self._client_timeout = aiohttp.ClientTimeout(total=config.timeout)
        self._secrets = (*self.secrets, basic)

    # ------------------------------------------------------------------ sending
    def build_form(self, message: OutgoingMessage) -> list[tuple[str, str]]:
        to = "".join(message.to.split())
        form = [("To", to), (self._sender_field, self.config.external_id)]
        if message.template is not None:
            if not message.template.name.startswith("HX"):
                raise ProviderError(ErrorKind.TEMPLATE_PROBLEM, "Twilio templates are Content SIDs starting with HX")
            variables = {str(i + 1): value for i, value in enumerate(message.template.body_params)}
            form.append(("ContentSid", message.template.name))
            if variables:
                form.append(("ContentVariables", json.dumps(variables, ensure_ascii=False)))
        else:
            body = link_lines(message.text, [b for b in message.buttons if b.url])
            if body:
                form.append(("Body", body))
            if message.media is not None:
                form.append(("MediaUrl", message.media.url))
        if self.config.webhook_url:
            callback = self.config.webhook_url
            if message.reference:
                separator = "&" if "?" in callback else "?"
                callback = f"{callback}{separator}{urlencode({'ref': message.reference})}"
            form.append(("StatusCallback", callback))
        return form

    def _post_for(self, message: OutgoingMessage) -> tuple[str, Mapping[str, str], bytes]:
        return self._messages_url, self._form_headers, urlencode(self.build_form(message)).encode()

    def _send_result(self, raw: RawResponse) -> SendResult:
        data = raw.json()
        if raw.ok and isinstance(data, dict):
            sid = data.get("sid")
            if isinstance(sid, str) and sid:
                status = data.get("status")
                return SendResult(sid, status if isinstance(status, str) else "queued")
            raise ProviderError(ErrorKind.TEMPORARY, "success answer without a message sid", http_status=raw.status)
        raise self.error_from(raw, data)

    def error_from(self, raw: RawResponse, data: Any = None) -> ProviderError:
        if data is None:
            data = raw.json()
        code = _code(data.get("code")) if isinstance(data, dict) else None
        message = data.get("message") if isinstance(data, dict) else None
        if not isinstance(message, str) or not message:
            message = f"HTTP {raw.status} from Twilio"
        kind = classify(code, raw.status)
        retry_after = parse_retry_after(raw.retry_after)
        if retry_after is None and kind == K.RATE_LIMITED:
            retry_after = DEFAULT_RETRY_AFTER.get(code or 0, 1.0)
        return ProviderError(
            kind,
            message[:500],
            code="" if code is None else str(code),
            http_status=raw.status,
            retry_after=retry_after,
        )

    # ------------------------------------------------------------------ webhooks
    def verify_webhook(self, request: WebhookRequest) -> bool:
        token = self.config.credentials.get("auth_token", "")
        signature = request.header("x-twilio-signature").strip()
        if not token or not signature or not request.url:
            return False
        params: dict[str, list[str]] = {}
        content_type = request.header("content-type").split(";")[0].strip().lower()
        query = dict(parse_qsl(urlsplit(request.url).query, keep_blank_values=True))
        if "bodySHA256" in query:
            digest = hashlib.sha256(request.body).hexdigest()
            if not hmac.compare_digest(digest.encode(), query["bodySHA256"].encode("utf-8", "replace")):
                return False
        elif request.method.upper() == "POST" and (
            content_type == "application/x-www-form-urlencoded" or not content_type
        ):
            try:
                pairs = _form(request.body)
            except WebhookParseError:
                return False
            for name, value in pairs:
                params.setdefault(name, []).append(value)
        given = signature.encode("utf-8", "replace")
        return any(
            hmac.compare_digest(twilio_signature(token, url, params).encode(), given)
            for url in url_variants(request.url)
        )

    def parse_webhook(self, request: WebhookRequest) -> list[WebhookEvent]:
        params: dict[str, str] = {}
        for name, value in _form(request.body):
            params.setdefault(name, value)
        sid = params.get("MessageSid") or params.get("SmsSid") or params.get("SmsMessageSid") or ""
        if not sid:
            raise WebhookParseError("no MessageSid")
        status = params.get("MessageStatus") or params.get("SmsStatus") or ""
        if status in ("received", "receiving") or (not status and "From" in params and "Body" in params):
            return [self._inbound(sid, params)]
        if not status:
            raise WebhookParseError("neither a status callback nor an inbound message")
        mapped = STATUS_NAMES.get(status)
        if mapped is None:
            return []  # queued / accepted / sending / scheduled / canceled: nothing to record
        code_text = params.get("ErrorCode", "").strip()
        code = _code(code_text)
        reference = request.query.get("ref") or dict(parse_qsl(urlsplit(request.url).query)).get("ref", "")
        return [
            StatusEvent(
                provider_message_id=sid,
                status=mapped,
                at=datetime.now(UTC),  # Twilio callbacks carry no event time
                recipient=params.get("To", ""),
                error_code=code_text,
                error_title=ERROR_TITLES.get(code_text, "") if code_text else "",
                error_kind=classify(code) if mapped == "failed" and code is not None else None,
                reference=reference,
            )
        ]

    @staticmethod
    def _inbound(sid: str, params: Mapping[str, str]) -> InboundMessage:
        body = params.get("Body", "")
        keyword = body.strip().upper()
        opt_out = params.get("OptOutType", "").upper()
        kind: InboundKind = "text"
        payload: dict[str, Any] = {}
        try:
            num_media = int(params.get("NumMedia", "0") or 0)
        except ValueError:
            num_media = 0
        if opt_out == "STOP" or (not opt_out and keyword in STOP_WORDS):
            kind = "block"
            payload = {"keyword": keyword}
        elif opt_out == "START" or (not opt_out and keyword in START_WORDS):
            kind = "unblock"
            payload = {"keyword": keyword}
        elif params.get("ButtonPayload"):
            kind = "button"
            payload = {"payload": params["ButtonPayload"], "text": params.get("ButtonText", "")}
            body = params.get("ButtonText", body)
        elif params.get("Latitude") and params.get("Longitude"):
            kind = "location"
            payload = {"latitude": params["Latitude"], "longitude": params["Longitude"]}
        elif num_media > 0:
            media = [
                {"url": params.get(f"MediaUrl{i}", ""), "content_type": params.get(f"MediaContentType{i}", "")}
                for i in range(min(num_media, 10))
            ]
            main_type = media[0]["content_type"].split("/")[0]
            kind = cast("InboundKind", main_type if main_type in ("image", "video", "audio") else "document")
            payload = {"media": media}
        if opt_out:
            payload["opt_out_type"] = opt_out
        return InboundMessage(
            provider_message_id=sid,
            sender=params.get("From", ""),
            at=datetime.now(UTC),
            kind=kind,
            text=body,
            sender_name=params.get("ProfileName", ""),
            payload=payload,
            reply_to_provider_id=params.get("OriginalRepliedMessageSid", ""),
        )

    # ------------------------------------------------------------------ account
    def check_credentials(self) -> CheckResult:
        if not self.config.account_id:
            return CheckResult(ok=False, detail="Account SID is missing.")
        if not self.config.credentials.get("auth_token"):
            return CheckResult(ok=False, detail="Auth token is missing.")
        try:
            raw = request_sync(
                "GET",
                self._account_url + ".json",
                headers=self._auth_headers,
                timeout=self.config.timeout,
                secrets=self._secrets,
            )
        except ProviderError as exc:
            return CheckResult(ok=False, detail=f"Twilio API not reachable: {exc.message}")
        data = raw.json()
        active = raw.ok and isinstance(data, dict) and data.get("status") == "active"
        self.log_answer("check", raw, ok=active)
        # What the tenant sees: our words, our account SID and Twilio's code, never the remote
        # free text (the friendly name, Twilio's message): see messengers.endpoints.
        account = self.config.account_id
        if raw.ok and isinstance(data, dict):
            status = data.get("status")
            info = {"sid": data.get("sid"), "friendly_name": data.get("friendly_name"), "status": status}
            if not active:
                state = status if status in ACCOUNT_STATES else "not active"
                return CheckResult(ok=False, detail=f"Twilio account {account} is {state}.", info=info)
            return CheckResult(ok=True, detail=f"Connected to Twilio account {account}", info=info)
        error = self.error_from(raw, data)
        code = error.code or str(raw.status)
        if error.kind == K.BAD_CREDENTIALS:
            return CheckResult(ok=False, detail=f"Account SID or auth token rejected by Twilio (code {code}).")
        return CheckResult(
            ok=False, detail=f"The Twilio API refused the check (code {code}); the platform's log has its answer."
        )

    # ------------------------------------------------------------------ inbound media
    @classmethod
    def media_ref(cls, kind: str, payload: Mapping[str, Any]) -> MediaRef | None:
        """The first of the webhook's MediaUrlN / MediaContentTypeN pairs ({"media": [{url, content_type}]})."""
        if kind not in MEDIA_KINDS or not isinstance(payload, Mapping):
            return None
        media = payload.get("media")
        first = media[0] if isinstance(media, list) and media else None
        if not isinstance(first, dict):
            return None
        url = first.get("url")
        content_type = first.get("content_type")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")) or len(url) > 2000:
            return None
        return MediaRef(ref=url, mime_type=content_type[:100] if isinstance(content_type, str) else "")

    def _own_origin(self, url: str) -> bool:
        own, target = urlsplit(self._root), urlsplit(url)
        try:
            return (own.scheme, own.hostname, own.port) == (target.scheme, target.hostname, target.port)
        except ValueError:
            return False

    def fetch_media(self, ref: MediaRef, *, max_bytes: int) -> MediaFile:
        # The credentials go to the connection's own API host only, never to an address a
        # webhook named elsewhere; redirect hops carry none.
        if not self._own_origin(ref.ref):
            raise ProviderError(
                ErrorKind.BAD_REQUEST, "MediaUrl is not on the Twilio API host", code=MEDIA_HOST_REFUSED
            )
        download = download_sync(
            ref.ref,
            headers={"Authorization": self._auth_headers["Authorization"]},
            timeout=self.config.timeout,
            max_bytes=max_bytes,
            allowed=lambda target: media_url_allowed(target, self._root),
            secrets=self._secrets,
            redirects=MEDIA_REDIRECTS,
        )
        if download.raw.status == 404:  # 20404 here is a deleted file, not a wrong account
            raise ProviderError(ErrorKind.BAD_REQUEST, "media not found", code="20404", http_status=404)
        if not download.raw.ok:
            raise self.error_from(download.raw)
        return MediaFile(content=download.raw.body, mime_type=download.content_type or ref.mime_type, filename="")
