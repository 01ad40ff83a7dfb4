"""Fixtures for the inbox tests: the fake providers on loopback (see tests.fakes.fixtures), for
the media that people send."""

from tests.fakes.fixtures import (  # noqa: F401 - fixtures are found by name
    sink,
    telegram_server,
    tg_fake,
    tw_fake,
    twilio_server,
    wa_fake,
    webhook_sink,
    whatsapp_server,
)
