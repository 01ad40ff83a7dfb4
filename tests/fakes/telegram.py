"""Fake Telegram Bot API, per providers.md section 2.

API: `/bot{token}/{method}` (GET or POST; method names case-insensitive; parameters from the query
string, JSON, x-www-form-urlencoded or multipart/form-data), methods sendMessage, sendPhoto,
sendVideo, setWebhook, deleteWebhook, getWebhookInfo, getUpdates (long polling), getMe,
answerCallbackQuery. Every answer is the `{"ok": …}` envelope with `error_code`, `description`
and `parameters.retry_after` on errors.

State per bot and chat: unknown chat → 400 "chat not found", never started → 403 "bot can't
initiate conversation", blocked → 403 "bot was blocked by the user", deactivated → 403 "user is
deactivated"; optional 429 flood control for the bot (sliding 1-s window) and per chat. Updates
(simulated inbound: text, /start payload, callback_query, my_chat_member kicked/member, media …)
are pushed to the URL registered with setWebhook, with `X-Telegram-Bot-Api-Secret-Token`, or
queued for getUpdates when no webhook is set.

    python -m tests.fakes.telegram --port 8082 --bot-token 123456:ABC --rate 30 [--any-chat]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from aiohttp import BodyPartReader, web

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

DEFAULT_BOT_TOKEN = "7172552019:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
TOKEN_PATTERN = re.compile(r"[0-9]{3,12}:[A-Za-z0-9_-]{10,64}")
SECRET_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,256}")
JSON_FIELDS = (
    "reply_markup",
    "link_preview_options",
    "reply_parameters",
    "allowed_updates",
    "entities",
    "caption_entities",
)
RECENT_MESSAGES = 5
SEND_METHODS = frozenset({"sendmessage", "sendphoto", "sendvideo"})
DEFAULT_ALLOWED = (
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "callback_query",
    "my_chat_member",
)
HTML_TAGS = frozenset(
    {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre", "span", "tg-spoiler", "tg-emoji"}
    | {"blockquote"}
)
TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)[^>]*>")

ERROR_DESCRIPTIONS = {
    400: "Bad Request: chat not found",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
    500: "Internal Server Error",
    502: "Bad Gateway",
}


class TelegramError(Exception):
    def __init__(self, code: int, description: str, *, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after


def tg_error(code: int, description: str = "", *, retry_after: int | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description or ERROR_DESCRIPTIONS[code]}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return json_response(body, code if code >= 400 else 400)


@dataclass
class Chat:
    id: int
    type: str = "private"
    first_name: str = "Erika"
    last_name: str = ""
    username: str = ""
    language_code: str = "de"
    title: str = ""
    started: bool = True
    blocked: bool = False
    deactivated: bool = False
    next_message_id: int = 1
    # the bot's last messages with buttons in this chat, so a callback_query carries the tapped one
    recent: dict[int, dict[str, Any]] = field(default_factory=dict)

    def info(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k != "recent"}

    def remember(self, message: dict[str, Any]) -> None:
        self.recent[message["message_id"]] = message
        while len(self.recent) > RECENT_MESSAGES:
            del self.recent[next(iter(self.recent))]

    def as_chat(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "type": self.type}
        if self.type == "private":
            data["first_name"] = self.first_name
            if self.last_name:
                data["last_name"] = self.last_name
        else:
            data["title"] = self.title or f"Chat {self.id}"
        if self.username:
            data["username"] = self.username
        return data

    def as_user(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.last_name:
            data["last_name"] = self.last_name
        if self.username:
            data["username"] = self.username
        if self.language_code:
            data["language_code"] = self.language_code
        return data


@dataclass
class Bot:
    token: str
    username: str = "city_alerts_bot"
    first_name: str = "CityAlerts"
    chats: dict[int, Chat] = field(default_factory=dict)
    webhook_url: str = ""
    secret_token: str = ""
    allowed_updates: list[str] | None = None
    max_connections: int = 40
    last_error_date: int | None = None
    last_error_message: str = ""
    webhook_pending: int = 0
    next_update_id: int = 100_000
    queue: deque[dict[str, Any]] = field(default_factory=deque)
    waiters: list[asyncio.Future[None]] = field(default_factory=list)

    @property
    def id(self) -> int:
        return int(self.token.split(":", 1)[0])

    def as_user(self) -> dict[str, Any]:
        return {"id": self.id, "is_bot": True, "first_name": self.first_name, "username": self.username}


@dataclass
class TelegramSettings(CommonSettings):
    status_delays: dict[str, float] = field(default_factory=lambda: {"duplicate": 0.05, "reorder": 0.2})
    per_chat_rate: float | None = None  # messages per second to one chat (Telegram: about 1)
    any_chat: bool = False  # unknown numeric chat ids become started private chats (benchmarks)
    any_token: bool = False  # any well-formed token is a bot
    require_https: bool = False  # setWebhook refuses http:// URLs like the real API


class FakeTelegram(FakeServer):
    name: ClassVar[str] = "telegram"
    settings_class: ClassVar[type[CommonSettings]] = TelegramSettings
    settings: TelegramSettings

    def __init__(
        self,
        *,
        bot_token: str | Iterable[str] = DEFAULT_BOT_TOKEN,
        bot_username: str = "city_alerts_bot",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        tokens = [bot_token] if isinstance(bot_token, str) else list(bot_token)
        self._initial = [(t, bot_username if i == 0 else f"bot{i}_bot") for i, t in enumerate(tokens)]
        self.bots: dict[str, Bot] = {}
        self.reset_state()
        self.chat_limiter = SlidingWindowLimiter(None)

    # ------------------------------------------------------------------ state
    def reset_state(self) -> None:
        for bot in getattr(self, "bots", {}).values():
            for waiter in bot.waiters:
                if not waiter.done():
                    waiter.cancel()
        self.bots = {token: Bot(token=token, username=username) for token, username in self._initial}
        if hasattr(self, "chat_limiter"):
            self.chat_limiter.clear()

    def on_settings_changed(self, changed: set[str]) -> None:
        if not changed or "per_chat_rate" in changed:
            self.chat_limiter = SlidingWindowLimiter(self.settings.per_chat_rate)

    @property
    def primary(self) -> Bot:
        return self.bots[self._initial[0][0]]

    def _bot(self, token: str | None) -> Bot:
        if token is None:
            return self.primary
        bot = self.bots.get(token)
        if bot is None:
            if not (self.settings.any_token and TOKEN_PATTERN.fullmatch(token)):
                raise KeyError(f"unknown bot token {token[:6]}…")
            bot = self.bots[token] = Bot(token=token, username=f"bot{token.split(':')[0]}_bot")
        return bot

    def recipient_key(self, recipient: str) -> str:
        return str(recipient)

    def default_fault(self, kind: str) -> Fault:
        if kind == "5xx":
            return Fault("5xx", code=500)
        if kind == "rate_limit":
            return Fault("rate_limit", code=429)
        if kind in ("error", "async_fail"):
            return Fault("error", code=403, message=ERROR_DESCRIPTIONS[403])
        return Fault(kind)

    def config_extra(self) -> dict[str, Any]:
        return {
            "bots": {
                bot.username: {
                    "id": bot.id,
                    "webhook_url": bot.webhook_url,
                    "allowed_updates": bot.allowed_updates,
                    "chats": {str(c.id): c.info() for c in bot.chats.values()},
                }
                for bot in self.bots.values()
            }
        }

    # ------------------------------------------------------------------ routes
    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/bot{token}/{method}", self._handle)

    def control_routes(self) -> list[tuple[str, str, Any]]:
        return [
            ("POST", "/chats", lambda p: self._add_chat(**p).info()),
            ("GET", "/chats", lambda p: {str(c.id): c.info() for c in self._bot(p.get("bot")).chats.values()}),
        ]

    async def _handle(self, request: web.Request) -> web.Response:
        now = time.monotonic()
        token = request.match_info["token"]
        method = request.match_info["method"].lower()
        try:
            params = await self._params(request)
        except TelegramError as exc:
            entry = self.log.add(request, None, kind="api")
            return self._finish(entry, tg_error(exc.code, exc.description), f"error:{exc.code}")
        is_send = method in SEND_METHODS
        chat_key = str(params.get("chat_id", "")) if is_send else None
        entry = self.log.add(request, params, kind="send" if is_send else method, recipient=chat_key, now=now)
        if is_send:
            self.stats.attempt(now)
        try:
            bot = self._bot(token)
        except KeyError:
            return self._finish(entry, tg_error(401), "error:401")
        handler: Any = {
            "sendmessage": self._send_message,
            "sendphoto": self._send_photo,
            "sendvideo": self._send_video,
            "setwebhook": self._set_webhook,
            "deletewebhook": self._delete_webhook,
            "getwebhookinfo": self._get_webhook_info,
            "getupdates": self._get_updates,
            "getme": self._get_me,
            "answercallbackquery": self._answer_callback_query,
        }.get(method)
        if handler is None:
            return self._finish(entry, tg_error(404), "error:404")
        try:
            if is_send:
                result = await self._send(request, bot, params, handler, now)
            else:
                result = await handler(bot, params)
        except TelegramError as exc:
            response = tg_error(exc.code, exc.description, retry_after=exc.retry_after)
            return self._finish(entry, response, f"error:{exc.code}")
        if result is None:  # connection reset by a fault
            self.stats.outcomes["fault:reset"] += 1
            return web.Response()
        return self._finish(entry, json_response({"ok": True, **result}), "ok")

    def _finish(self, entry: dict[str, Any], response: web.Response, outcome: str) -> web.Response:
        entry["status"] = response.status
        if outcome != "ok":
            self.stats.outcomes[outcome] += 1
        self.stats.http_status[response.status] += 1
        return response

    async def _params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            content_type = request.content_type
            if content_type == "application/json":
                try:
                    body = json.loads(await request.read())
                except ValueError as exc:
                    raise TelegramError(400, "Bad Request: can't parse JSON object") from exc
                if not isinstance(body, dict):
                    raise TelegramError(400, "Bad Request: parameters must be a JSON object")
                params.update(body)
            elif content_type == "multipart/form-data":
                reader = await request.multipart()
                while True:
                    part = await reader.next()
                    if part is None:
                        break
                    if not isinstance(part, BodyPartReader):
                        continue
                    if part.filename:
                        data = await part.read()
                        params[str(part.name)] = {
                            "filename": part.filename,
                            "size": len(data),
                            "content_type": part.headers.get("Content-Type", ""),
                        }
                    else:
                        params[str(part.name)] = await part.text()
            else:
                form = await request.post()
                for key, item in form.items():
                    params[key] = item if isinstance(item, str) else {"filename": getattr(item, "filename", "")}
        for key in JSON_FIELDS:
            raw_value = params.get(key)
            if isinstance(raw_value, str):
                try:
                    params[key] = json.loads(raw_value)
                except ValueError as exc:
                    raise TelegramError(400, f"Bad Request: can't parse {key} JSON object") from exc
        return params

    # ------------------------------------------------------------------ sending
    def _chat(self, bot: Bot, chat_id: Any) -> Chat:
        if isinstance(chat_id, str) and chat_id.startswith("@"):
            for chat in bot.chats.values():
                if chat.username and "@" + chat.username == chat_id:
                    return chat
            raise TelegramError(400, "Bad Request: chat not found")
        try:
            number = int(chat_id)
        except (TypeError, ValueError) as exc:
            raise TelegramError(400, "Bad Request: chat not found") from exc
        found = bot.chats.get(number)
        if found is None:
            if not self.settings.any_chat:
                raise TelegramError(400, "Bad Request: chat not found")
            found = bot.chats[number] = Chat(id=number, type="private" if number > 0 else "supergroup")
        return found

    async def _send(
        self, request: web.Request, bot: Bot, params: dict[str, Any], handler: Any, now: float
    ) -> dict[str, Any] | None:
        if "chat_id" not in params or params["chat_id"] in ("", None):
            raise TelegramError(400, "Bad Request: chat_id is empty")
        chat = self._chat(bot, params["chat_id"])
        if chat.deactivated:
            raise TelegramError(403, "Forbidden: user is deactivated")
        if chat.blocked:
            raise TelegramError(403, "Forbidden: bot was blocked by the user")
        if not chat.started:
            raise TelegramError(403, "Forbidden: bot can't initiate conversation with a user")
        self._check_markup(params.get("reply_markup"))
        self._check_reply(chat, params.get("reply_parameters"))
        method = request.match_info["method"].lower()
        if method == "sendmessage":
            self._validate_message(params)
        else:
            self._validate_media(params, "photo" if method == "sendphoto" else "video")
        fault = self.faults.pick(str(chat.id))
        if fault is not None:
            return await self._apply_fault(request, fault)
        wait = self.limiter.try_acquire(bot.token, now)
        if wait is None and self.settings.per_chat_rate:
            wait = self.chat_limiter.try_acquire(f"{bot.token}:{chat.id}", now)
        if wait is not None:
            seconds = max(1, math.ceil(wait))
            raise TelegramError(429, f"Too Many Requests: retry after {seconds}", retry_after=seconds)
        message = handler(bot, chat, params)
        if "reply_markup" in message:  # only messages with buttons can be tapped later
            chat.remember(message)
        self.stats.accepted(now)
        self.record_sent({"chat_id": chat.id, "bot": bot.username, "method": method, "params": params, **message})
        return {"result": message}

    async def _apply_fault(self, request: web.Request, fault: Fault) -> dict[str, Any] | None:
        if fault.kind in ("timeout", "reset"):
            if await self.apply_transport_fault(request, fault):
                return None
            raise TelegramError(502, "Bad Gateway")
        if fault.kind == "rate_limit":
            seconds = max(1, math.ceil(fault.retry_after or self.settings.retry_after))
            raise TelegramError(429, f"Too Many Requests: retry after {seconds}", retry_after=seconds)
        code = fault.code or 500
        raise TelegramError(code, fault.message or ERROR_DESCRIPTIONS.get(code, "Internal Server Error"))

    @staticmethod
    def _check_markup(markup: Any) -> None:
        if markup is None:
            return
        if not isinstance(markup, dict):
            raise TelegramError(400, "Bad Request: can't parse reply keyboard markup JSON object")
        keyboard = markup.get("inline_keyboard")
        if keyboard is None:
            return
        if not isinstance(keyboard, list) or not all(isinstance(row, list) for row in keyboard):
            raise TelegramError(
                400, 'Bad Request: field "inline_keyboard" of the InlineKeyboardMarkup must be an Array'
            )
        for row in keyboard:
            for button in row:
                if not isinstance(button, dict) or not button.get("text"):
                    raise TelegramError(
                        400,
                        "Bad Request: can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard",
                    )
                if "callback_data" in button:
                    data = str(button["callback_data"]).encode()
                    if not 1 <= len(data) <= 64:
                        raise TelegramError(400, "Bad Request: BUTTON_DATA_INVALID")
                elif "url" in button:
                    if not str(button["url"]).startswith(("http://", "https://", "tg://")):
                        raise TelegramError(
                            400, f"Bad Request: inline keyboard button URL '{button['url']}' is invalid: wrong HTTP URL"
                        )
                else:
                    raise TelegramError(400, "Bad Request: can't parse inline keyboard button: field is missing")

    @staticmethod
    def _check_reply(chat: Chat, reply: Any) -> None:
        if not isinstance(reply, dict):
            return
        try:
            message_id = int(reply.get("message_id", 0))
        except (TypeError, ValueError) as exc:
            raise TelegramError(400, "Bad Request: message to be replied not found") from exc
        if not 0 < message_id < chat.next_message_id and not reply.get("allow_sending_without_reply"):
            raise TelegramError(400, "Bad Request: message to be replied not found")

    @staticmethod
    def _check_text(text: str, parse_mode: Any, *, limit: int, what: str) -> None:
        if len(text) > limit:
            raise TelegramError(400, f"Bad Request: {what} is too long")
        if parse_mode in (None, ""):
            return
        if parse_mode not in ("HTML", "MarkdownV2", "Markdown"):
            raise TelegramError(400, f"Bad Request: unsupported parse_mode {parse_mode!r}")
        if parse_mode == "HTML":
            stack: list[str] = []
            for match in TAG.finditer(text):
                closing, name = match.group(1), match.group(2).lower()
                if name not in HTML_TAGS:
                    raise TelegramError(
                        400,
                        f'Bad Request: can\'t parse entities: Unsupported start tag "{name}" at byte offset '
                        f"{len(text[: match.start()].encode())}",
                    )
                if not closing:
                    stack.append(name)
                elif not stack or stack.pop() != name:
                    raise TelegramError(
                        400, f"Bad Request: can't parse entities: Unexpected end tag at byte offset {match.start()}"
                    )
            if stack:
                raise TelegramError(
                    400, "Bad Request: can't parse entities: Can't find end tag corresponding to start tag"
                )

    def _message(self, bot: Bot, chat: Chat, params: Mapping[str, Any]) -> dict[str, Any]:
        message_id = chat.next_message_id
        chat.next_message_id += 1
        message: dict[str, Any] = {
            "message_id": message_id,
            "from": bot.as_user(),
            "chat": chat.as_chat(),
            "date": int(time.time()),
        }
        if isinstance(params.get("reply_markup"), dict) and "inline_keyboard" in params["reply_markup"]:
            message["reply_markup"] = {"inline_keyboard": params["reply_markup"]["inline_keyboard"]}
        if isinstance(params.get("link_preview_options"), dict):
            message["link_preview_options"] = params["link_preview_options"]
        return message

    def _validate_message(self, params: Mapping[str, Any]) -> None:
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise TelegramError(400, "Bad Request: message text is empty")
        self._check_text(text, params.get("parse_mode"), limit=4096, what="message")

    def _send_message(self, bot: Bot, chat: Chat, params: Mapping[str, Any]) -> dict[str, Any]:
        message = self._message(bot, chat, params)
        message["text"] = params["text"]
        return message

    @staticmethod
    def _media(value: Any, kind: str) -> str:
        if isinstance(value, dict):
            return f"upload:{value.get('filename', '')}"
        if not isinstance(value, str) or not value.strip():
            raise TelegramError(400, f"Bad Request: there is no {kind} in the request")
        if any(ch.isspace() for ch in value):
            raise TelegramError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        return value

    def _validate_media(self, params: Mapping[str, Any], kind: str) -> None:
        self._media(params.get(kind), kind)
        caption = params.get("caption")
        if caption:
            self._check_text(str(caption), params.get("parse_mode"), limit=1024, what="message caption")

    def _send_photo(self, bot: Bot, chat: Chat, params: Mapping[str, Any]) -> dict[str, Any]:
        unique = f"AQAD{sum(self._media(params.get('photo'), 'photo').encode()) % 10**8:08d}"
        message = self._message(bot, chat, params)
        message["photo"] = [
            {
                "file_id": f"AgAC{unique}_s",
                "file_unique_id": unique + "s",
                "width": 90,
                "height": 60,
                "file_size": 1200,
            },
            {
                "file_id": f"AgAC{unique}_m",
                "file_unique_id": unique + "m",
                "width": 800,
                "height": 533,
                "file_size": 48000,
            },
        ]
        if params.get("caption"):
            message["caption"] = str(params["caption"])
        return message

    def _send_video(self, bot: Bot, chat: Chat, params: Mapping[str, Any]) -> dict[str, Any]:
        unique = f"BAAD{sum(self._media(params.get('video'), 'video').encode()) % 10**8:08d}"
        message = self._message(bot, chat, params)
        message["video"] = {
            "file_id": f"BAAC{unique}",
            "file_unique_id": unique,
            "width": 1280,
            "height": 720,
            "duration": 30,
            "mime_type": "video/mp4",
        }
        if params.get("caption"):
            message["caption"] = str(params["caption"])
        return message

    # ------------------------------------------------------------------ other methods
    async def _get_me(self, bot: Bot, params: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "result": {
                **bot.as_user(),
                "can_join_groups": True,
                "can_read_all_group_messages": False,
                "supports_inline_queries": False,
                "can_connect_to_business": False,
                "has_main_web_app": False,
            }
        }

    async def _set_webhook(self, bot: Bot, params: Mapping[str, Any]) -> dict[str, Any]:
        url = str(params.get("url", ""))
        if not url:
            return await self._delete_webhook(bot, params)
        if not url.startswith(("https://", "http://")) or (self.settings.require_https and url.startswith("http://")):
            raise TelegramError(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.get("secret_token")
        if secret is not None and not SECRET_PATTERN.fullmatch(str(secret)):
            raise TelegramError(400, "Bad Request: secret token contains unallowed characters")
        allowed = params.get("allowed_updates")
        if allowed is not None and (not isinstance(allowed, list) or not all(isinstance(a, str) for a in allowed)):
            raise TelegramError(400, "Bad Request: can't parse allowed_updates JSON array")
        try:
            max_connections = int(params.get("max_connections", 40))
        except (TypeError, ValueError) as exc:
            raise TelegramError(400, "Bad Request: bad max_connections") from exc
        if not 1 <= max_connections <= 100:
            raise TelegramError(400, "Bad Request: bad max_connections")
        if str(params.get("drop_pending_updates", "")).lower() in ("true", "1"):
            bot.queue.clear()
        bot.webhook_url = url
        bot.secret_token = "" if secret is None else str(secret)
        bot.allowed_updates = list(allowed) if allowed is not None else bot.allowed_updates
        bot.max_connections = max_connections
        for update in list(bot.queue):
            self._deliver(bot, update)
        bot.queue.clear()
        return {"result": True, "description": "Webhook was set"}

    async def _delete_webhook(self, bot: Bot, params: Mapping[str, Any]) -> dict[str, Any]:
        had = bool(bot.webhook_url)
        bot.webhook_url = ""
        bot.secret_token = ""
        if str(params.get("drop_pending_updates", "")).lower() in ("true", "1"):
            bot.queue.clear()
        return {"result": True, "description": "Webhook was deleted" if had else "Webhook is already deleted"}

    async def _get_webhook_info(self, bot: Bot, params: Mapping[str, Any]) -> dict[str, Any]:
        info: dict[str, Any] = {
            "url": bot.webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": bot.webhook_pending if bot.webhook_url else len(bot.queue),
        }
        if bot.webhook_url:
            info["max_connections"] = bot.max_connections
            info["ip_address"] = "127.0.0.1"
            if bot.allowed_updates is not None:
                info["allowed_updates"] = bot.allowed_updates
        if bot.last_error_date:
            info["last_error_date"] = bot.last_error_date
            info["last_error_message"] = bot.last_error_message
        return {"result": info}

    async def _get_updates(self, bot: Bot, params: Mapping[str, Any]) -> dict[str, Any]:
        if bot.webhook_url:
            raise TelegramError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
            )
        try:
            offset = int(params.get("offset", 0))
            limit = max(1, min(int(params.get("limit", 100)), 100))
            timeout = max(0.0, min(float(params.get("timeout", 0)), 50.0))
        except (TypeError, ValueError) as exc:
            raise TelegramError(400, "Bad Request: wrong parameter value") from exc
        if offset > 0:
            while bot.queue and bot.queue[0]["update_id"] < offset:
                bot.queue.popleft()
        elif offset < 0:
            keep = list(bot.queue)[offset:]
            bot.queue = deque(keep)
        if not bot.queue and timeout > 0:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            bot.waiters.append(waiter)
            try:
                await asyncio.wait_for(asyncio.shield(waiter), timeout)
            except (TimeoutError, asyncio.CancelledError):
                pass
            finally:
                if waiter in bot.waiters:
                    bot.waiters.remove(waiter)
        return {"result": list(bot.queue)[:limit]}

    async def _answer_callback_query(self, bot: Bot, params: Mapping[str, Any]) -> dict[str, Any]:
        if not params.get("callback_query_id"):
            raise TelegramError(
                400, "Bad Request: query is too old and response timeout expired or query ID is invalid"
            )
        return {"result": True}

    # ------------------------------------------------------------------ updates
    def _next_update(self, bot: Bot, piece: Mapping[str, Any]) -> dict[str, Any]:
        bot.next_update_id += 1
        return {"update_id": bot.next_update_id, **piece}

    def _deliver(self, bot: Bot, update: dict[str, Any]) -> None:
        kinds = [k for k in update if k != "update_id"]
        allowed = bot.allowed_updates or DEFAULT_ALLOWED
        if kinds and kinds[0] not in allowed:
            return
        if not bot.webhook_url:
            bot.queue.append(update)
            for waiter in bot.waiters:
                if not waiter.done():
                    waiter.set_result(None)
            return
        body = dumps(update)
        headers = {"Content-Type": "application/json"}
        if bot.secret_token:
            headers["X-Telegram-Bot-Api-Secret-Token"] = bot.secret_token

        def on_result(delivery: Delivery, status: int | None, detail: str) -> None:
            ok = status is not None and 200 <= status < 300
            if ok or delivery.attempt + 1 >= self.pusher.max_attempts:
                bot.webhook_pending -= 1
            if not ok:
                bot.last_error_date = int(time.time())
                bot.last_error_message = (
                    f"Wrong response from the webhook: {status} {detail}".strip() if status else detail
                )

        settings = self.settings
        copies = 2 if settings.duplicate_rate and self.rng.random() < settings.duplicate_rate else 1
        delay = (
            settings.delay("reorder") if settings.reorder_rate and self.rng.random() < settings.reorder_rate else 0.0
        )
        for copy in range(copies):
            bot.webhook_pending += 1
            delivery = Delivery(url=bot.webhook_url, body=body, headers=dict(headers), on_result=on_result)
            self.submit_webhook(delivery, delay + copy * settings.delay("duplicate"))

    def _add_chat(
        self,
        chat_id: int | str,
        *,
        first_name: str = "Erika",
        last_name: str = "",
        username: str = "",
        language_code: str = "de",
        type: str = "private",
        title: str = "",
        started: bool = True,
        blocked: bool = False,
        deactivated: bool = False,
        bot: str | None = None,
    ) -> Chat:
        owner = self._bot(bot)
        number = int(chat_id)
        chat = owner.chats.get(number)
        if chat is None:
            chat = owner.chats[number] = Chat(id=number)
        chat.first_name, chat.last_name, chat.username = first_name, last_name, username
        chat.language_code, chat.type, chat.title = language_code, type, title
        chat.started, chat.blocked, chat.deactivated = started, blocked, deactivated
        return chat

    def simulate_inbound(
        self,
        chat_id: int | str = 123456789,
        kind: str = "text",
        text: str = "",
        *,
        payload: str = "",
        message_id: int | None = None,
        first_name: str = "Erika",
        username: str = "",
        language_code: str = "de",
        latitude: float = 52.52,
        longitude: float = 13.405,
        update: Mapping[str, Any] | None = None,
        bot: str | None = None,
        **aliases: Any,
    ) -> dict[str, Any]:
        """Push an update (kinds: text, start, command, callback, block, unblock, photo, video,
        voice, document, sticker, location, contact, edited, raw) to the webhook or the queue."""
        chat_id = aliases.pop("from", aliases.pop("sender", chat_id))
        if aliases:
            raise ValueError(f"unknown inbound parameters: {sorted(aliases)}")
        owner = self._bot(bot)
        number = int(chat_id)
        chat = owner.chats.get(number)
        if chat is None:
            chat = owner.chats[number] = Chat(
                id=number, first_name=first_name, username=username, language_code=language_code, started=False
            )
        now = int(time.time())
        piece: dict[str, Any]
        if kind == "raw":
            piece = dict(update or {})
        elif kind in ("block", "unblock"):
            chat.blocked = kind == "block"
            old, new = ("member", "kicked") if kind == "block" else ("kicked", "member")
            bot_member = {"user": owner.as_user(), "status": old}
            piece = {
                "my_chat_member": {
                    "chat": chat.as_chat(),
                    "from": chat.as_user(),
                    "date": now,
                    "old_chat_member": bot_member,
                    "new_chat_member": {
                        "user": owner.as_user(),
                        "status": new,
                        **({"until_date": 0} if new == "kicked" else {}),
                    },
                }
            }
        elif kind == "callback":
            reference = message_id or max(chat.next_message_id - 1, 1)
            tapped = chat.recent.get(reference) or {
                "message_id": reference,
                "from": owner.as_user(),
                "chat": chat.as_chat(),
                "date": now,
                "text": text or "…",
            }
            piece = {
                "callback_query": {
                    "id": str(abs(hash((number, now, payload, owner.next_update_id))) % 10**18),
                    "from": chat.as_user(),
                    "message": tapped,
                    "chat_instance": str(abs(hash((number, owner.token))) % 10**18),
                    "data": payload,
                }
            }
        else:
            message: dict[str, Any] = {
                "message_id": message_id or chat.next_message_id,
                "from": chat.as_user(),
                "chat": chat.as_chat(),
                "date": now,
            }
            chat.next_message_id = max(chat.next_message_id, int(message["message_id"])) + 1
            if kind == "start":
                message["text"] = f"/start {payload}" if payload else "/start"
                message["entities"] = [{"offset": 0, "length": 6, "type": "bot_command"}]
                chat.started = True
                chat.blocked = False
            elif kind == "command":
                message["text"] = text
                message["entities"] = [{"offset": 0, "length": len(text.split()[0]), "type": "bot_command"}]
            elif kind in ("text", "edited"):
                message["text"] = text or "Hallo"
            elif kind == "photo":
                message["photo"] = [
                    {"file_id": "AgACphoto", "file_unique_id": "AQADphoto", "width": 800, "height": 600}
                ]
            elif kind in ("video", "voice", "document", "sticker", "audio"):
                message[kind] = {"file_id": f"file_{kind}", "file_unique_id": f"u_{kind}"}
            elif kind == "location":
                message["location"] = {"latitude": latitude, "longitude": longitude}
            elif kind == "contact":
                message["contact"] = {"phone_number": "+491701234567", "first_name": first_name, "user_id": number}
            else:
                raise ValueError(f"unknown inbound kind {kind!r}")
            if text and kind in ("photo", "video", "document", "voice", "audio"):
                message["caption"] = text
            piece = {"edited_message" if kind == "edited" else "message": message}
        update_obj = self._next_update(owner, piece)
        self._deliver(owner, update_obj)
        return {"update": update_obj}

    # ------------------------------------------------------------------ in-process API
    def add_chat(self, chat_id: int | str, **kwargs: Any) -> Chat:
        """Register a chat (started by default) so sends to it succeed."""
        return self._call(self._add_chat, chat_id, **kwargs)

    def block(self, chat_id: int | str, *, push: bool = True, bot: str | None = None) -> None:
        """The person blocks the bot: sends fail with 403; pushes my_chat_member kicked when push."""
        if push:
            self.inbound(chat_id=chat_id, kind="block", bot=bot)
        else:
            self._call(lambda: setattr(self._bot(bot).chats[int(chat_id)], "blocked", True))

    def webhook_info(self, bot: str | None = None) -> dict[str, Any]:
        owner = self._call(self._bot, bot)
        return {"url": owner.webhook_url, "secret_token": owner.secret_token, "allowed_updates": owner.allowed_updates}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake Telegram Bot API")
    common_arguments(parser)
    parser.add_argument("--bot-token", action="append", help="accepted bot token (repeatable)")
    parser.add_argument("--bot-username", default="city_alerts_bot")
    parser.add_argument("--any-token", action="store_true", help="any well-formed token is a bot")
    parser.add_argument("--any-chat", action="store_true", help="unknown numeric chat ids are started chats")
    parser.add_argument("--per-chat-rate", type=float, default=None, help="messages per second to one chat")
    parser.add_argument("--chat", action="append", type=int, default=[], help="pre-registered started chat id")
    args = parser.parse_args(argv)
    fake = FakeTelegram(
        host=args.host,
        port=args.port,
        seed=args.seed,
        bot_token=args.bot_token or DEFAULT_BOT_TOKEN,
        bot_username=args.bot_username,
        any_token=args.any_token,
        any_chat=args.any_chat,
        per_chat_rate=args.per_chat_rate,
        **common_settings(args),
    )
    for chat_id in args.chat:
        fake._add_chat(chat_id)
    run_cli(fake, args)


if __name__ == "__main__":
    main()
