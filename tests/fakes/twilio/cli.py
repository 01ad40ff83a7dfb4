"""`python -m tests.fakes.twilio`: run the Twilio fake in the foreground."""

from __future__ import annotations

import argparse

from tests.fakes.common import (
    common_arguments,
    common_settings,
    run_cli,
)
from tests.fakes.twilio.protocol import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, DEFAULT_NUMBER
from tests.fakes.twilio.server import FakeTwilio


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake Twilio Messaging API")
    common_arguments(parser)
    parser.add_argument("--account-sid", default=DEFAULT_ACCOUNT_SID)
    parser.add_argument("--auth-token", default=DEFAULT_AUTH_TOKEN)
    parser.add_argument("--number", action="append", help="the account's sender numbers (repeatable)")
    parser.add_argument("--inbound-url", default="", help="messaging webhook of the numbers (default --webhook-url)")
    parser.add_argument("--strict-senders", action="store_true")
    args = parser.parse_args(argv)
    fake = FakeTwilio(
        host=args.host,
        port=args.port,
        seed=args.seed,
        account_sid=args.account_sid,
        auth_token=args.auth_token,
        numbers=args.number or (DEFAULT_NUMBER,),
        inbound_url=args.inbound_url,
        strict_senders=args.strict_senders,
        **common_settings(args),
    )
    run_cli(fake, args)
