"""A small per-process memo for hot lookups (webhook routing, provider adapters): entries expire
after `ttl` seconds and at most `maxsize` are kept, the least recently used going first, so keys
chosen by strangers (route keys in URLs) cannot grow a process without bound. Thread-safe: gunicorn
runs several threads per worker.

An event loop must not wait for the database: inside `cached_only()`, a miss raises NotCachedError
instead of loading, and the caller does the work again in a thread (messengers.ingest)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Generic, TypeVar

V = TypeVar("V")

_CACHED_ONLY: ContextVar[bool] = ContextVar("memo_cached_only", default=False)


class NotCachedError(Exception):
    """A lookup inside cached_only() found no fresh entry."""


@contextmanager
def cached_only() -> Iterator[None]:
    token = _CACHED_ONLY.set(True)
    try:
        yield
    finally:
        _CACHED_ONLY.reset(token)


class BoundedTTLCache(Generic[V]):
    def __init__(self, *, maxsize: int, ttl: float) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        self.ttl = ttl
        self._entries: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        """Whether `key` is kept (fresh or not)."""
        return key in self._entries

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def get_or_load(self, key: Hashable, load: Callable[[], V]) -> V:
        """The fresh cached value of `key`, else load() (outside the lock; two threads may both
        load the same key, which costs one query more and is harmless) and keep it."""
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None and now - hit[0] < self.ttl:
                self._entries.move_to_end(key)
                return hit[1]
        if _CACHED_ONLY.get():
            raise NotCachedError(key)
        value = load()
        self.put(key, value)
        return value

    def put(self, key: Hashable, value: V) -> None:
        with self._lock:
            self._entries[key] = (time.monotonic(), value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)
