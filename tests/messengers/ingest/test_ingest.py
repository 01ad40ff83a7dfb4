"""The fast ingest path's own promises (messengers.ingest), beyond the view tests it also passes
(the other modules here): requests waiting together share one commit; one request's bad rows fail only
that request; a database that goes away gives 503 and nothing stored, and a provider's retry
afterwards is stored once; connections killed mid-stream lose and double nothing; a secret
rotated by another process is refused within seconds."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from django.conf import settings

from core import crypto
from messengers.ingest import GroupCommit, NotStoredError, Row, WebhookIngest, conninfo_from_settings
from messengers.models import Connection, WebhookEvent
from messengers.selectors import ADAPTER_CACHE
from tenants.models import Tenant
from tests.fakes.fixtures import WA_APP_SECRET, WA_PHONE_NUMBER_ID
from tests.messengers.ingest_support import IngestClient, IngestServer
from tests.messengers.support import meta_json, post_whatsapp, wa_envelope, wa_status, whatsapp_connection

TS = 1_749_416_383


def status_body(wamid: str, status: str = "delivered") -> bytes:
    return meta_json(wa_envelope((WA_PHONE_NUMBER_ID, {"statuses": [wa_status(wamid, status, TS)]})))


def rows(connection_id: int, *keys: str) -> list[Row]:
    now = datetime.now(UTC)
    payload = json.dumps({"type": "status", "provider_message_id": "x", "status": "sent"})
    return [(connection_id, key, "status", payload, now) for key in keys]


# --------------------------------------------------------------------------------------------
# Group commit
# --------------------------------------------------------------------------------------------
def test_requests_waiting_together_share_one_commit_and_replays_are_stored_once(tenant: Tenant) -> None:
    conn = whatsapp_connection()
    schema = tenant.schema_name

    async def main() -> GroupCommit:
        writer = GroupCommit(conninfo_from_settings(), writers=1)
        try:
            # 40 requests at once; every key twice (a provider's retry arriving in the same batch)
            await asyncio.gather(*(writer.store({schema: rows(conn.pk, f"k{i % 20}")}) for i in range(40)))
        finally:
            await writer.close()
        return writer

    writer = asyncio.run(main())
    assert writer.requests == 40
    assert writer.batches < writer.requests  # one commit per request would be 40
    keys = list(WebhookEvent.objects.filter(connection=conn).values_list("dedupe_key", flat=True))
    assert sorted(keys) == sorted(f"k{i}" for i in range(20))


def test_rows_the_database_refuses_fail_only_their_own_request(tenant: Tenant) -> None:
    conn = whatsapp_connection()
    schema = tenant.schema_name

    async def main() -> list[Any]:
        writer = GroupCommit(conninfo_from_settings(), writers=1)
        try:
            return await asyncio.gather(  # type: ignore[return-value]
                writer.store({schema: rows(conn.pk, "good-1")}),
                writer.store({"no_such_schema": rows(conn.pk, "lost")}),
                writer.store({schema: rows(conn.pk, "good-2")}),
                return_exceptions=True,
            )
        finally:
            await writer.close()

    results = asyncio.run(main())
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], NotStoredError) and results[1].status == 503
    assert sorted(WebhookEvent.objects.values_list("dedupe_key", flat=True)) == ["good-1", "good-2"]


# --------------------------------------------------------------------------------------------
# The database going away
# --------------------------------------------------------------------------------------------
class TcpProxy:
    """A TCP relay to PostgreSQL that can be cut (listener and every connection) and restored."""

    def __init__(self) -> None:
        db = settings.DATABASES["default"]
        host, port = str(db.get("HOST") or "127.0.0.1"), int(str(db.get("PORT") or 5432))
        self.upstream: tuple[int, Any] = (
            (socket.AF_UNIX, f"{host}/.s.PGSQL.{port}") if host.startswith("/") else (socket.AF_INET, (host, port))
        )
        self.port = 0
        self.sockets: list[socket.socket] = []
        self.listener: socket.socket | None = None

    def start(self) -> TcpProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.port = listener.getsockname()[1]
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.socket(self.upstream[0])
            server.connect(self.upstream[1])
            self.sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        for each in (source, target):
            try:
                each.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        assert self.listener is not None
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone does not)
        except OSError:
            pass
        self.listener.close()
        for each in self.sockets:
            try:
                each.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            each.close()
        self.sockets = []

    @property
    def conninfo(self) -> str:
        return psycopg.conninfo.make_conninfo(conninfo_from_settings(), host="127.0.0.1", port=str(self.port))


@pytest.fixture
def proxied_server() -> Iterator[tuple[IngestServer, TcpProxy]]:
    proxy = TcpProxy().start()
    server = IngestServer()
    server.app.writer = GroupCommit(proxy.conninfo, writers=1, timeout=1.0)
    server.start()
    try:
        yield server, proxy
    finally:
        server.stop()
        proxy.cut()


def test_an_unavailable_database_gives_503_and_stores_nothing_until_the_retry(
    tenant: Tenant, proxied_server: tuple[IngestServer, TcpProxy]
) -> None:
    server, proxy = proxied_server
    client = IngestClient(server, HTTP_HOST="localhost")
    conn = whatsapp_connection()
    assert post_whatsapp(client, status_body("wamid.before")).status_code == 200
    proxy.cut()
    answer = post_whatsapp(client, status_body("wamid.during"))
    assert answer.status_code == 503, answer.content
    assert b"retry" in answer.content
    assert list(WebhookEvent.objects.filter(connection=conn).values_list("dedupe_key", flat=True)) == [
        "status:wamid.before:delivered"
    ]
    proxy.start()  # the database is back: the provider's retry is stored, once
    deadline = time.monotonic() + 15
    while (answer := post_whatsapp(client, status_body("wamid.during"))).status_code == 503:
        assert time.monotonic() < deadline, "still 503 after the database came back"
        time.sleep(0.2)
    assert answer.status_code == 200
    assert post_whatsapp(client, status_body("wamid.during")).status_code == 200  # and a replay
    assert sorted(WebhookEvent.objects.filter(connection=conn).values_list("dedupe_key", flat=True)) == [
        "status:wamid.before:delivered",
        "status:wamid.during:delivered",
    ]


def test_connections_killed_during_ingestion_lose_and_double_nothing(
    tenant: Tenant, client_public: IngestClient
) -> None:
    """What a database restart does to the ingest path's connections, five times during a stream
    of posts from four senders that retry every non-200 (as providers do)."""
    conn = whatsapp_connection()
    answers: list[int] = []

    def send(sender: int) -> None:
        client = IngestClient(client_public.server, HTTP_HOST="localhost")
        for i in range(60):
            body = status_body(f"wamid.{sender}.{i}")
            for _ in range(50):
                status = post_whatsapp(client, body).status_code
                answers.append(status)
                if status == 200:
                    break
                time.sleep(0.05)

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(send, sender) for sender in range(4)]
        with psycopg.connect(conninfo_from_settings(), autocommit=True) as admin:
            for _ in range(5):
                time.sleep(0.15)
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = 'ingest' AND datname = current_database() AND pid <> pg_backend_pid()"
                )
        for future in futures:
            future.result()
    assert set(answers) <= {200, 503}
    keys = list(WebhookEvent.objects.filter(connection=conn).values_list("dedupe_key", flat=True))
    assert len(keys) == len(set(keys)) == 240


# --------------------------------------------------------------------------------------------
# Secrets cached per process
# --------------------------------------------------------------------------------------------
def test_a_secret_rotated_by_another_process_is_refused_within_seconds(
    tenant: Tenant, client_public: IngestClient
) -> None:
    conn = whatsapp_connection()
    assert post_whatsapp(client_public, status_body("wamid.r0")).status_code == 200
    # another web process saves the new secret: the database changes, this process's caches do not
    Connection.objects.filter(pk=conn.pk).update(
        credentials_encrypted=crypto.encrypt_json({"access_token": "t", "app_secret": "rotated-secret"})
    )
    rotated = time.monotonic()
    i = 0
    while post_whatsapp(client_public, status_body(f"wamid.r{i + 1}")).status_code == 200:
        i += 1
        assert time.monotonic() - rotated < ADAPTER_CACHE.ttl + 2, "the old secret still works"
        time.sleep(0.25)
    answer = post_whatsapp(client_public, status_body("wamid.new"), secret="rotated-secret")
    assert answer.status_code == 200
    assert post_whatsapp(client_public, status_body("wamid.old"), secret=WA_APP_SECRET).status_code == 403
    assert WebhookEvent.objects.filter(dedupe_key="status:wamid.old:delivered").count() == 0


def test_the_ingest_app_passes_everything_else_to_django(client_public: IngestClient) -> None:
    assert isinstance(client_public.server.app, WebhookIngest)
    assert client_public.get("/healthz").status_code == 200
    assert client_public.get("/webhooks/whatsapp/", {"hub.mode": "x"}).status_code == 400  # Django's handshake
    assert client_public.post("/webhooks/email/nope/", b"x").status_code == 403  # Django's e-mail view


def test_webhooks_on_the_fast_path_are_counted_in_the_metrics(tenant: Tenant, client_public: IngestClient) -> None:
    from core import metrics

    def counted(status: str) -> float:
        value = metrics.REGISTRY.get_sample_value(
            "mnl_http_requests_total", {"view": "webhook_whatsapp", "status": status}
        )
        return value or 0.0

    whatsapp_connection()
    before = counted("200"), counted("403")
    assert post_whatsapp(client_public, status_body("wamid.m1")).status_code == 200
    assert post_whatsapp(client_public, status_body("wamid.m2"), secret="wrong").status_code == 403
    assert (counted("200"), counted("403")) == (before[0] + 1, before[1] + 1)
