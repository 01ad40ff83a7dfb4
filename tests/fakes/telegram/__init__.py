"""Fake Telegram Bot API, per providers.md section 2.

API: `/bot{token}/{method}` (GET or POST; method names case-insensitive; parameters from the query
string, JSON, x-www-form-urlencoded or multipart/form-data), methods sendMessage, sendPhoto,
sendVideo, setWebhook, deleteWebhook, getWebhookInfo, getUpdates (long polling), getMe,
answerCallbackQuery, getFile (+ the download `/file/bot{token}/{file_path}`, 404 when unknown). Every answer is the `{"ok": …}` envelope with `error_code`, `description`
and `parameters.retry_after` on errors.

State per bot and chat: unknown chat → 400 "chat not found", never started → 403 "bot can't
initiate conversation", blocked → 403 "bot was blocked by the user", deactivated → 403 "user is
deactivated"; optional 429 flood control for the bot (sliding 1-s window) and per chat. Updates
(simulated inbound: text, /start payload, callback_query, my_chat_member kicked/member, media …)
are pushed to the URL registered with setWebhook, with `X-Telegram-Bot-Api-Secret-Token`, or
queued for getUpdates when no webhook is set.

    python -m tests.fakes.telegram --port 8082 --bot-token 123456:ABC --rate 30 [--any-chat]

Modules: `protocol` (errors, envelopes, records, settings), `state` (bots, chats, update delivery,
inbound, in-process API), `handlers` (the Bot API methods), `cli` (the command line).
"""

from tests.fakes.telegram.cli import main
from tests.fakes.telegram.handlers import FakeTelegram
from tests.fakes.telegram.protocol import DEFAULT_BOT_TOKEN, Bot, Chat, TelegramError, TelegramSettings, tg_error
from tests.fakes.telegram.state import TelegramState

__all__ = [
    "Bot",
    "Chat",
    "DEFAULT_BOT_TOKEN",
    "FakeTelegram",
    "TelegramError",
    "TelegramSettings",
    "TelegramState",
    "main",
    "tg_error",
]
