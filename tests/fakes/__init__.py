"""Fake provider servers for tests, the demo and benchmarks.

- `tests.fakes.whatsapp.FakeWhatsApp`  WhatsApp Cloud API (Meta Graph)
- `tests.fakes.telegram.FakeTelegram`  Telegram Bot API
- `tests.fakes.twilio.FakeTwilio`      Twilio Programmable Messaging
- `tests.fakes.smtp.FakeSMTP`          SMTP sink (+ RFC 8058 one-click helpers)

Each runs in-process (`fake.start()` … `fake.stop()`) or standalone (`python -m tests.fakes.<name>`),
and has a JSON control API under `/_fake/` (see `tests.fakes.common`). No Django imports here.
"""
