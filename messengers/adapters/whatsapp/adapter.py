"""The WhatsApp adapter: sending (text, media, reply buttons, templates), read receipts, webhook
verification (X-Hub-Signature-256) and Meta's GET handshake, the credentials check, the
template list and inbound media (GET /{media-id} for a CDN URL, then GET that URL with the
bearer token; the URL must be on the API host or MESSENGER_MEDIA_HOST_ALLOWLIST). Parsing
webhook bodies lives in .notifications, the Graph vocabulary in .graph."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import replace
from json.encoder import encode_basestring
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

import aiohttp

from messengers.adapters._http import (
    PHONE_DISPLAY,
    HttpSendAdapter,
    RawResponse,
    compact_json,
    download_sync,
    link_lines,
    parse_retry_after,
    request_sync,
    shown,
    too_large,
)
from messengers.adapters.base import (
    CheckResult,
    ConnectionConfig,
    ErrorKind,
    MediaFile,
    MediaRef,
    OutgoingMessage,
    Provider,
    ProviderError,
    SendResult,
    TemplateInfo,
    TemplateRef,
    WebhookEvent,
    WebhookRequest,
)
from messengers.adapters.whatsapp.graph import (
    DEFAULT_API_BASE,
    DEFAULT_RETRY_AFTER,
    as_code,
    as_text,
    classify,
    graph_root,
)
from messengers.adapters.whatsapp.notifications import MEDIA_KINDS, parse_notification
from messengers.endpoints import media_url_allowed

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
NOT_IN_NUMBER = re.compile(r"[\s\-()/.]")
MAX_REPLY_BUTTONS = 3
MAX_TEMPLATE_PAGES = 50
MEDIA_ID = re.compile(r"[0-9A-Za-z_.-]{1,128}")


BODY_CACHE_SIZE = 64  # rendered message bodies kept per adapter (one per broadcast language, usually)
# stand-ins for the recipient and the reference while a body is rendered once for many: letters
# and digits only (normalize_number keeps them), and nothing a message could contain by chance
_TO_MARK = f"to{secrets.token_hex(12)}"
_REFERENCE_MARK = f"ref{secrets.token_hex(12)}"
_NOT_RENDERED: Any = object()


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
        self._bodies: dict[tuple[Any, ...], tuple[bytes, bytes, bytes] | None] = {}

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
        return self._messages_url, self._json_headers, self.body(message)

    def body(self, message: OutgoingMessage) -> bytes:
        """The request body of `message`: compact_json(build_payload(message)), byte for byte.

        A broadcast sends the same message to many people, so the JSON is rendered once per
        message with the recipient and the reference left out, and each request splices those
        two into the rendered pieces (the bulk path's body building was a tenth of a sender's
        time). A per-recipient text (tracked links per person) renders anew each time."""
        if not message.reference:
            return compact_json(self.build_payload(message))
        key = (message.text, message.media, message.buttons, message.template, message.reply_to_provider_id)
        pieces = self._bodies.get(key, _NOT_RENDERED)
        if pieces is _NOT_RENDERED:
            pieces = self._render_pieces(message)
            if len(self._bodies) >= BODY_CACHE_SIZE:
                self._bodies.clear()
            self._bodies[key] = pieces
        if pieces is None:
            return compact_json(self.build_payload(message))
        head, middle, tail = pieces
        to = encode_basestring(normalize_number(message.to)).encode()
        reference = encode_basestring(message.reference).encode()
        return b"".join((head, to, middle, reference, tail))

    def _render_pieces(self, message: OutgoingMessage) -> tuple[bytes, bytes, bytes] | None:
        """The body of `message` cut around its recipient and reference (None: it cannot be)."""
        rendered = compact_json(self.build_payload(replace(message, to=_TO_MARK, reference=_REFERENCE_MARK)))
        to_mark, reference_mark = (encode_basestring(m).encode() for m in (_TO_MARK, _REFERENCE_MARK))
        if rendered.count(to_mark) != 1 or rendered.count(reference_mark) != 1:
            return None
        head, rest = rendered.split(to_mark)
        if reference_mark not in rest:  # the recipient comes first in build_payload
            return None
        middle, tail = rest.split(reference_mark)
        return head, middle, tail

    def _send_result(self, raw: RawResponse) -> SendResult:
        data = raw.json()
        if raw.ok and isinstance(data, dict):
            messages = data.get("messages")
            if isinstance(messages, list) and messages and isinstance(messages[0], dict):
                wamid = messages[0].get("id")
                if isinstance(wamid, str) and wamid:
                    return SendResult(wamid, as_text(messages[0].get("message_status")) or "accepted")
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
        code = as_code(error.get("code"))
        message = as_text(error.get("message")) or as_text(error.get("error_user_title")) or "Graph API error"
        error_data = error.get("error_data")
        details = as_text(error_data.get("details")) if isinstance(error_data, dict) else ""
        if details and details not in message:
            message = f"{message}: {details}"
        kind = classify(code, raw.status)
        retry_after = parse_retry_after(raw.retry_after)
        if retry_after is None and kind in (ErrorKind.RATE_LIMITED, ErrorKind.PAIR_RATE):
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
        return parse_notification(request.body)

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
            number = shown(PHONE_DISPLAY, as_text(data.get("display_phone_number")))
            info = {k: data[k] for k in ("id", "verified_name", "display_phone_number", "quality_rating") if k in data}
            what = f"WhatsApp number {number}" if number else f"phone number ID {self.config.external_id}"
            return CheckResult(ok=True, detail=f"Connected: {what}", info=info)
        error = self.error_from(raw, data)
        code = error.code or str(raw.status)
        if error.kind == ErrorKind.BAD_CREDENTIALS:
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
            after = as_text(cursors.get("after")) if isinstance(cursors, dict) else ""
            # Follow our own URL with the cursor rather than `paging.next`, so the token is only
            # ever sent to the configured API host.
            if not isinstance(paging, dict) or not paging.get("next") or not after:
                break
            query["after"] = after
        return templates

    @staticmethod
    def _template_info(item: Mapping[str, Any]) -> TemplateInfo:
        components: Sequence[Mapping[str, Any]] = [c for c in item.get("components") or [] if isinstance(c, dict)]
        body = next((as_text(c.get("text")) for c in components if as_text(c.get("type")).upper() == "BODY"), "")
        return TemplateInfo(
            name=as_text(item.get("name")),
            language=as_text(item.get("language")),
            category=as_text(item.get("category")).upper(),
            status=as_text(item.get("status")).upper(),
            body=body,
            parameter_count=len(set(PLACEHOLDER.findall(body))),
            components=tuple(components),
        )

    # ------------------------------------------------------------------ inbound media
    @classmethod
    def media_ref(cls, kind: str, payload: Mapping[str, Any]) -> MediaRef | None:
        """The media object of an image / video / audio / document / sticker message:
        {id, mime_type, sha256, caption?, filename?, voice?}."""
        if kind not in MEDIA_KINDS or not isinstance(payload, Mapping):
            return None
        media_id = as_text(payload.get("id"))
        if not MEDIA_ID.fullmatch(media_id):
            return None
        return MediaRef(
            ref=media_id,
            mime_type=as_text(payload.get("mime_type"))[:100],
            filename=as_text(payload.get("filename"))[:255],
            voice=payload.get("voice") is True,
        )

    def fetch_media(self, ref: MediaRef, *, max_bytes: int) -> MediaFile:
        if not MEDIA_ID.fullmatch(ref.ref):
            raise ProviderError(ErrorKind.BAD_REQUEST, "not a WhatsApp media id")
        raw = request_sync(
            "GET",
            f"{self._root}/{quote(ref.ref, safe='')}",
            headers=self._auth_headers,
            timeout=self.config.timeout,
            secrets=self._secrets,
        )
        data = raw.json()
        if not raw.ok or not isinstance(data, dict):
            raise self.error_from(raw, data)
        url = as_text(data.get("url"))
        if not url:
            raise ProviderError(ErrorKind.BAD_REQUEST, "no media URL for this id", http_status=raw.status)
        size = as_code(data.get("file_size"))
        if size is not None and size > max_bytes:
            raise too_large(max_bytes)
        api_base = self.config.api_base or DEFAULT_API_BASE
        download = download_sync(
            url,
            headers=self._auth_headers,
            timeout=self.config.timeout,
            max_bytes=max_bytes,
            allowed=lambda target: media_url_allowed(target, api_base),
            secrets=self._secrets,
        )
        if not download.raw.ok:
            raise self.error_from(download.raw)
        mime_type = as_text(data.get("mime_type")) or ref.mime_type or download.content_type
        return MediaFile(content=download.raw.body, mime_type=mime_type, filename=ref.filename)
