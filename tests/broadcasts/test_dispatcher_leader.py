"""One active dispatcher across machines: its leader lock is a session advisory lock, so it
lives exactly as long as the database connection that took it. Django closes the connection
every DB_CONN_MAX_AGE seconds (close_old_connections); the dispatcher must notice and take the
lock again, or a standby on another machine becomes active beside it (docs/operations.md,
"Scale-out")."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from django.db import connection

from broadcasts import dispatcher
from broadcasts.dispatcher import ADVISORY_LOCK, Dispatcher


def _another_session_can_take_the_lock() -> bool:
    """Asks from a connection of its own (another machine's dispatcher), releasing at once."""
    params = connection.get_connection_params()
    params.pop("context", None)
    params.pop("cursor_factory", None)
    with psycopg.connect(**params, autocommit=True) as other:
        took = bool(other.execute("SELECT pg_try_advisory_lock(%s)", [ADVISORY_LOCK]).fetchone()[0])  # type: ignore[index]
        if took:
            other.execute("SELECT pg_advisory_unlock(%s)", [ADVISORY_LOCK])
        return took


def test_the_leader_takes_its_lock_again_after_django_recycled_the_connection(
    django_db_setup: Any, django_db_blocker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bool] = []
    d = Dispatcher()

    def cycle(limit: int = 200) -> int:
        seen.append(not _another_session_can_take_the_lock())  # the lock is ours while we work
        return 0

    def pause(seconds: float) -> None:
        if len(seen) >= 3:
            d.running = False
        connection.close()  # what close_old_connections does once DB_CONN_MAX_AGE has passed

    monkeypatch.setattr(dispatcher, "dispatch_due", cycle)
    monkeypatch.setattr(dispatcher, "sweep_webhook_events", lambda: 0)
    monkeypatch.setattr(dispatcher.time, "sleep", pause)
    monkeypatch.setattr(dispatcher.signal, "signal", lambda *args: None)
    with django_db_blocker.unblock():
        try:
            d.run()
        finally:
            connection.close()  # releases the lock for other tests
    assert seen == [True, True, True]
