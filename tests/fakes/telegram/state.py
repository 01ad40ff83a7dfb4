"""`TelegramState`: the Telegram fake without its Bot API method handlers: bots and chats, update
delivery (webhook push or the getUpdates queue), simulated inbound updates and the in-process
API."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from tests.fakes.common import (
    CommonSettings,
    Delivery,
    FakeServer,
    Fault,
    MediaStore,
    SlidingWindowLimiter,
    dumps,
)
from tests.fakes.telegram.protocol import (
    DEFAULT_ALLOWED,
    DEFAULT_BOT_TOKEN,
    ERROR_DESCRIPTIONS,
    TOKEN_PATTERN,
    Bot,
    Chat,
    TelegramSettings,
)


class TelegramState(FakeServer):
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
        self.media = MediaStore()  # file_id -> file of an inbound message
        self.file_paths: dict[str, str] = {}  # getFile's file_path -> file_id
        self.reset_state()
        self.chat_limiter = SlidingWindowLimiter(None)

    # ------------------------------------------------------------------ state
    def reset_state(self) -> None:
        for bot in getattr(self, "bots", {}).values():
            for waiter in bot.waiters:
                if not waiter.done():
                    waiter.cancel()
        self.bots = {token: Bot(token=token, username=username) for token, username in self._initial}
        self.media.clear()
        self.file_paths.clear()
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
        file_id: str = "",
        media_content: bytes | None = None,
        mime_type: str = "",
        file_name: str = "",
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
                photo_id = file_id or "AgACphoto"
                photo: dict[str, Any] = {
                    "file_id": photo_id,
                    "file_unique_id": "AQADphoto",
                    "width": 800,
                    "height": 600,
                }
                if media_content is not None:
                    self._add_media(photo_id, media_content, mime_type or "image/jpeg")
                    photo["file_size"] = len(media_content)
                message["photo"] = [{**photo, "file_id": photo_id + "_s", "width": 90, "height": 67}, photo]
            elif kind in ("video", "voice", "document", "sticker", "audio"):
                media_id = file_id or f"file_{kind}"
                media: dict[str, Any] = {"file_id": media_id, "file_unique_id": f"u_{kind}"}
                if mime_type and kind != "sticker":
                    media["mime_type"] = mime_type
                if file_name and kind in ("document", "audio", "video"):
                    media["file_name"] = file_name
                if kind == "sticker":
                    media.update(type="regular", width=512, height=512, is_animated=False, is_video=False)
                if media_content is not None:
                    default = {"voice": "audio/ogg", "sticker": "image/webp", "video": "video/mp4"}.get(kind, "")
                    self._add_media(media_id, media_content, mime_type or default or "application/octet-stream")
                    media["file_size"] = len(media_content)
                message[kind] = media
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

    def _add_media(self, file_id: str, content: bytes, mime_type: str, *, chunked: bool = False) -> str:
        folder = mime_type.split("/")[0] if "/" in mime_type else "documents"
        extension = {"image/jpeg": "jpg", "image/webp": "webp", "audio/ogg": "oga", "video/mp4": "mp4"}.get(
            mime_type, "bin"
        )
        path = f"{folder}s/file_{len(self.file_paths)}.{extension}"
        self.media.add(file_id, content, mime_type, chunked=chunked)
        self.file_paths[path] = file_id
        return path

    # ------------------------------------------------------------------ in-process API
    def add_media(self, content: bytes, mime_type: str, *, file_id: str = "", chunked: bool = False) -> str:
        """Store a file as if a person had sent it; returns its file_id (getFile, then /file/bot…/path)."""
        key = file_id or f"BQACAgIAAx{len(self.file_paths):06d}"
        self._call(self._add_media, key, content, mime_type, chunked=chunked)
        return key

    def expire_media(self, file_id: str) -> None:
        """The file is gone from Telegram's servers: getFile answers "invalid file_id"."""
        self._call(self.media.expire, file_id)

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
