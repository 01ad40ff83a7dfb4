"""Fixtures for subscriber tests (and the fake WhatsApp and Telegram, see tests.fakes.fixtures)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.fixtures import (  # noqa: F401 - fixtures are found by name
    sink,
    telegram_server,
    tg_fake,
    wa_fake,
    webhook_sink,
    whatsapp_server,
)
from tests.subscribers.factories import forget_cached_tenants


@pytest.fixture(autouse=True)
def _fresh_tenant_lookup() -> Iterator[None]:
    """Requests must see the tenant as this test left it, not as a previous test cached it."""
    forget_cached_tenants()
    yield
    forget_cached_tenants()
