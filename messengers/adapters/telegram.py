"""Telegram Bot API adapter, per providers.md section 2.

Sends plain text (no parse mode unless `parse_mode` is set on the instance) with link previews
disabled, an inline keyboard for buttons (URL buttons, and `callback_data` buttons for payloads),
and sendPhoto / sendVideo with a caption for media. Our provider message id is
"<chat_id>:<message_id>" because Telegram message ids are only unique within a chat; inbound
replies and button taps refer to our messages the same way.

Errors are classified by `error_code` + `description`; `parameters.retry_after` is honoured.
Webhooks are checked with `X-Telegram-Bot-Api-Secret-Token` against credentials["webhook_secret"]
(the secret_token we pass to setWebhook in `register_webhook`).

Inbound files: getFile(file_id) gives a file_path, then GET {api_base}/file/bot<token>/<file_path>
(the Bot API serves files up to 20 MB; the link lives at least an hour, the file_id much longer).
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

import aiohttp

from messengers.adapters._http import (
    BOT_USERNAME,
    DIGITS,
    HttpSendAdapter,
    RawResponse,
    compact_json,
    download_sync,
    load_json_body,
    parse_retry_after,
    request_sync,
    shown,
    too_large,
    unix_time,
)
from messengers.adapters.base import (
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
    WebhookEvent,
    WebhookParseError,
    WebhookRequest,
)
from messengers.endpoints import media_url_allowed

if TYPE_CHECKING:
    from messengers.adapters.base import InboundKind

DEFAULT_API_BASE = "https://api.telegram.org"
ALLOWED_UPDATES = ("message", "callback_query", "my_chat_member")
CHAT_ID = re.compile(r"-?[0-9]+")
START = re.compile(r"/start(?:@[A-Za-z0-9_]+)?(?:\s+(.*))?", re.DOTALL)
MEDIA_KINDS: dict[str, InboundKind] = {
    "photo": "image",
    "video": "video",
    "animation": "video",
    "video_note": "video",
    "audio": "audio",
    "voice": "audio",
    "document": "document",
    "sticker": "sticker",
}
# What a media piece is when Telegram does not say (photos, voice notes and stickers carry no mime_type)
MEDIA_TYPES = {"photo": "image/jpeg", "voice": "audio/ogg", "sticker": "image/webp", "video_note": "video/mp4"}
FILE_ID = re.compile(r"[A-Za-z0-9_-]{1,256}")
FILE_PATH = re.compile(r"[A-Za-z0-9_./-]{1,256}")

K = ErrorKind
# (error_code, lower-case description fragment) -> kind; first match wins, then per-code defaults.
DESCRIPTION_KINDS: tuple[tuple[int | None, str, ErrorKind], ...] = (
    (None, "too many requests", K.RATE_LIMITED),
    (403, "bot was blocked by the user", K.BLOCKED),
    (403, "user is deactivated", K.NOT_ON_MESSENGER),
    (403, "bot can't initiate conversation", K.NOT_ON_MESSENGER),
    (403, "bot was kicked", K.BLOCKED),
    (403, "bot is not a member", K.BLOCKED),
    (400, "chat not found", K.NOT_ON_MESSENGER),
    (400, "user not found", K.INVALID_RECIPIENT),
    (400, "peer_id_invalid", K.INVALID_RECIPIENT),
    (400, "chat_id is empty", K.INVALID_RECIPIENT),
    (400, "group chat was upgraded", K.INVALID_RECIPIENT),
    (400, "have no rights to send", K.BLOCKED),
    (400, "need administrator rights", K.BLOCKED),
)
CODE_KINDS: dict[int, ErrorKind] = {
    401: K.BAD_CREDENTIALS,
    404: K.BAD_CREDENTIALS,  # the method exists, so a 404 means the token path is wrong
    403: K.BLOCKED,
    429: K.RATE_LIMITED,
    409: K.BAD_REQUEST,
    400: K.BAD_REQUEST,
}


def classify(error_code: int | None, description: str) -> ErrorKind:
    lowered = description.lower()
    for code, fragment, kind in DESCRIPTION_KINDS:
        if (code is None or code == error_code) and fragment in lowered:
            return kind
    if error_code is None:
        return K.TEMPORARY
    if error_code >= 500:
        return K.TEMPORARY
    return CODE_KINDS.get(error_code, K.BAD_REQUEST)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and CHAT_ID.fullmatch(value.strip()):
        return int(value.strip())
    return None


def _user_name(user: Any) -> str:
    if not isinstance(user, dict):
        return ""
    name = " ".join(p for p in (_text(user.get("first_name")), _text(user.get("last_name"))) if p)
    return name or _text(user.get("username")) or _text(user.get("title"))


class TelegramAdapter(HttpSendAdapter):
    provider: ClassVar[Provider] = Provider.TELEGRAM
    # Plain text by default; set "HTML" or "MarkdownV2" on an instance to send formatted text.
    parse_mode: str | None = None

    def __init__(self, config: ConnectionConfig) -> None:
        super().__init__(config)
        token = config.credentials.get("bot_token", "")
        self._base = f"{(config.api_base or DEFAULT_API_BASE).rstrip('/')}/bot{token}"
        self._urls = {m: f"{self._base}/{m}" for m in ("sendMessage", "sendPhoto", "sendVideo")}
        self._headers = {"Content-Type": "application/json"}
        self._client_timeout = aiohttp.ClientTimeout(total=config.timeout)
        self._secrets = self.secrets

    # ------------------------------------------------------------------ sending
    def build_request(self, message: OutgoingMessage) -> tuple[str, dict[str, Any]]:
        """(method name, JSON parameters) for one message."""
        target = message.to.strip()
        chat_id: int | str = int(target) if CHAT_ID.fullmatch(target) else target
        params: dict[str, Any] = {"chat_id": chat_id}
        if message.media is not None:
            method = "sendPhoto" if message.media.kind == "image" else "sendVideo"
            params["photo" if method == "sendPhoto" else "video"] = message.media.url
            if message.text:
                params["caption"] = message.text
        else:
            method = "sendMessage"
            params["text"] = message.text
            params["link_preview_options"] = {"is_disabled": True}
        if self.parse_mode:
            params["parse_mode"] = self.parse_mode
        if message.buttons:
            rows = []
            for button in message.buttons:
                if button.url:
                    rows.append([{"text": button.title, "url": button.url}])
                elif button.payload:
                    rows.append([{"text": button.title, "callback_data": button.payload}])
            if rows:
                params["reply_markup"] = {"inline_keyboard": rows}
        if message.silent:
            params["disable_notification"] = True
        if message.reply_to_provider_id:
            _, _, reply_id = message.reply_to_provider_id.rpartition(":")
            if reply_id.isascii() and reply_id.isdigit():
                params["reply_parameters"] = {"message_id": int(reply_id), "allow_sending_without_reply": True}
        return method, params

    def _post_for(self, message: OutgoingMessage) -> tuple[str, Mapping[str, str], bytes]:
        method, params = self.build_request(message)
        return self._urls[method], self._headers, compact_json(params)

    def _send_result(self, raw: RawResponse) -> SendResult:
        data = raw.json()
        if raw.ok and isinstance(data, dict) and data.get("ok") is True:
            result = data.get("result")
            if isinstance(result, dict):
                chat = result.get("chat")
                chat_id = _text(chat.get("id")) if isinstance(chat, dict) else ""
                message_id = _text(result.get("message_id"))
                if chat_id and message_id:
                    return SendResult(f"{chat_id}:{message_id}", "accepted")
            raise ProviderError(ErrorKind.TEMPORARY, "success answer without a message", http_status=raw.status)
        raise self.error_from(raw, data)

    def error_from(self, raw: RawResponse, data: Any = None) -> ProviderError:
        if data is None:
            data = raw.json()
        if not isinstance(data, dict) or data.get("ok") is not False:
            kind = K.TEMPORARY if raw.status >= 500 or raw.status == 200 else classify(raw.status, "")
            return ProviderError(kind, f"HTTP {raw.status} without a Bot API answer", http_status=raw.status)
        code = _int(data.get("error_code"))
        description = _text(data.get("description")) or "Bot API error"
        parameters = data.get("parameters")
        retry_after: float | None = None
        if isinstance(parameters, dict):
            seconds = parameters.get("retry_after")
            if isinstance(seconds, int | float) and not isinstance(seconds, bool):
                retry_after = float(seconds)
            migrated = _int(parameters.get("migrate_to_chat_id"))
            if migrated is not None:
                description = f"{description} (migrated to chat {migrated})"
        if retry_after is None:
            retry_after = parse_retry_after(raw.retry_after)
        kind = classify(code, description)
        if kind == K.RATE_LIMITED and retry_after is None:
            retry_after = 1.0
        return ProviderError(
            kind,
            description[:500],
            code="" if code is None else str(code),
            http_status=raw.status,
            retry_after=retry_after,
        )

    # ------------------------------------------------------------------ webhooks
    def verify_webhook(self, request: WebhookRequest) -> bool:
        secret = self.config.credentials.get("webhook_secret", "")
        header = request.header("x-telegram-bot-api-secret-token")
        if not secret or not header:
            return False
        return hmac.compare_digest(secret.encode(), header.encode("utf-8", "replace"))

    def parse_webhook(self, request: WebhookRequest) -> list[WebhookEvent]:
        update = load_json_body(request.body)
        if not isinstance(update, dict):
            raise WebhookParseError("an update is a JSON object")
        update_id = update.get("update_id")
        if not isinstance(update_id, int) or isinstance(update_id, bool):
            raise WebhookParseError("update_id missing")
        message = update.get("message")
        if message is not None:
            return [self._message(message)]
        callback = update.get("callback_query")
        if callback is not None:
            return [self._callback(callback)]
        member = update.get("my_chat_member")
        if member is not None:
            return [self._member(update_id, member)]
        if any(k in update for k in ("edited_message", "channel_post", "edited_channel_post")):
            return []  # edits and channel posts are not messages to us
        pieces = {k: v for k, v in update.items() if k != "update_id"}
        kind_name = next(iter(pieces), "")
        piece = pieces.get(kind_name)
        return [
            InboundMessage(
                provider_message_id=f"update:{update_id}",
                sender=self._sender_of(piece),
                at=self._date_of(piece),
                kind="unknown",
                payload={"type": kind_name, kind_name: piece} if kind_name else {},
            )
        ]

    @staticmethod
    def _sender_of(piece: Any) -> str:
        if isinstance(piece, dict):
            for key in ("chat", "from", "user"):
                holder = piece.get(key)
                if isinstance(holder, dict) and _int(holder.get("id")) is not None:
                    return str(_int(holder.get("id")))
        return ""

    @staticmethod
    def _date_of(piece: Any) -> datetime:
        if isinstance(piece, dict) and "date" in piece:
            return unix_time(piece.get("date"))
        return datetime.now(UTC)

    def _message(self, message: Any) -> InboundMessage:
        if not isinstance(message, dict):
            raise WebhookParseError("message is not an object")
        chat = message.get("chat")
        chat_id = _int(chat.get("id")) if isinstance(chat, dict) else None
        message_id = _int(message.get("message_id"))
        if chat_id is None or message_id is None:
            raise WebhookParseError("message without chat.id or message_id")
        sender = message.get("from")
        reply = message.get("reply_to_message")
        reply_id = _int(reply.get("message_id")) if isinstance(reply, dict) else None
        kind: InboundKind = "unknown"
        text = _text(message.get("text"))
        payload: dict[str, Any] = {}
        start = START.fullmatch(text.strip()) if text else None
        if start is not None:
            kind, text = "start", (start.group(1) or "").strip()
        elif "text" in message:
            kind = "text"
        elif "location" in message and isinstance(message["location"], dict):
            location = message["location"]
            kind, payload = "location", {"latitude": location.get("latitude"), "longitude": location.get("longitude")}
        elif "contact" in message and isinstance(message["contact"], dict):
            kind, payload = "contacts", {"contacts": [message["contact"]]}
            text = _user_name(message["contact"]) or _text(message["contact"].get("phone_number"))
        else:
            for key, media_kind in MEDIA_KINDS.items():
                if key in message:
                    kind, text = media_kind, _text(message.get("caption"))
                    media = message[key]
                    if isinstance(media, list):  # photo sizes: the largest is last
                        media = media[-1] if media else {}
                    # "type" says which piece it was; a sticker's own type (regular, mask …) is kept aside
                    media = media if isinstance(media, dict) else {}
                    payload = {**media, "type": key}
                    if "type" in media:
                        payload["media_type"] = media["type"]
                    break
            else:
                payload = {"message": message}
        return InboundMessage(
            provider_message_id=f"{chat_id}:{message_id}",
            sender=str(chat_id),
            at=unix_time(message.get("date")),
            kind=kind,
            text=text,
            sender_name=_user_name(sender) or _user_name(chat),
            payload=payload,
            reply_to_provider_id=f"{chat_id}:{reply_id}" if reply_id is not None else "",
            language=_text(sender.get("language_code")) if isinstance(sender, dict) else "",
        )

    def _callback(self, callback: Any) -> InboundMessage:
        if not isinstance(callback, dict):
            raise WebhookParseError("callback_query is not an object")
        query_id = _text(callback.get("id"))
        user = callback.get("from")
        user_id = _int(user.get("id")) if isinstance(user, dict) else None
        if not query_id or user_id is None:
            raise WebhookParseError("callback_query without id or from.id")
        data = _text(callback.get("data"))
        message = callback.get("message")
        chat_id: int | None = user_id
        message_id: int | None = None
        title = ""
        if isinstance(message, dict):
            chat = message.get("chat")
            chat_id = (_int(chat.get("id")) if isinstance(chat, dict) else None) or user_id
            message_id = _int(message.get("message_id"))
            title = self._button_title(message, data)
        return InboundMessage(
            provider_message_id=f"callback:{query_id}",
            sender=str(chat_id),
            at=datetime.now(UTC),  # a tap carries no time of its own (message.date is our message's)
            kind="button",
            text=title or data,
            sender_name=_user_name(user),
            payload={"payload": data, "callback_query_id": query_id, "title": title},
            reply_to_provider_id=f"{chat_id}:{message_id}" if message_id is not None else "",
            language=_text(user.get("language_code")) if isinstance(user, dict) else "",
        )

    @staticmethod
    def _button_title(message: Mapping[str, Any], data: str) -> str:
        markup = message.get("reply_markup")
        rows = markup.get("inline_keyboard") if isinstance(markup, dict) else None
        for row in rows if isinstance(rows, list) else []:
            for button in row if isinstance(row, list) else []:
                if isinstance(button, dict) and button.get("callback_data") == data:
                    return _text(button.get("text"))
        return ""

    def _member(self, update_id: int, member: Any) -> InboundMessage:
        if not isinstance(member, dict):
            raise WebhookParseError("my_chat_member is not an object")
        chat = member.get("chat")
        chat_id = _int(chat.get("id")) if isinstance(chat, dict) else None
        if chat_id is None:
            raise WebhookParseError("my_chat_member without chat.id")
        new = member.get("new_chat_member")
        old = member.get("old_chat_member")
        new_status = _text(new.get("status")) if isinstance(new, dict) else ""
        old_status = _text(old.get("status")) if isinstance(old, dict) else ""
        chat_type = _text(chat.get("type")) if isinstance(chat, dict) else ""
        private = chat_type == "private"
        kind: InboundKind = "unknown"
        if private and new_status == "kicked":
            kind = "block"
        elif private and new_status == "member" and old_status in ("kicked", "left"):
            kind = "unblock"
        return InboundMessage(
            provider_message_id=f"member:{update_id}",
            sender=str(chat_id),
            at=unix_time(member.get("date")),
            kind=kind,
            sender_name=_user_name(member.get("from")) or _user_name(chat),
            payload={"old_status": old_status, "new_status": new_status, "chat_type": chat_type},
        )

    # ------------------------------------------------------------------ account
    def _call(self, method: str, params: Mapping[str, Any] | None = None) -> tuple[RawResponse, Any]:
        raw = request_sync(
            "POST",
            f"{self._base}/{method}",
            headers=self._headers,
            body=compact_json(dict(params or {})),
            timeout=self.config.timeout,
            secrets=self._secrets,
        )
        return raw, raw.json()

    def check_credentials(self) -> CheckResult:
        if not self.config.credentials.get("bot_token"):
            return CheckResult(ok=False, detail="Bot token is missing.")
        try:
            raw, data = self._call("getMe")
        except ProviderError as exc:
            return CheckResult(ok=False, detail=f"Telegram API not reachable: {exc.message}")
        bot = data.get("result") if raw.ok and isinstance(data, dict) else None
        # What the tenant sees: our words, ids and a well-formed bot username, never the remote
        # free text (Telegram's description): see messengers.endpoints.
        bot_id = shown(DIGITS, _text(bot.get("id"))) if isinstance(bot, dict) else ""
        self.log_answer("check", raw, ok=bool(bot_id))
        if isinstance(bot, dict) and bot_id:
            username = shown(BOT_USERNAME, _text(bot.get("username")))
            info = {"id": bot_id, "username": username, "first_name": _text(bot.get("first_name"))}
            who = f"@{username}" if username else f"bot {bot_id}"
            if self.config.external_id and self.config.external_id != bot_id:
                return CheckResult(
                    ok=False,
                    detail=f"The token belongs to {who} (id {bot_id}), not to bot {self.config.external_id}.",
                    info=info,
                )
            return CheckResult(ok=True, detail=f"Connected as {who}", info=info)
        if isinstance(bot, dict):
            return CheckResult(ok=False, detail="Telegram answered without a bot id; the platform's log has it.")
        error = self.error_from(raw, data)
        code = error.code or str(raw.status)
        if error.kind == K.BAD_CREDENTIALS:
            return CheckResult(ok=False, detail=f"Bot token rejected by Telegram (code {code}).")
        return CheckResult(
            ok=False, detail=f"The Telegram API refused the check (code {code}); the platform's log has its answer."
        )

    def register_webhook(self, url: str) -> CheckResult:
        secret = self.config.credentials.get("webhook_secret", "")
        if not secret:
            return CheckResult(
                ok=False, detail="Webhook secret is missing; refusing to register an unprotected webhook."
            )
        params = {
            "url": url,
            "secret_token": secret,
            "allowed_updates": list(ALLOWED_UPDATES),
            "drop_pending_updates": False,
        }
        try:
            raw, data = self._call("setWebhook", params)
        except ProviderError as exc:
            return CheckResult(ok=False, detail=f"Telegram API not reachable: {exc.message}")
        done = raw.ok and isinstance(data, dict) and data.get("ok") is True
        self.log_answer("setWebhook", raw, ok=done)
        if done:
            return CheckResult(ok=True, detail="Webhook was set", info={"url": url})
        error = self.error_from(raw, data)
        detail = f"setWebhook failed (code {error.code or raw.status})."
        if not url.lower().startswith("https://"):
            detail += f" Telegram only delivers to HTTPS addresses, and this one is {url}: set PUBLIC_URL to https://…"
        else:
            detail += " The platform's log has Telegram's answer."
        return CheckResult(ok=False, detail=detail, info={"code": error.code})

    def webhook_info(self) -> dict[str, Any]:
        """getWebhookInfo's result (url, pending_update_count, last_error_message …)."""
        raw, data = self._call("getWebhookInfo")
        if raw.ok and isinstance(data, dict) and isinstance(data.get("result"), dict):
            return dict(data["result"])
        raise self.error_from(raw, data)

    # ------------------------------------------------------------------ inbound media
    @classmethod
    def media_ref(cls, kind: str, payload: Mapping[str, Any]) -> MediaRef | None:
        """A media message's piece as parse_webhook stored it: {type, file_id, file_size?,
        mime_type?, file_name?, …} (for photos the largest size)."""
        if not isinstance(payload, Mapping):
            return None
        piece = _text(payload.get("type"))
        if piece not in MEDIA_KINDS:
            if kind != "sticker":
                return None
            piece = "sticker"  # stored before the sticker's own "type" (regular) was kept aside
        file_id = _text(payload.get("file_id"))
        if not FILE_ID.fullmatch(file_id):
            return None
        mime_type = _text(payload.get("mime_type"))
        if piece == "sticker" and (payload.get("is_animated") is True or payload.get("is_video") is True):
            mime_type = "video/webm" if payload.get("is_video") is True else "application/x-tgsticker"
        size = _int(payload.get("file_size"))
        return MediaRef(
            ref=file_id,
            mime_type=(mime_type or MEDIA_TYPES.get(piece, ""))[:100],
            filename=_text(payload.get("file_name"))[:255],
            size=size if size is not None and size >= 0 else None,
            voice=piece == "voice",
        )

    def fetch_media(self, ref: MediaRef, *, max_bytes: int) -> MediaFile:
        if not FILE_ID.fullmatch(ref.ref):
            raise ProviderError(ErrorKind.BAD_REQUEST, "not a Telegram file_id")
        raw, data = self._call("getFile", {"file_id": ref.ref})
        result = data.get("result") if raw.ok and isinstance(data, dict) and data.get("ok") is True else None
        if not isinstance(result, dict):
            raise self.error_from(raw, data)
        path = _text(result.get("file_path"))
        if not FILE_PATH.fullmatch(path) or ".." in path or path.startswith("/"):
            raise ProviderError(ErrorKind.TEMPORARY, "getFile answered without a usable file_path")
        size = _int(result.get("file_size"))
        if size is not None and size > max_bytes:
            raise too_large(max_bytes)
        root = (self.config.api_base or DEFAULT_API_BASE).rstrip("/")
        token = self.config.credentials.get("bot_token", "")
        download = download_sync(
            f"{root}/file/bot{token}/{path}",
            headers={},
            timeout=self.config.timeout,
            max_bytes=max_bytes,
            allowed=lambda target: media_url_allowed(target, root),
            secrets=self._secrets,
        )
        if download.raw.status == 404:  # the file server's 404 is a missing file, not a wrong token
            raise ProviderError(
                ErrorKind.BAD_REQUEST, "file not found on Telegram's file server", code="404", http_status=404
            )
        if not download.raw.ok:
            raise self.error_from(download.raw)
        mime_type = ref.mime_type or download.content_type
        filename = ref.filename or path.rpartition("/")[2]
        return MediaFile(content=download.raw.body, mime_type=mime_type, filename=filename)
