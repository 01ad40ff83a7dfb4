"""The fast ingest path (messengers.ingest) on a real socket, for tests: the same ASGI app as
config.asgi (fast path in front of Django) in a uvicorn server on a thread, and a client with
the Django test client's `post`/`get` signature, so the webhook tests can be pointed at it.

The server runs in this process but on its own connections: what a test wants it to see must be
committed (use `committed_tenant`), and what it stored is visible only after its answer."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
import uvicorn
from a2wsgi import WSGIMiddleware
from django.core.handlers.wsgi import WSGIHandler

from core.tenancy import connection
from messengers.ingest import GroupCommit, WebhookIngest, conninfo_from_settings
from tenants.models import Tenant


class IngestServer:
    def __init__(self, *, writers: int = 2, timeout: float = 2.0) -> None:
        self.app = WebhookIngest(WSGIMiddleware(WSGIHandler(), workers=4))  # type: ignore[arg-type]
        # A writer of its own: a short pool timeout, so "database down" answers come quickly;
        # and no apply task queued after a commit (the test settings run tasks synchronously,
        # which would apply on the server's thread while the test looks on; tests apply
        # themselves, as the worker would).
        self.app.writer = GroupCommit(conninfo_from_settings(), writers=writers, timeout=timeout)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=0, lifespan="on", log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True, name="ingest-server")

    def start(self) -> IngestServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the ingest test server did not start")
            time.sleep(0.02)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class Answer:
    """What the Django test client's responses offer the webhook tests."""

    def __init__(self, response: requests.Response) -> None:
        self.status_code = response.status_code
        self.content = response.content
        self.headers = response.headers

    def __getitem__(self, name: str) -> str:
        return self.headers[name]


class IngestClient:
    """`client.post(path, data=…, content_type=…, HTTP_X_…=…)` over HTTP to the ingest server."""

    def __init__(self, server: IngestServer, **defaults: str) -> None:
        self.server = server
        self.defaults = defaults
        self.session = requests.Session()

    @staticmethod
    def _headers(extra: Mapping[str, Any]) -> dict[str, str]:
        headers = {}
        for key, value in extra.items():
            if key.startswith("HTTP_"):
                headers[key[5:].replace("_", "-").title()] = str(value)
        return headers

    def post(self, path: str, data: Any = b"", content_type: str | None = None, **extra: Any) -> Answer:
        if isinstance(data, Mapping):
            data = urlencode(list(data.items())).encode()
            content_type = content_type or "application/x-www-form-urlencoded"
        elif isinstance(data, str):
            data = data.encode()
        headers = self._headers({**self.defaults, **extra})
        if content_type:
            headers["Content-Type"] = content_type
        return Answer(self.session.post(self.server.url + path, data=data, headers=headers, timeout=30))

    def get(self, path: str, data: Mapping[str, str] | None = None, **extra: Any) -> Answer:
        headers = self._headers({**self.defaults, **extra})
        return Answer(self.session.get(self.server.url + path, params=data, headers=headers, timeout=30))

    def generic(self, method: str, path: str, data: Any = b"", **extra: Any) -> Answer:
        headers = self._headers({**self.defaults, **extra})
        return Answer(self.session.request(method, self.server.url + path, data=data, headers=headers, timeout=30))

    def put(self, path: str, data: Any = b"", **extra: Any) -> Answer:
        return self.generic("PUT", path, data, **extra)

    def delete(self, path: str, data: Any = b"", **extra: Any) -> Answer:
        return self.generic("DELETE", path, data, **extra)

    def patch(self, path: str, data: Any = b"", **extra: Any) -> Answer:
        return self.generic("PATCH", path, data, **extra)


def running_server() -> Iterator[IngestServer]:
    server = IngestServer().start()
    try:
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------------------------
# Pointing a test module written for the Django test client at the ingest server: import these
# fixtures into it (they override `client_public`, `tenant` and `tenant_b`).
# --------------------------------------------------------------------------------------------
def _tables(schemas: list[str]) -> dict[tuple[str, str], int]:
    """Every table with an integer `id` in these schemas, with its highest id now."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_schema, table_name FROM information_schema.columns "
            "WHERE table_schema = ANY(%s) AND column_name = 'id' AND data_type IN ('integer', 'bigint')",
            [schemas],
        )
        found = {}
        for schema, table in cursor.fetchall():
            cursor.execute(f'SELECT coalesce(max(id), 0) FROM "{schema}"."{table}"')  # noqa: S608
            found[(schema, table)] = cursor.fetchone()[0]
        return found


def _forget_rows_since(marks: dict[tuple[str, str], int]) -> None:
    """Delete what a test added (rows above the marks), foreign keys unchecked for the moment."""
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        try:
            for (schema, table), highest in marks.items():
                cursor.execute(f'DELETE FROM "{schema}"."{table}" WHERE id > %s', [highest])  # noqa: S608
        finally:
            cursor.execute("SET session_replication_role = DEFAULT")


@pytest.fixture(scope="module")
def _committed_pair(django_db_setup: Any, django_db_blocker: Any) -> Iterator[tuple[Tenant, Tenant]]:
    """Two committed tenants for the whole module (onboarding takes seconds), dropped at its end."""
    from tests.conftest import _onboard, drop_tenants

    with django_db_blocker.unblock():
        suffix = uuid.uuid4().hex[:8]
        pair = (
            _onboard(f"ia_{suffix}", f"ia-{suffix}.localhost", "Stadt Ingest A"),
            _onboard(f"ib_{suffix}", f"ib-{suffix}.localhost", "Stadt Ingest B"),
        )
        try:
            yield pair
        finally:
            drop_tenants(pair)


@pytest.fixture
def tenant(_committed_pair: tuple[Tenant, Tenant], django_db_blocker: Any) -> Iterator[Tenant]:
    """Tenant A of the pair, in its schema; everything the test added to either tenant (and to
    the public routing table) is deleted afterwards."""
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        marks = _tables([t.schema_name for t in _committed_pair] + ["public"])
        marks = {key: value for key, value in marks.items() if key[0] != "public" or key[1] == "tenants_webhookroute"}
        connection.set_tenant(_committed_pair[0])
        try:
            yield _committed_pair[0]
        finally:
            connection.set_schema_to_public()
            _forget_rows_since(marks)


@pytest.fixture
def tenant_b(_committed_pair: tuple[Tenant, Tenant], tenant: Tenant) -> Tenant:
    return _committed_pair[1]


@pytest.fixture
def client_public(ingest_server: IngestServer) -> IngestClient:
    return IngestClient(ingest_server, HTTP_HOST="localhost", HTTP_ACCEPT_LANGUAGE="en")
