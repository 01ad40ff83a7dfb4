"""Fixtures for the fakes' own tests (see tests.fakes.fixtures)."""

from tests.fakes.fixtures import (  # noqa: F401 - fixtures are found by name
    sink,
    smtp_fake,
    smtp_server,
    telegram_server,
    tg_fake,
    tw_fake,
    twilio_server,
    wa_fake,
    webhook_sink,
    whatsapp_server,
)
