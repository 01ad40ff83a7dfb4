"""The per-process webhook routing and adapter caches stay bounded whatever route keys strangers
put into URLs, and keep the routes in use while unknown keys churn through."""

from __future__ import annotations

import functools
import threading

import pytest
from django.test import Client

from core.memo import BoundedTTLCache
from messengers import selectors
from messengers.adapters.base import Provider
from tenants.models import Tenant
from tests.messengers.support import route_path, telegram_connection


def test_unknown_route_keys_do_not_grow_the_route_cache_without_bound(
    client_public: Client, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert selectors.ROUTE_CACHE.maxsize >= 1000  # room for every connection of a large platform
    monkeypatch.setattr(selectors.ROUTE_CACHE, "maxsize", 100)  # the same code at a size a test can fill
    bot = telegram_connection(secret="s" * 32)
    for number in range(400):
        assert selectors.route_by_key(Provider.TELEGRAM, f"stranger{number}") is None
        if number % 20 == 0:
            assert selectors.route_by_key(Provider.TELEGRAM, bot.route_key) is not None  # in use
    for number in range(50):
        assert client_public.post(f"/webhooks/telegram/junk{number}/", b"{}", "application/json").status_code == 404
    assert len(selectors.ROUTE_CACHE) <= 100
    assert ("key", f"telegram:{bot.route_key}") in selectors.ROUTE_CACHE  # the route in use was kept
    assert client_public.post(route_path(bot), b"{}", "application/json").status_code == 403  # still routed
    assert len(selectors.ADAPTER_CACHE) <= selectors.ADAPTER_CACHE.maxsize


def test_the_bounded_cache_keeps_recent_entries_and_evicts_the_oldest() -> None:
    cache: BoundedTTLCache[int | None] = BoundedTTLCache(maxsize=3, ttl=60)
    loads: list[str] = []

    def load(key: str, value: int | None) -> int | None:
        return cache.get_or_load(key, lambda: loads.append(key) or value)  # type: ignore[func-returns-value]

    assert load("a", 1) == 1 and load("b", None) is None and load("c", 3) == 3
    assert load("a", 99) == 1 and load("b", 99) is None  # hits, including a cached None
    load("d", 4)  # evicts c, the least recently used
    assert len(cache) == 3
    assert load("c", 30) == 30
    assert loads == ["a", "b", "c", "d", "c"]
    expired: BoundedTTLCache[int] = BoundedTTLCache(maxsize=3, ttl=0)
    assert expired.get_or_load("a", lambda: 1) == 1 and expired.get_or_load("a", lambda: 2) == 2


def test_the_bounded_cache_stays_bounded_under_threads() -> None:
    cache: BoundedTTLCache[int] = BoundedTTLCache(maxsize=64, ttl=60)
    errors: list[BaseException] = []

    def hammer(offset: int) -> None:
        try:
            for number in range(5000):
                key = (offset * 7919 + number) % 1000
                assert cache.get_or_load(key, functools.partial(int, key)) == key
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(cache) <= 64
