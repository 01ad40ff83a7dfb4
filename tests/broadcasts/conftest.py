"""Fixtures for the broadcast tests: the fake WhatsApp Cloud API on loopback (tests.fakes.fixtures)
and the four-eyes `team` (tests.broadcasts.four_eyes_support)."""

from tests.broadcasts.four_eyes_support import team  # noqa: F401 - fixtures are found by name
from tests.fakes.fixtures import (  # noqa: F401 - fixtures are found by name
    sink,
    wa_fake,
    webhook_sink,
    whatsapp_server,
)
