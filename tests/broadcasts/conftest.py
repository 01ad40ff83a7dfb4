"""Fixtures for the broadcast tests: the fake WhatsApp Cloud API on loopback (tests.fakes.fixtures)."""

from tests.fakes.fixtures import (  # noqa: F401 - fixtures are found by name
    sink,
    wa_fake,
    webhook_sink,
    whatsapp_server,
)
