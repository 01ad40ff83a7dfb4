"""What the Telegram fake knows of the Bot API's wire protocol: defaults, patterns, the HTML
subset, error descriptions and the `{"ok": false}` envelope (`TelegramError`, `tg_error`), and
the chat, bot and settings records the fake keeps."""

from __future__ import annotations

import asyncio
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.common import (
    CommonSettings,
    json_response,
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
