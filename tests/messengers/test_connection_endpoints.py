"""Where a connection may send its credentials, and what of the answer a tenant gets to see.

A tenant admin who can choose a connection's API base or SMTP host can make the platform call
an internal address with the stored credentials and read the answer in "Test connection"
(server-side request forgery). So: tenant-side values must be on the operator's allow-lists
(MESSENGER_API_BASE_ALLOWLIST, MESSENGER_SMTP_HOST_ALLOWLIST), checked in the service so that
every way in is covered; only operator paths (`by_operator=True`: management commands, scripts)
may point a connection elsewhere; provider calls never follow redirects; and the texts a tenant
sees are our own words and numbers, never the remote body (that goes to the server log, cut short).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import aiohttp
import pytest
from django.contrib.messages import get_messages
from django.core.management import call_command
from django.test import Client, override_settings

from accounts import roles
from accounts.models import User
from core.errors import ApplicationError
from messengers import selectors, services
from messengers.adapters import get_adapter
from messengers.adapters.base import ConnectionConfig, OutgoingMessage, Provider, ProviderError
from messengers.models import Connection
from tenants.models import Tenant
from tests.factories import make_user
from tests.fakes.common import RecordingServer
from tests.fakes.fixtures import TG_TOKEN, TW_ACCOUNT, WA_PHONE_NUMBER_ID
from tests.helpers import enrol_totp
from tests.messengers.support import telegram_connection, twilio_connection, whatsapp_connection

pytestmark = pytest.mark.usefixtures("tenant")

CHANGE = "/admin/messengers/connection/{pk}/change/"
OFFICIAL = ["https://graph.facebook.com", "https://api.telegram.org", "https://api.twilio.com"]

# Internal addresses in every spelling an URL parser or resolver accepts, and names that are not
# on the list (whatever they resolve to: names are never resolved, see messengers/endpoints.py).
HOSTILE_API_BASES = [
    "http://127.0.0.1:9",
    "https://127.0.0.1",
    "http://localhost:8000",
    "http://LOCALHOST",
    "http://localhost.",
    "http://10.0.0.5",
    "http://172.16.3.4",
    "http://192.168.1.1",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]:8000",
    "http://[::ffff:127.0.0.1]",
    "http://[fd00::1]",
    "http://2130706433",
    "http://0177.0.0.1",
    "http://0x7f.0.0.1",
    "http://127.1",
    "http://0",
    "http://0.0.0.0",
    "http://internal.example.org",
    "http://127.0.0.1.nip.io",
    "https://graph.facebook.com.attacker.example",
    "https://graph.facebook.com@127.0.0.1",
    "https://user:pw@graph.facebook.com",
    "https://graph.facebook.com\\@127.0.0.1",
    "https://127.0.0.1#@graph.facebook.com",
    "https://127.0.0.1?@graph.facebook.com",
    "http://graph.facebook.com",  # the right host without TLS: the token would travel in clear
    "https://graph.facebook.com:8443",
    "ftp://graph.facebook.com",
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_INFO",
    "https://graph.facebook.com/\r\nHost: 127.0.0.1",
    "https://graph.facebook.com\t.attacker.example",
]
HOSTILE_SMTP_HOSTS = [
    "127.0.0.1",
    "localhost",
    "10.1.2.3",
    "169.254.169.254",
    "::1",
    "[::1]",
    "2130706433",
    "0177.0.0.1",
    "0x7f000001",
    "smtp.internal",
    "mail.example.org",  # a perfectly public name, but not one the operator allowed
    "smtp.example.org.",
]
SECRET = "sk_live_51HxSECRETq2vZ"


@pytest.fixture
def admin() -> User:
    return make_user(roles.ADMIN, username="city-admin")


@pytest.fixture
def admin_client(client_a: Client, admin: User) -> Client:
    enrol_totp(admin)
    client_a.force_login(admin)
    return client_a


def texts(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def tenant_side_connections() -> list[Connection]:
    return list(Connection.objects.exclude(provider="sandbox"))


# --------------------------------------------------------------------------------------------
# The service refuses addresses off the allow-lists (every interface goes through it)
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("api_base", HOSTILE_API_BASES)
def test_create_refuses_api_bases_off_the_list(admin: User, api_base: str) -> None:
    for actor in (admin, None):  # without an actor too: only by_operator=True opens it
        with pytest.raises(ApplicationError, match="API address"):
            services.connection_create(
                provider="telegram", name="Bot", credentials={"bot_token": TG_TOKEN}, api_base=api_base, actor=actor
            )
    assert tenant_side_connections() == []


@pytest.mark.parametrize("api_base", HOSTILE_API_BASES)
def test_update_refuses_api_bases_off_the_list(admin: User, api_base: str) -> None:
    conn = whatsapp_connection()
    with pytest.raises(ApplicationError, match="API address"):
        services.connection_update(connection=conn, actor=admin, api_base=api_base)
    conn.refresh_from_db()
    assert conn.api_base == ""


@pytest.mark.parametrize("host", HOSTILE_SMTP_HOSTS)
def test_smtp_hosts_off_the_list_are_refused_on_create_and_update(admin: User, host: str) -> None:
    with override_settings(MESSENGER_SMTP_HOST_ALLOWLIST=["smtp.example.org"]):
        with pytest.raises(ApplicationError, match="SMTP server"):
            services.connection_create(
                provider="email", name="Mail", external_id="news@example.org", credentials={"host": host}, actor=admin
            )
        assert tenant_side_connections() == []
        conn = services.connection_create(
            provider="email",
            name="Mail",
            external_id="news@example.org",
            credentials={"host": "smtp.example.org"},
            actor=admin,
        )
        with pytest.raises(ApplicationError, match="SMTP server"):
            services.connection_update(connection=conn, actor=admin, credentials={"host": host})
    assert selectors.connection_credentials(conn)["host"] == "smtp.example.org"


@pytest.mark.parametrize(
    "api_base",
    [
        "",
        "https://graph.facebook.com",
        "https://graph.facebook.com/",
        "https://graph.facebook.com/v23.0",
        "https://GRAPH.facebook.com:443/v23.0",
        "https://api.telegram.org",
        "https://api.twilio.com",
    ],
)
def test_the_official_apis_are_allowed_by_default(admin: User, api_base: str) -> None:
    conn = services.connection_update(connection=whatsapp_connection(), actor=admin, api_base=api_base)
    conn.refresh_from_db()
    assert conn.api_base == api_base


def test_an_operator_allow_list_opens_exactly_its_entries(admin: User) -> None:
    conn = whatsapp_connection()
    with override_settings(MESSENGER_API_BASE_ALLOWLIST=["https://graph-proxy.example.org/meta"]):
        services.connection_update(connection=conn, actor=admin, api_base="https://graph-proxy.example.org/meta/v23.0")
        for refused in (
            "https://graph-proxy.example.org/other",
            "https://graph-proxy.example.org/metadata",
            "https://graph.facebook.com",  # the list replaces the default, it does not add to it
        ):
            with pytest.raises(ApplicationError):
                services.connection_update(connection=conn, actor=admin, api_base=refused)
    with override_settings(MESSENGER_SMTP_HOST_ALLOWLIST=["SMTP.Example.org"]):
        mail = services.connection_create(
            provider="email",
            name="Mail",
            external_id="news@example.org",
            credentials={"host": "smtp.example.ORG"},
            actor=admin,
        )
    assert selectors.connection_credentials(mail)["host"] == "smtp.example.ORG"


def test_operators_may_point_connections_anywhere(tenant: Tenant) -> None:
    """Commands, scripts and the benchmarks point connections at the fake providers."""
    conn = services.connection_create(
        provider="telegram",
        name="Bot",
        credentials={"bot_token": TG_TOKEN},
        api_base="http://127.0.0.1:9",
        by_operator=True,
    )
    services.connection_update(connection=conn, actor=None, api_base="http://127.0.0.1:10", by_operator=True)
    conn.refresh_from_db()
    assert conn.api_base == "http://127.0.0.1:10"
    out = io.StringIO()
    call_command(
        "connection_add",
        tenant.schema_name,
        "email",
        "--name",
        "Mail",
        "--external-id",
        "news@example.org",
        "--credential",
        "host=127.0.0.1",
        stdout=out,
    )
    mail = Connection.objects.get(provider="email")
    assert selectors.connection_credentials(mail)["host"] == "127.0.0.1"
    call_command(
        "connection_set",
        tenant.schema_name,
        str(mail.pk),
        "--credential",
        "host=10.0.0.25",
        stdout=out,
    )
    call_command("connection_set", tenant.schema_name, str(conn.pk), "--api-base", "http://127.0.0.1:11", stdout=out)
    conn.refresh_from_db()
    mail.refresh_from_db()
    assert conn.api_base == "http://127.0.0.1:11"
    assert selectors.connection_credentials(mail)["host"] == "10.0.0.25"


def test_a_tenant_admin_may_still_edit_a_connection_an_operator_pointed_elsewhere(admin: User) -> None:
    conn = whatsapp_connection(api_base="http://127.0.0.1:9")
    services.connection_update(connection=conn, actor=admin, name="Umbenannt", api_base="http://127.0.0.1:9")
    conn.refresh_from_db()
    assert (conn.name, conn.api_base) == ("Umbenannt", "http://127.0.0.1:9")
    mail = services.connection_create(
        provider="email",
        name="Relay",
        external_id="news@example.org",
        credentials={"host": "10.0.0.25", "port": "587"},
        by_operator=True,
    )
    services.connection_update(connection=mail, actor=admin, credentials={"password": "neu", "username": "city"})
    # … but cannot aim the operator's internal host at another port (a port scan, one check each)
    with pytest.raises(ApplicationError, match="SMTP server"):
        services.connection_update(connection=mail, actor=admin, credentials={"port": "6379"})
    mail.refresh_from_db()
    assert selectors.connection_credentials(mail) == {
        "host": "10.0.0.25",
        "port": "587",
        "password": "neu",
        "username": "city",
    }


# --------------------------------------------------------------------------------------------
# The tenant admin's forms
# --------------------------------------------------------------------------------------------
def test_the_change_form_refuses_an_internal_api_base(admin_client: Client) -> None:
    conn = whatsapp_connection()
    response = admin_client.post(
        CHANGE.format(pk=conn.pk),
        {
            "name": conn.name,
            "external_id": conn.external_id,
            "account_id": conn.account_id,
            "public_address": "",
            "api_base": "http://169.254.169.254/latest",
            "rate_limit_per_second": "80",
            "whatsapp_tier": "",
            "price_per_message": "0",
            "_save": "Save",
        },
        follow=True,
    )
    assert any("API address" in text for text in texts(response))
    conn.refresh_from_db()
    assert conn.api_base == ""


def test_the_add_form_refuses_an_internal_smtp_host(admin_client: Client) -> None:
    response = admin_client.post(
        "/admin/messengers/connection/add/?provider=email",
        {
            "provider": "email",
            "name": "Rathaus-Mail",
            "external_id": "news@example.org",
            "account_id": "",
            "public_address": "",
            "api_base": "",
            "rate_limit_per_second": "20",
            "price_per_message": "0",
            "cred_host": "127.0.0.1",
            "cred_port": "6379",
            "_save": "Save",
        },
        follow=True,
    )
    assert any("SMTP server" in text for text in texts(response))
    assert tenant_side_connections() == []


# --------------------------------------------------------------------------------------------
# What a tenant sees of a remote answer
# --------------------------------------------------------------------------------------------
@pytest.fixture
def internal() -> Iterator[RecordingServer]:
    """An internal service that answers whatever it is configured to, on any path."""
    server = RecordingServer().start()
    yield server
    server.stop()


def answer(server: RecordingServer, status: int, body: Any) -> None:
    server.status = status
    server.body = body.encode() if isinstance(body, str) else json.dumps(body).encode()


WA_BODIES = [
    (400, {"error": {"message": SECRET, "code": 1, "error_data": {"details": SECRET}}}),
    (401, {"error": {"message": SECRET, "code": 190, "error_user_title": SECRET}}),
    (200, {"verified_name": SECRET, "display_phone_number": SECRET, "id": SECRET}),
    (500, f"<html>{SECRET}</html>"),
    (200, SECRET),
]
TG_BODIES = [
    (401, {"ok": False, "error_code": 401, "description": SECRET}),
    (400, {"ok": False, "error_code": 400, "description": SECRET}),
    (200, {"ok": True, "result": {"id": SECRET, "username": SECRET, "first_name": SECRET}}),
    (200, {"ok": True, "result": {"id": 1, "username": SECRET}}),  # "the token belongs to another bot"
    (502, SECRET + " " + "x" * 5000),
]
TW_BODIES = [
    (401, {"code": 20003, "message": SECRET}),
    (404, {"code": SECRET, "message": SECRET, "more_info": SECRET}),
    (200, {"friendly_name": SECRET, "status": SECRET, "sid": SECRET}),
    (200, {"friendly_name": SECRET, "status": "suspended"}),
]


def check_in_admin(client: Client, conn: Connection) -> list[str]:
    response = client.post(f"/admin/messengers/connection/{conn.pk}/check/", follow=True)
    assert response.status_code == 200
    conn.refresh_from_db()
    shown = texts(response)
    assert shown and conn.last_check_detail
    return [*shown, conn.last_check_detail]


def assert_hidden(shown: list[str], caplog: pytest.LogCaptureFixture) -> None:
    assert all("SECRET" not in text for text in shown), shown
    logged = [r.getMessage() for r in caplog.records if "SECRET" in r.getMessage()]
    assert logged, "the remote answer belongs in the server log"
    assert all(len(line) < 1000 for line in logged), "… cut short"


@pytest.mark.parametrize(("status", "body"), WA_BODIES)
def test_whatsapp_check_never_shows_the_remote_body(
    admin_client: Client, internal: RecordingServer, caplog: pytest.LogCaptureFixture, status: int, body: Any
) -> None:
    answer(internal, status, body)
    conn = whatsapp_connection(api_base=internal.url)
    with caplog.at_level(logging.INFO):
        assert_hidden(check_in_admin(admin_client, conn), caplog)


@pytest.mark.parametrize(("status", "body"), TG_BODIES)
def test_telegram_check_and_webhook_registration_never_show_the_remote_body(
    admin_client: Client, internal: RecordingServer, caplog: pytest.LogCaptureFixture, status: int, body: Any
) -> None:
    answer(internal, status, body)
    conn = telegram_connection(api_base=internal.url)
    with caplog.at_level(logging.INFO):
        assert_hidden(check_in_admin(admin_client, conn), caplog)
        response = admin_client.post(
            "/admin/messengers/connection/",
            {"action": "register_webhook", "_selected_action": [conn.pk]},
            follow=True,
        )
        assert_hidden(texts(response), caplog)


@pytest.mark.parametrize(("status", "body"), TW_BODIES)
def test_twilio_check_never_shows_the_remote_body(
    admin_client: Client, internal: RecordingServer, caplog: pytest.LogCaptureFixture, status: int, body: Any
) -> None:
    answer(internal, status, body)
    conn = twilio_connection(api_base=internal.url)
    with caplog.at_level(logging.INFO):
        assert_hidden(check_in_admin(admin_client, conn), caplog)


@pytest.mark.parametrize(("status", "body"), WA_BODIES[:2] + WA_BODIES[3:4])
def test_template_sync_errors_never_show_the_remote_body(
    admin_client: Client, internal: RecordingServer, caplog: pytest.LogCaptureFixture, status: int, body: Any
) -> None:
    answer(internal, status, body)
    conn = whatsapp_connection(api_base=internal.url)
    with caplog.at_level(logging.INFO):
        response = admin_client.post(
            "/admin/messengers/connection/",
            {"action": "sync_templates", "_selected_action": [conn.pk]},
            follow=True,
        )
        (message,) = texts(response)
        assert message.startswith("WhatsApp: Meta refused the template list")
        assert_hidden([message], caplog)


# --------------------------------------------------------------------------------------------
# Redirects: an allowed host must not be able to send us on to an internal one
# --------------------------------------------------------------------------------------------
@pytest.fixture
def redirector(internal: RecordingServer) -> Iterator[str]:
    """An allowed host that answers every request with a redirect to the internal service."""
    target = internal.url

    class Handler(BaseHTTPRequestHandler):
        def _redirect(self) -> None:
            self.send_response(307)
            self.send_header("Location", target + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:  # noqa: N802 - http.server's names
            self._redirect()

        def do_POST(self) -> None:  # noqa: N802
            self._redirect()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_provider_calls_do_not_follow_redirects(
    admin_client: Client, admin: User, internal: RecordingServer, redirector: str
) -> None:
    answer(internal, 200, {"verified_name": SECRET, "display_phone_number": "1555"})
    with override_settings(MESSENGER_API_BASE_ALLOWLIST=[redirector]):
        conn = services.connection_update(connection=whatsapp_connection(), actor=admin, api_base=redirector)
    shown = check_in_admin(admin_client, conn)
    assert all("SECRET" not in text for text in shown)
    assert conn.last_check_ok is False
    config = ConnectionConfig(
        provider=Provider.WHATSAPP,
        credentials={"access_token": "EAAG-x", "app_secret": "s"},
        external_id=WA_PHONE_NUMBER_ID,
        api_base=redirector,
        timeout=5,
    )
    adapter = get_adapter(config)
    with pytest.raises(ProviderError):
        adapter.send(OutgoingMessage(to="+491701234567", text="Hallo"))

    async def send_async() -> None:
        async with aiohttp.ClientSession() as session:
            await adapter.send_async(session, OutgoingMessage(to="+491701234567", text="Hallo"))

    with pytest.raises(ProviderError):
        asyncio.run(send_async())
    twilio = get_adapter(
        ConnectionConfig(
            provider=Provider.SMS,
            credentials={"auth_token": "t" * 32},
            external_id="+4930123",
            account_id=TW_ACCOUNT,
            api_base=redirector,
            timeout=5,
        )
    )
    assert not twilio.check_credentials().ok
    assert internal.received() == [], "a redirect was followed to the internal service"
