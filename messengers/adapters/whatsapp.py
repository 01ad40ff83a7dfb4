"""WhatsApp Business Cloud API (Meta Graph API) adapter, per providers.md section 1.

Sends: text (`preview_url` false), image/video by link with caption, interactive reply buttons
(at most 3, when the buttons carry payloads; a media becomes the interactive header), templates
(body parameters, header media, URL-button parameters). WhatsApp has no free-form URL buttons
outside templates, so link buttons are rendered as "Title: URL" lines under the text.
`biz_opaque_callback_data` carries our reference and comes back in every status webhook.

Errors are classified by Graph `error.code` (table `ERROR_KINDS`), webhooks are verified with
`X-Hub-Signature-256` (HMAC-SHA256 of the raw body with the app secret) and routed to a tenant with
`whatsapp_routing_ids(body)` (every `metadata.phone_number_id`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, cast
from urllib.parse import quote, urlencode

import aiohttp

from messengers.adapters._http import (
    PHONE_DISPLAY,
    HttpSendAdapter,
    RawResponse,
    compact_json,
    link_lines,
    load_json_body,
    parse_retry_after,
    request_sync,
    shown,
    unix_time,
)
from messengers.adapters.base import (
    CheckResult,
    ConnectionConfig,
    ErrorKind,
    InboundMessage,
    OutgoingMessage,
    Provider,
    ProviderError,
    SendResult,
    StatusEvent,
    TemplateInfo,
    TemplateRef,
    WebhookEvent,
    WebhookParseError,
    WebhookRequest,
)

if TYPE_CHECKING:
    from messengers.adapters.base import InboundKind, StatusName

DEFAULT_API_BASE = "https://graph.facebook.com"
API_VERSION = "v23.0"
VERSIONED = re.compile(r"/v[0-9]+\.[0-9]+$")
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
NOT_IN_NUMBER = re.compile(r"[\s\-()/.]")
MAX_REPLY_BUTTONS = 3
MAX_TEMPLATE_PAGES = 50

K = ErrorKind
ERROR_KINDS: dict[int, ErrorKind] = {
    0: K.BAD_CREDENTIALS,
    190: K.BAD_CREDENTIALS,
    1: K.TEMPORARY,
    2: K.TEMPORARY,
    131000: K.TEMPORARY,
    131016: K.TEMPORARY,
    131057: K.TEMPORARY,
    4: K.RATE_LIMITED,
    80007: K.RATE_LIMITED,
    130429: K.RATE_LIMITED,
    131056: K.PAIR_RATE,
    131047: K.WINDOW_CLOSED,
    131026: K.NOT_ON_MESSENGER,
    131021: K.INVALID_RECIPIENT,
    131030: K.INVALID_RECIPIENT,
    131050: K.BLOCKED,  # the person stopped marketing messages: an opt-out
    3: K.ACCOUNT_PROBLEM,
    10: K.ACCOUNT_PROBLEM,
    368: K.ACCOUNT_PROBLEM,
    131005: K.ACCOUNT_PROBLEM,
    131031: K.ACCOUNT_PROBLEM,
    131042: K.ACCOUNT_PROBLEM,
    131045: K.ACCOUNT_PROBLEM,
    131048: K.ACCOUNT_PROBLEM,  # spam rate limit: pause the connection, a human has to look
    100: K.BAD_REQUEST,
    130472: K.BAD_REQUEST,  # experiment group: do not retry, but the person is not unreachable
    131008: K.BAD_REQUEST,
    131009: K.BAD_REQUEST,
    131049: K.BAD_REQUEST,  # Meta chose not to deliver (per-user marketing cap): no retry today
    131051: K.BAD_REQUEST,
    131052: K.BAD_REQUEST,
    131053: K.BAD_REQUEST,
    135000: K.BAD_REQUEST,
    132000: K.TEMPLATE_PROBLEM,
    132001: K.TEMPLATE_PROBLEM,
    132005: K.TEMPLATE_PROBLEM,
    132007: K.TEMPLATE_PROBLEM,
    132012: K.TEMPLATE_PROBLEM,
    132015: K.TEMPLATE_PROBLEM,
    132016: K.TEMPLATE_PROBLEM,
}
# Meta sends no Retry-After; these are conservative waits per code.
DEFAULT_RETRY_AFTER: dict[int, float] = {130429: 1.0, 131056: 6.0, 4: 60.0, 80007: 60.0}
STATUS_NAMES: dict[str, StatusName] = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "played": "read",
    "failed": "failed",
}
MEDIA_KINDS = frozenset({"image", "video", "audio", "document", "sticker"})


def classify(code: int | None, http_status: int | None = None) -> ErrorKind:
    """ErrorKind for a Graph error code (falls back on the HTTP status only for unknown codes)."""
    if code is not None:
        kind = ERROR_KINDS.get(code)
        if kind is not None:
            return kind
        if 200 <= code <= 299:  # API permission missing
            return K.ACCOUNT_PROBLEM
    if http_status is None:
        return K.BAD_REQUEST
    if http_status == 429:
        return K.RATE_LIMITED
    if http_status >= 500:
        return K.TEMPORARY
    if http_status == 401:
        return K.BAD_CREDENTIALS
    if http_status == 403:
        return K.ACCOUNT_PROBLEM
    return K.BAD_REQUEST


def graph_root(api_base: str) -> str:
    """`https://graph.facebook.com/v23.0`, or api_base as given when it already ends in a version."""
    base = (api_base or DEFAULT_API_BASE).rstrip("/")
    return base if VERSIONED.search(base) else f"{base}/{API_VERSION}"


def whatsapp_routing_ids(body: bytes) -> set[str]:
    """Every `metadata.phone_number_id` in a webhook body (to find the tenant before verifying)."""
    data = load_json_body(body)
    if not isinstance(data, dict):
        raise WebhookParseError("not a JSON object")
    ids: set[str] = set()
    for entry in _list(data.get("entry"), "entry"):
        for change in _list(_obj(entry, "entry").get("changes"), "changes"):
            value = _obj(change, "change").get("value")
            if not isinstance(value, dict):
                continue
            metadata = value.get("metadata")
            if isinstance(metadata, dict):
                pnid = _text(metadata.get("phone_number_id"))
                if pnid:
                    ids.add(pnid)
    return ids


def _obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise WebhookParseError(f"{what} is not an object")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise WebhookParseError(f"{what} is not a list")
    return value


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


def _code(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():  # not "²"
        return int(value.strip())
    return None


def normalize_number(value: str) -> str:
    return NOT_IN_NUMBER.sub("", value.strip())


class WhatsAppAdapter(HttpSendAdapter):
    provider: ClassVar[Provider] = Provider.WHATSAPP

    def __init__(self, config: ConnectionConfig) -> None:
        super().__init__(config)
        token = config.credentials.get("access_token", "")
        self._root = graph_root(config.api_base)
        self._auth_headers = {"Authorization": f"Bearer {token}"}
        self._json_headers = {**self._auth_headers, "Content-Type": "application/json"}
        self._messages_url = f"{self._root}/{quote(config.external_id, safe='')}/messages"
        self._client_timeout = aiohttp.ClientTimeout(total=config.timeout)
        self._secrets = self.secrets

    # ------------------------------------------------------------------ sending
    def build_payload(self, message: OutgoingMessage) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": normalize_number(message.to),
        }
        if message.template is not None:
            payload["type"] = "template"
            payload["template"] = self._template(message.template)
        else:
            reply_buttons = [b for b in message.buttons if b.payload and not b.url]
            text = link_lines(message.text, [b for b in message.buttons if b.url])
            if reply_buttons:
                if len(reply_buttons) > MAX_REPLY_BUTTONS:
                    raise ProviderError(ErrorKind.BAD_REQUEST, "WhatsApp allows at most 3 reply buttons")
                interactive: dict[str, Any] = {
                    "type": "button",
                    "body": {"text": text},
                    "action": {
                        "buttons": [
                            {"type": "reply", "reply": {"id": b.payload, "title": b.title[:20]}} for b in reply_buttons
                        ]
                    },
                }
                if message.media is not None:
                    kind = message.media.kind
                    interactive["header"] = {"type": kind, kind: {"link": message.media.url}}
                payload["type"] = "interactive"
                payload["interactive"] = interactive
            elif message.media is not None:
                kind = message.media.kind
                media: dict[str, Any] = {"link": message.media.url}
                if text:
                    media["caption"] = text
                payload["type"] = kind
                payload[kind] = media
            else:
                payload["type"] = "text"
                payload["text"] = {"preview_url": False, "body": text}
        if message.reference:
            payload["biz_opaque_callback_data"] = message.reference
        if message.reply_to_provider_id:
            payload["context"] = {"message_id": message.reply_to_provider_id}
        return payload

    @staticmethod
    def _template(template: TemplateRef) -> dict[str, Any]:
        components: list[dict[str, Any]] = []
        if template.header_media is not None:
            kind = template.header_media.kind
            components.append(
                {"type": "header", "parameters": [{"type": kind, kind: {"link": template.header_media.url}}]}
            )
        if template.body_params:
            components.append(
                {"type": "body", "parameters": [{"type": "text", "text": p} for p in template.body_params]}
            )
        for index, value in template.button_params:
            components.append(
                {
                    "type": "button",
                    "sub_type": "url",
                    "index": str(index),
                    "parameters": [{"type": "text", "text": value}],
                }
            )
        data: dict[str, Any] = {
            "name": template.name,
            "language": {"code": template.language, "policy": "deterministic"},
        }
        if components:
            data["components"] = components
        return data

    def _post_for(self, message: OutgoingMessage) -> tuple[str, Mapping[str, str], bytes]:
        return self._messages_url, self._json_headers, compact_json(self.build_payload(message))

    def _send_result(self, raw: RawResponse) -> SendResult:
        data = raw.json()
        if raw.ok and isinstance(data, dict):
            messages = data.get("messages")
            if isinstance(messages, list) and messages and isinstance(messages[0], dict):
                wamid = messages[0].get("id")
                if isinstance(wamid, str) and wamid:
                    return SendResult(wamid, _text(messages[0].get("message_status")) or "accepted")
            raise ProviderError(ErrorKind.TEMPORARY, "success answer without a message id", http_status=raw.status)
        raise self.error_from(raw, data)

    def error_from(self, raw: RawResponse, data: Any = None) -> ProviderError:
        """A classified ProviderError for a non-2xx Graph answer."""
        if data is None:
            data = raw.json()
        error = data.get("error") if isinstance(data, dict) else None
        if not isinstance(error, dict):
            kind = classify(None, raw.status)
            return ProviderError(kind, f"HTTP {raw.status} without a Graph error body", http_status=raw.status)
        code = _code(error.get("code"))
        message = _text(error.get("message")) or _text(error.get("error_user_title")) or "Graph API error"
        error_data = error.get("error_data")
        details = _text(error_data.get("details")) if isinstance(error_data, dict) else ""
        if details and details not in message:
            message = f"{message}: {details}"
        kind = classify(code, raw.status)
        retry_after = parse_retry_after(raw.retry_after)
        if retry_after is None and kind in (K.RATE_LIMITED, K.PAIR_RATE):
            retry_after = DEFAULT_RETRY_AFTER.get(code or 0, 1.0)
        return ProviderError(
            kind,
            message[:500],
            code="" if code is None else str(code),
            http_status=raw.status,
            retry_after=retry_after,
        )

    def mark_read(self, message_id: str) -> bool:
        """Mark an inbound message (and the ones before it) as read; False when Meta refuses."""
        body = compact_json({"messaging_product": "whatsapp", "status": "read", "message_id": message_id})
        raw = request_sync(
            "POST",
            self._messages_url,
            headers=self._json_headers,
            body=body,
            timeout=self.config.timeout,
            secrets=self._secrets,
        )
        return raw.ok

    # ------------------------------------------------------------------ webhooks
    def verify_webhook(self, request: WebhookRequest) -> bool:
        secret = self.config.credentials.get("app_secret", "")
        header = request.header("x-hub-signature-256").strip()
        if not secret or not header.startswith("sha256="):
            return False
        expected = "sha256=" + hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected.encode(), header.lower().encode("utf-8", "replace"))

    def handshake_challenge(self, query: Mapping[str, str]) -> str | None:
        """The `hub.challenge` to echo for Meta's GET verification, or None (answer 403)."""
        expected = self.config.credentials.get("verify_token", "")
        token = query.get("hub.verify_token", "")
        if query.get("hub.mode") != "subscribe" or not expected:
            return None
        if not hmac.compare_digest(expected.encode(), token.encode("utf-8", "replace")):
            return None
        return query.get("hub.challenge", "")

    def parse_webhook(self, request: WebhookRequest) -> list[WebhookEvent]:
        data = load_json_body(request.body)
        if not isinstance(data, dict) or data.get("object") != "whatsapp_business_account":
            raise WebhookParseError("not a WhatsApp Business Account notification")
        events: list[WebhookEvent] = []
        for entry in _list(data.get("entry"), "entry"):
            for change in _list(_obj(entry, "entry").get("changes"), "changes"):
                change = _obj(change, "change")
                if change.get("field") != "messages":
                    continue
                value = _obj(change.get("value"), "value")
                metadata = value.get("metadata")
                account = _text(metadata.get("phone_number_id")) if isinstance(metadata, dict) else ""
                names: dict[str, str] = {}
                for contact in _list(value.get("contacts"), "contacts"):
                    if isinstance(contact, dict):
                        profile = contact.get("profile")
                        if isinstance(profile, dict):
                            names[_text(contact.get("wa_id"))] = _text(profile.get("name"))
                for status in _list(value.get("statuses"), "statuses"):
                    event = self._status(_obj(status, "status"), account)
                    if event is not None:
                        events.append(event)
                events.extend(
                    self._inbound(_obj(m, "message"), names, account) for m in _list(value.get("messages"), "messages")
                )
        return events

    @staticmethod
    def _status(item: Mapping[str, Any], account: str = "") -> StatusEvent | None:
        wamid = _text(item.get("id"))
        if not wamid:
            raise WebhookParseError("status without id")
        status = STATUS_NAMES.get(_text(item.get("status")))
        if status is None:
            return None  # a status we do not track (e.g. "deleted", "warning")
        code: int | None = None
        title = ""
        for error in _list(item.get("errors"), "errors"):
            if isinstance(error, dict):
                code = _code(error.get("code"))
                title = _text(error.get("title")) or _text(error.get("message"))
                break
        failed = status == "failed"
        return StatusEvent(
            provider_message_id=wamid,
            status=status,
            at=unix_time(item.get("timestamp")),
            recipient=_text(item.get("recipient_id")) or _text(item.get("recipient_user_id")),
            error_code="" if code is None else str(code),
            error_title=title,
            error_kind=classify(code) if failed and code is not None else None,
            reference=_text(item.get("biz_opaque_callback_data")),
            account_id=account,
        )

    @staticmethod
    def _inbound(message: Mapping[str, Any], names: Mapping[str, str], account: str = "") -> InboundMessage:
        wamid = _text(message.get("id"))
        if not wamid:
            raise WebhookParseError("message without id")
        sender = _text(message.get("from"))
        at = unix_time(message.get("timestamp"))
        mtype = _text(message.get("type"))
        piece = message.get(mtype) if mtype else None
        context = message.get("context")
        reply_to = _text(context.get("id")) if isinstance(context, dict) else ""
        kind: InboundKind = "unknown"
        text = ""
        payload: dict[str, Any] = {"type": mtype, "message": dict(message)}
        if mtype == "text" and isinstance(piece, dict):
            kind, text, payload = "text", _text(piece.get("body")), {}
        elif mtype in MEDIA_KINDS and isinstance(piece, dict):
            kind = cast("InboundKind", mtype)
            text, payload = _text(piece.get("caption")), dict(piece)
        elif mtype == "location" and isinstance(piece, dict):
            kind = "location"
            payload = {k: piece.get(k) for k in ("latitude", "longitude", "name", "address", "url") if k in piece}
            text = _text(piece.get("name")) or _text(piece.get("address"))
        elif mtype == "contacts" and isinstance(piece, list):
            kind, payload = "contacts", {"contacts": piece}
            first = piece[0] if piece and isinstance(piece[0], dict) else {}
            name = first.get("name")
            text = _text(name.get("formatted_name")) if isinstance(name, dict) else ""
        elif mtype == "reaction" and isinstance(piece, dict):
            kind, text = "reaction", _text(piece.get("emoji"))
            payload = {"message_id": _text(piece.get("message_id")), "emoji": text}
            reply_to = payload["message_id"]
        elif mtype == "button" and isinstance(piece, dict):
            kind, text = "button", _text(piece.get("text"))
            payload = {"payload": _text(piece.get("payload")), "text": text}
        elif mtype == "interactive" and isinstance(piece, dict):
            kind = "interactive"
            itype = _text(piece.get("type"))
            reply = piece.get(itype) if itype else None
            if itype in ("button_reply", "list_reply") and isinstance(reply, dict):
                text = _text(reply.get("title"))
                payload = {
                    "type": itype,
                    "payload": _text(reply.get("id")),
                    "title": text,
                    "description": _text(reply.get("description")),
                }
            else:
                payload = {"type": itype, "interactive": dict(piece)}
        return InboundMessage(
            provider_message_id=wamid,
            sender=sender,
            at=at,
            kind=kind,
            text=text,
            sender_name=names.get(sender, ""),
            payload=payload,
            reply_to_provider_id=reply_to,
            account_id=account,
        )

    # ------------------------------------------------------------------ account
    def check_credentials(self) -> CheckResult:
        if not self.config.external_id:
            return CheckResult(ok=False, detail="Phone number ID is missing.")
        if not self.config.credentials.get("access_token"):
            return CheckResult(ok=False, detail="Access token is missing.")
        fields = "verified_name,display_phone_number,quality_rating,code_verification_status"
        url = f"{self._root}/{quote(self.config.external_id, safe='')}?{urlencode({'fields': fields})}"
        try:
            raw = request_sync(
                "GET", url, headers=self._auth_headers, timeout=self.config.timeout, secrets=self._secrets
            )
        except ProviderError as exc:
            return CheckResult(ok=False, detail=f"WhatsApp API not reachable: {exc.message}")
        data = raw.json()
        self.log_answer("check", raw, ok=raw.ok and isinstance(data, dict))
        # What the tenant sees: our words, the error code and the number's shape, never the
        # remote free text (the verified name, Meta's message): see messengers.endpoints.
        if raw.ok and isinstance(data, dict):
            number = shown(PHONE_DISPLAY, _text(data.get("display_phone_number")))
            info = {k: data[k] for k in ("id", "verified_name", "display_phone_number", "quality_rating") if k in data}
            what = f"WhatsApp number {number}" if number else f"phone number ID {self.config.external_id}"
            return CheckResult(ok=True, detail=f"Connected: {what}", info=info)
        error = self.error_from(raw, data)
        code = error.code or str(raw.status)
        if error.kind == K.BAD_CREDENTIALS:
            detail = f"Access token rejected by Meta (code {code})."
        elif error.code == "100":
            detail = (
                f"Phone number ID {self.config.external_id} not found or not accessible with this token (code 100)."
            )
        else:
            detail = f"The WhatsApp API refused the check (code {code}); the platform's log has its full answer."
        return CheckResult(ok=False, detail=detail, info={"code": error.code, "kind": error.kind.value})

    def list_templates(self) -> list[TemplateInfo]:
        """All message templates of the WABA (config.account_id), following cursor paging."""
        if not self.config.account_id:
            raise ProviderError(ErrorKind.ACCOUNT_PROBLEM, "WhatsApp Business Account ID is missing")
        base = f"{self._root}/{quote(self.config.account_id, safe='')}/message_templates"
        query = {"limit": "100", "fields": "name,language,status,category,components,parameter_format"}
        templates: list[TemplateInfo] = []
        for _page in range(MAX_TEMPLATE_PAGES):
            raw = request_sync(
                "GET",
                f"{base}?{urlencode(query)}",
                headers=self._auth_headers,
                timeout=self.config.timeout,
                secrets=self._secrets,
            )
            data = raw.json()
            if not raw.ok or not isinstance(data, dict):
                self.log_answer("template list", raw, ok=False)
                raise self.error_from(raw, data)
            items = data.get("data")
            if isinstance(items, list):
                templates.extend(self._template_info(item) for item in items if isinstance(item, dict))
            paging = data.get("paging")
            cursors = paging.get("cursors") if isinstance(paging, dict) else None
            after = _text(cursors.get("after")) if isinstance(cursors, dict) else ""
            # Follow our own URL with the cursor rather than `paging.next`, so the token is only
            # ever sent to the configured API host.
            if not isinstance(paging, dict) or not paging.get("next") or not after:
                break
            query["after"] = after
        return templates

    @staticmethod
    def _template_info(item: Mapping[str, Any]) -> TemplateInfo:
        components: Sequence[Mapping[str, Any]] = [c for c in item.get("components") or [] if isinstance(c, dict)]
        body = next((_text(c.get("text")) for c in components if _text(c.get("type")).upper() == "BODY"), "")
        return TemplateInfo(
            name=_text(item.get("name")),
            language=_text(item.get("language")),
            category=_text(item.get("category")).upper(),
            status=_text(item.get("status")).upper(),
            body=body,
            parameter_count=len(set(PLACEHOLDER.findall(body))),
            components=tuple(components),
        )
