"""Machinery shared by the fake provider servers (WhatsApp, Telegram, Twilio, SMTP).

A fake is an aiohttp application that speaks one provider's wire protocol (see
/work/shared/docs/providers.md) and adds a JSON control API under `/_fake/...` on the same port.
This package holds everything that is not provider specific:

- `faults`: `Fault` / `FaultInjector`: probabilistic faults (seedable RNG), "fail the next N
  requests with X" and per-recipient rules. Each fake turns a fault into its own error envelope.
- `metering`: `SlidingWindowLimiter` ("at most N accepted messages in any 1-second window", per
  key), `Stats` (per-second accepted counts, max in any 1-second window, mean rate, outcomes,
  webhook POST latencies) and `RequestLog` (a capped record of every API request).
- `webhooks`: `Scheduler` / `Batcher` / `WebhookPusher`: delayed events, batching, and a pooled
  aiohttp client that POSTs signed webhooks with bounded concurrency and retries non-2xx answers.
- `state`: `CommonSettings` and `FakeState`, the non-HTTP half of a fake (settings, faults,
  webhook machinery, reset).
- `server`: `FakeServer`, the base class (own event loop in a background thread for tests via
  `start()`, or `serve()` in the foreground for the command line) and the control API.
- `media`: `MediaStore`, the files a fake hands out for inbound messages, and `serve_media`.
- `cli`: the command-line helpers; `recording`: `RecordingServer`, a tiny webhook receiver for
  tests and benchmarks; `wire`: JSON as the fakes send it.

All mutable state of a fake lives in its event loop; the in-process Python API hops onto that loop
(`FakeServer._call`), so tests can call it from any thread.
"""

from tests.fakes.common.cli import apply_cli_faults, common_arguments, common_settings, run_cli
from tests.fakes.common.faults import FAULT_KINDS, Fault, FaultInjector
from tests.fakes.common.media import MediaStore, StoredMedia, serve_media
from tests.fakes.common.metering import RequestLog, SlidingWindowLimiter, Stats, max_in_window
from tests.fakes.common.recording import ReceivedRequest, RecordingServer
from tests.fakes.common.server import FakeServer
from tests.fakes.common.state import CommonSettings, FakeState
from tests.fakes.common.webhooks import Batcher, Delivery, Scheduler, WebhookPusher
from tests.fakes.common.wire import JSON_TYPE, dumps, json_response

__all__ = [
    "FAULT_KINDS",
    "JSON_TYPE",
    "Batcher",
    "CommonSettings",
    "Delivery",
    "FakeServer",
    "FakeState",
    "Fault",
    "FaultInjector",
    "MediaStore",
    "ReceivedRequest",
    "RecordingServer",
    "RequestLog",
    "Scheduler",
    "SlidingWindowLimiter",
    "Stats",
    "StoredMedia",
    "WebhookPusher",
    "apply_cli_faults",
    "common_arguments",
    "common_settings",
    "dumps",
    "json_response",
    "max_in_window",
    "run_cli",
    "serve_media",
]
