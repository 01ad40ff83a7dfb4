"""The database side of a sender: a few threads that stay in the tenant's schema and ride out a
restarting PostgreSQL, so the event loop never blocks on (or touches) the ORM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from django.db import InterfaceError, OperationalError, close_old_connections, connections
from django.db import connection as django_db_connection

from core.tenancy import connection as db

logger = logging.getLogger(__name__)

DB_OUTAGE_SECONDS = 60.0

T = TypeVar("T")


class DbThread:
    """The database work of a sender runs on a few threads that stay in the tenant's schema, so
    the event loop (sending) never blocks on PostgreSQL, and the statements of windows in flight
    run side by side. (Inside the event loop Django's connection is a different, context-local
    object that knows nothing of the tenant: never touch the ORM there.)"""

    def __init__(self, tenant: Any, *, threads: int) -> None:
        self.tenant = tenant
        self.threads = threads
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="sender-db", initializer=self._enter)

    def _enter(self) -> None:
        close_old_connections()
        db.set_tenant(self.tenant)

    async def run(self, func: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, lambda: self._call(func, args))

    def _call(self, func: Callable[..., T], args: tuple[Any, ...]) -> T:
        """Run on a database thread; ride out a restarting PostgreSQL (R3) for up to a minute.
        Holding on to the outcomes of requests already sent, instead of failing and leaving
        them to the lease sweeper, keeps a restart from turning into duplicate messages."""
        deadline = time.monotonic() + DB_OUTAGE_SECONDS
        while True:
            try:
                return func(*args)
            except (OperationalError, InterfaceError):
                if time.monotonic() > deadline:
                    raise
                logger.warning("database unavailable during sending; retrying %s", getattr(func, "__name__", func))
                with contextlib.suppress(Exception):
                    django_db_connection.close()
                time.sleep(0.5)
                with contextlib.suppress(Exception):
                    db.set_tenant(self.tenant)

    def close(self) -> None:
        # one close per thread: the barrier keeps each task on its own thread
        barrier = threading.Barrier(self.threads, timeout=10)

        def close_here() -> None:
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait()
            connections.close_all()

        futures = [self.pool.submit(close_here) for _ in range(self.threads)]
        for future in futures:
            future.result()
        self.pool.shutdown(wait=True)
