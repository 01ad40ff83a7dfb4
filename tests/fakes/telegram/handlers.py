"""`FakeTelegram`: the Bot API endpoint `/bot{token}/{method}` (parameter parsing, faults, the send
methods with their validation, webhook and update methods), on top of `TelegramState`."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from aiohttp import BodyPartReader, web

from tests.fakes.common import (
    Fault,
    json_response,
    serve_media,
)
from tests.fakes.telegram.protocol import (
    ERROR_DESCRIPTIONS,
    HTML_TAGS,
    JSON_FIELDS,
    SECRET_PATTERN,
    SEND_METHODS,
    TAG,
    Bot,
    Chat,
    TelegramError,
    tg_error,
)
from tests.fakes.telegram.state import TelegramState

MAX_DOWNLOAD = 20 * 1024 * 1024  # what getFile serves


class FakeTelegram(TelegramState):
    """The fake Telegram Bot API (see the package docstring)."""

    # ------------------------------------------------------------------ routes
    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)

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
            "getfile": self._get_file,
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
    async def _get_file(self, bot: Bot, params: Mapping[str, Any]) -> dict[str, Any]:
        """getFile: a file_path for /file/bot<token>/<file_path>; the Bot API hands out at most 20 MB."""
        file_id = str(params.get("file_id", ""))
        item = self.media.live(file_id)
        if item is None:
            raise TelegramError(400, "Bad Request: invalid file_id")
        if len(item.content) > MAX_DOWNLOAD:
            raise TelegramError(400, "Bad Request: file is too big")
        path = next(p for p, key in self.file_paths.items() if key == file_id)
        result = {"file_id": file_id, "file_unique_id": "AgAD" + file_id[-8:], "file_size": len(item.content)}
        return {"result": {**result, "file_path": path}}

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        """The file download; Telegram answers a wrong token or path with a 404 envelope."""
        entry = self.log.add(request, None, kind="file")
        file_id = self.file_paths.get(request.match_info["path"])
        item = self.media.live(file_id) if file_id is not None else None
        if request.match_info["token"] not in self.bots or item is None:
            return self._finish(entry, tg_error(404), "error:404")
        entry["status"] = 200
        self.stats.http_status[200] += 1
        return await serve_media(request, item)

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
