"""`python -m tests.fakes.whatsapp`: run the WhatsApp fake in the foreground."""

from __future__ import annotations

import argparse

from tests.fakes.common import (
    common_arguments,
    common_settings,
    run_cli,
)
from tests.fakes.whatsapp.handlers import FakeWhatsApp
from tests.fakes.whatsapp.protocol import DEFAULT_APP_SECRET, DEFAULT_PHONE_NUMBER_ID, DEFAULT_WABA_ID


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake WhatsApp Cloud API")
    common_arguments(parser)
    parser.add_argument("--app-secret", default=DEFAULT_APP_SECRET)
    parser.add_argument("--access-token", action="append", help="accepted bearer token (repeatable; none = any)")
    parser.add_argument("--phone-number-id", action="append", help="known phone number id (repeatable)")
    parser.add_argument("--waba-id", default=DEFAULT_WABA_ID)
    parser.add_argument("--strict-numbers", action="store_true", help="unknown phone number ids -> error 100")
    parser.add_argument("--open-windows", action="store_true", help="do not enforce the 24 h window")
    parser.add_argument("--batch-size", type=int, default=1, help="statuses per webhook POST")
    parser.add_argument("--batch-linger", type=float, default=0.0)
    parser.add_argument("--pair-limit", type=int, default=0, help="messages per 6 s to one person (0 = off)")
    parser.add_argument("--rate-limit-status", type=int, default=429, choices=(400, 429))
    parser.add_argument("--no-read", action="store_true", help="push sent and delivered only")
    args = parser.parse_args(argv)
    fake = FakeWhatsApp(
        host=args.host,
        port=args.port,
        seed=args.seed,
        app_secret=args.app_secret,
        access_token=args.access_token or (),
        phone_number_id=args.phone_number_id or DEFAULT_PHONE_NUMBER_ID,
        waba_id=args.waba_id,
        strict_numbers=args.strict_numbers,
        enforce_window=not args.open_windows,
        batch_size=args.batch_size,
        batch_linger=args.batch_linger,
        pair_limit=args.pair_limit,
        rate_limit_status=args.rate_limit_status,
        statuses=("sent", "delivered") if args.no_read else ("sent", "delivered", "read"),
        **common_settings(args),
    )
    run_cli(fake, args)
