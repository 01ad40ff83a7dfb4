"""Command-line helpers shared by the fakes' `python -m tests.fakes.<name>` entry points."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from tests.fakes.common.server import FakeServer


def common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    parser.add_argument("--webhook-url", default="", help="where webhooks are pushed")
    parser.add_argument("--rate", type=float, default=None, help="accepted messages per second (sliding window)")
    parser.add_argument("--speed", type=float, default=1.0, help="divides status delays; 0 = instant statuses")
    parser.add_argument("--seed", type=int, default=None, help="seed of the fault/duplicate RNG")
    parser.add_argument("--duplicate-rate", type=float, default=0.0)
    parser.add_argument("--reorder-rate", type=float, default=0.0)
    parser.add_argument("--error-rate", type=float, default=0.0, help="fraction of sends answered with a 5xx")
    parser.add_argument("--timeout-rate", type=float, default=0.0, help="fraction of sends held past the timeout")
    parser.add_argument("--reset-rate", type=float, default=0.0, help="fraction of sends whose connection is reset")
    parser.add_argument("--rate-limit-rate", type=float, default=0.0, help="fraction of sends answered 429-style")
    parser.add_argument("--timeout-hold", type=float, default=30.0)
    parser.add_argument("--webhook-concurrency", type=int, default=64)
    parser.add_argument("--record-cap", type=int, default=10_000)


def common_settings(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "webhook_url": args.webhook_url,
        "rate": args.rate,
        "speed": args.speed,
        "duplicate_rate": args.duplicate_rate,
        "reorder_rate": args.reorder_rate,
        "timeout_hold": args.timeout_hold,
        "webhook_concurrency": args.webhook_concurrency,
        "record_cap": args.record_cap,
    }


def apply_cli_faults(fake: FakeServer, args: argparse.Namespace) -> None:
    rates = {
        "5xx": args.error_rate,
        "timeout": args.timeout_rate,
        "reset": args.reset_rate,
        "rate_limit": args.rate_limit_rate,
    }
    fake._set_faults({"rates": {k: v for k, v in rates.items() if v}})


def run_cli(fake: FakeServer, args: argparse.Namespace) -> None:
    apply_cli_faults(fake, args)
    try:
        asyncio.run(fake.serve())
    except KeyboardInterrupt:
        pass
