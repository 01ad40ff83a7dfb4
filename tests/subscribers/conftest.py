"""Fixtures for subscriber tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.subscribers.factories import forget_cached_tenants


@pytest.fixture(autouse=True)
def _fresh_tenant_lookup() -> Iterator[None]:
    """Requests must see the tenant as this test left it, not as a previous test cached it."""
    forget_cached_tenants()
    yield
    forget_cached_tenants()
