"""`python -m tests.fakes.telegram`: run the Telegram fake in the foreground."""

from __future__ import annotations

import argparse

from tests.fakes.common import (
    common_arguments,
    common_settings,
    run_cli,
)
from tests.fakes.telegram.handlers import FakeTelegram
from tests.fakes.telegram.protocol import DEFAULT_BOT_TOKEN


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
