"""Fixtures for the messenger tests: the fake providers on loopback (see tests.fakes.fixtures), and
fresh per-process routing caches for every test."""

from collections.abc import Iterator
from typing import Any

import pytest

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
from tests.messengers.support import forget_caches


@pytest.fixture(autouse=True)
def _fresh_process_caches() -> Iterator[None]:
    forget_caches()
    yield
    forget_caches()


@pytest.fixture(scope="session")
def ingest_server(django_db_setup: Any) -> Iterator[Any]:
    """The fast ingest path (config.asgi's app) on a real socket, once per session."""
    from tests.messengers.ingest_support import running_server

    yield from running_server()
