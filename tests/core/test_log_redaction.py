"""Meta's webhook handshake carries the WhatsApp verify token in the query string
(`?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…`). No log line may contain it: not the
development server's request log, not Django's warning for a refused handshake (whose JSON form
dumps the request with its full path), not gunicorn's access log with the documented config.

Real servers, real requests: Django's development server in a thread, gunicorn in a process."""

from __future__ import annotations

import http.client
import io
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django_tenants.utils import schema_context

from core.logging import JsonFormatter, redact
from tenants.models import Tenant
from tests.messengers.support import whatsapp_connection

TOKEN = "verify-Tok3n-that-must-never-be-logged"
CHALLENGE = "1158201444"


def _handshake_path(token: str) -> str:
    return "/webhooks/whatsapp/?" + urlencode(
        {"hub.mode": "subscribe", "hub.verify_token": token, "hub.challenge": CHALLENGE}
    )


def _get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers={"Host": "localhost", **(headers or {})})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.fixture
def verified_tenant(committed_tenant: Callable[..., Tenant]) -> Tenant:
    tenant = committed_tenant("Stadt Log")
    with schema_context(tenant.schema_name):
        whatsapp_connection(verify_token=TOKEN, pnid="777000111")
    return tenant


# --------------------------------------------------------------------------------------------
# The formatters (text and JSON) redact secrets wherever they appear in the line
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        f"GET /webhooks/whatsapp/?hub.mode=subscribe&hub.verify_token={TOKEN}&hub.challenge=1 HTTP/1.1",
        f"GET /webhooks/whatsapp/?hub.verify_token={TOKEN}",
        f"GET /webhooks/whatsapp/?hub%2Everify%5Ftoken={TOKEN}&x=1",
        f"GET /webhooks/whatsapp/?HUB.VERIFY_TOKEN={TOKEN}",
        f"<WSGIRequest: GET '/webhooks/whatsapp/?hub.mode=subscribe&hub.verify_token={TOKEN}'>",
        f'"GET /x?access_token={TOKEN} HTTP/1.1" 200',
        f"https://graph.facebook.com/v21.0/me?access_token={TOKEN}&fields=id",
    ],
)
def test_redact_removes_secret_query_values(text: str) -> None:
    cleaned = redact(text)
    assert TOKEN not in cleaned
    assert "[redacted]" in cleaned


def test_redact_keeps_everything_else() -> None:
    text = "GET /webhooks/whatsapp/?hub.mode=subscribe&hub.challenge=42 HTTP/1.1"
    assert redact(text) == text


# --------------------------------------------------------------------------------------------
# Django: the development server's request log and django.request's warnings
# --------------------------------------------------------------------------------------------
@contextmanager
def _captured_log_output(formatter: logging.Formatter | None = None) -> Iterator[io.StringIO]:
    """Everything the configured log handlers (settings.LOGGING) write, as written."""
    buffer = io.StringIO()
    handlers: dict[logging.StreamHandler[Any], tuple[Any, logging.Formatter | None]] = {}
    for name in ("", "django", "django.server", "django.request", "messengers"):
        for handler in logging.getLogger(name).handlers:
            if type(handler) is logging.StreamHandler and handler not in handlers:
                handlers[handler] = (handler.stream, handler.formatter)
                handler.setStream(buffer)
                if formatter is not None:
                    handler.setFormatter(formatter)
    assert handlers, "no configured stream handler found"
    try:
        yield buffer
    finally:
        for handler, (stream, old_formatter) in handlers.items():
            handler.setStream(stream)
            handler.setFormatter(old_formatter)


@contextmanager
def _development_server() -> Iterator[int]:
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler

    server = ThreadedWSGIServer(("127.0.0.1", 0), WSGIRequestHandler, allow_reuse_address=False)
    server.set_app(WSGIHandler())
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("formatter", [None, JsonFormatter()], ids=["configured", "json"])
def test_the_development_server_and_django_logs_do_not_contain_the_verify_token(
    verified_tenant: Tenant, formatter: logging.Formatter | None
) -> None:
    with _development_server() as port, _captured_log_output(formatter) as output:
        assert _get(port, _handshake_path(TOKEN)) == (200, CHALLENGE.encode())
        assert _get(port, _handshake_path(TOKEN + "-wrong"))[0] == 403  # django.request logs a warning
        deadline = time.monotonic() + 30  # the server thread writes its line after the response
        while output.getvalue().count("GET /webhooks/whatsapp/") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    written = output.getvalue()
    assert "/webhooks/whatsapp/" in written and "403" in written, written  # the requests were logged …
    assert TOKEN not in written, written  # … without the token


# --------------------------------------------------------------------------------------------
# gunicorn with config/gunicorn_conf.py (the documented production command)
# --------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _server_env(**extra: str) -> dict[str, str]:
    db = settings.DATABASES["default"]
    host = str(db["HOST"]).replace("/", "%2F")
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{host}{port}/{db['NAME']}",
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        **extra,
    }


@contextmanager
def gunicorn(tmp_path: Path, **env: str) -> Iterator[tuple[int, Path]]:
    """gunicorn with the project's config on a free port; yields (port, log directory)."""
    port = _free_port()
    logs = tmp_path / "logs"
    logs.mkdir()
    command = [
        sys.executable, "-m", "gunicorn", "-c", "config/gunicorn_conf.py",
        "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "2",
        "--access-logfile", str(logs / "access.log"), "--error-logfile", str(logs / "error.log"),
    ]  # fmt: skip
    with open(logs / "output.log", "wb") as output:
        process = subprocess.Popen(
            command, cwd=settings.BASE_DIR, env=_server_env(**env), stdout=output, stderr=output, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 90
            prefix = env.get("SCRIPT_NAME", "")
            while True:
                try:
                    if _get(port, f"{prefix}/healthz")[0] in (200, 503):
                        break
                except OSError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("gunicorn did not start: " + (logs / "output.log").read_text()[-3000:])
                time.sleep(0.3)
            yield port, logs
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)


def _all_logs(logs: Path) -> str:
    return "\n".join(path.read_text(errors="replace") for path in sorted(logs.iterdir()))


def test_gunicorn_access_log_does_not_contain_the_verify_token(verified_tenant: Tenant, tmp_path: Path) -> None:
    with gunicorn(tmp_path) as (port, logs):
        assert _get(port, _handshake_path(TOKEN)) == (200, CHALLENGE.encode())
        assert _get(port, _handshake_path(TOKEN + "-wrong"))[0] == 403
    access = (logs / "access.log").read_text()
    assert access.count("/webhooks/whatsapp/") == 2, access  # logged, with the path …
    assert TOKEN not in _all_logs(logs)  # … but nowhere with the token


def test_gunicorn_ignores_a_script_name_sent_by_a_client(db: Any, tmp_path: Path) -> None:
    """gunicorn takes SCRIPT_NAME from a header of a trusted forwarder (127.0.0.1 by default);
    the project's config trusts no such header, so a client cannot shift the paths Django sees."""
    with gunicorn(tmp_path) as (port, _logs):
        status, _body = _get(port, "/x/healthz", headers={"SCRIPT_NAME": "/x"})
    assert status == 404


def test_gunicorn_deployment_under_a_url_prefix(db: Any, tmp_path: Path) -> None:
    """A deployment under /newsletter (gunicorn's SCRIPT_NAME from its environment): pages answer
    under the prefix and the links Django builds carry it."""
    with gunicorn(tmp_path, SCRIPT_NAME="/newsletter") as (port, _logs):
        assert _get(port, "/newsletter/healthz")[0] == 200
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/newsletter/admin/", headers={"Host": "localhost"})
        response = conn.getresponse()
        location = response.getheader("Location") or ""
        conn.close()
    assert response.status == 302
    assert location.startswith("/newsletter/") and "next=/newsletter/admin/" in location, location
