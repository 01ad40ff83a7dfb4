"""Messenger connections: credentials encrypted at rest and write-only in the admin, "Test
connection" against each fake, Telegram webhook registration on save, WhatsApp template sync,
and the `connection_add` / `rotate_secrets` commands."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.core.management import CommandError, call_command
from django.db import connection as django_db
from django.test import Client, override_settings
from django_tenants.utils import schema_context

from accounts import roles
from accounts.models import AuditEvent
from core import crypto
from messengers import selectors, services
from messengers.models import Connection, WhatsAppTemplate
from tenants.models import Tenant, WebhookRoute
from tests.factories import make_user
from tests.fakes.fixtures import (
    SMTP_PASSWORD,
    SMTP_USER,
    TG_TOKEN,
    TW_ACCOUNT,
    TW_NUMBER,
    TW_TOKEN,
    WA_APP_SECRET,
    WA_PHONE_NUMBER_ID,
    WA_TOKEN,
    WA_VERIFY_TOKEN,
    WA_WABA_ID,
)
from tests.fakes.smtp import FakeSMTP
from tests.fakes.telegram import FakeTelegram
from tests.fakes.twilio import FakeTwilio
from tests.fakes.whatsapp import FakeWhatsApp
from tests.helpers import enrol_totp
from tests.messengers.support import (
    route_path,
    telegram_connection,
    twilio_connection,
    whatsapp_connection,
)

pytestmark = pytest.mark.usefixtures("tenant")

SECRETS = (WA_TOKEN, WA_APP_SECRET, WA_VERIFY_TOKEN)
CHANGE = "/admin/messengers/connection/{pk}/change/"


@pytest.fixture
def admin_client(client_a: Client) -> Client:
    user = make_user(roles.ADMIN, username="connection_admin")
    enrol_totp(user)
    client_a.force_login(user)
    return client_a


def raw_row(pk: int) -> str:
    """Everything stored in the connection's row, as PostgreSQL has it."""
    with django_db.cursor() as cursor:
        cursor.execute("SELECT row_to_json(c)::text FROM messengers_connection c WHERE id = %s", [pk])
        return str(cursor.fetchone()[0])


def texts(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def form_data(conn: Connection, **changes: str) -> dict[str, str]:
    data = {
        "name": conn.name,
        "external_id": conn.external_id,
        "account_id": conn.account_id,
        "public_address": conn.public_address,
        "api_base": conn.api_base,
        "rate_limit_per_second": str(conn.rate_limit_per_second),
        "price_per_message": str(conn.price_per_message),
        "_save": "Save",
    }
    if conn.provider == "whatsapp":
        data["whatsapp_tier"] = "" if conn.whatsapp_tier is None else str(conn.whatsapp_tier)
    data.update(changes)
    return data


# --------------------------------------------------------------------------------------------
# Credentials: encrypted, write-only
# --------------------------------------------------------------------------------------------
def test_credentials_are_encrypted_at_rest_and_never_logged(tenant: Tenant) -> None:
    conn = whatsapp_connection()
    row = raw_row(conn.pk)
    assert conn.credentials_encrypted and conn.credentials_encrypted in row
    for secret in SECRETS:
        assert secret not in row
    assert selectors.connection_credentials(conn) == {
        "access_token": WA_TOKEN,
        "app_secret": WA_APP_SECRET,
        "verify_token": WA_VERIFY_TOKEN,
    }
    logged = json.dumps(list(AuditEvent.objects.values("action", "details", "target_label")))
    assert "connection.created" in logged and "app_secret" in logged  # the key names, …
    for secret in SECRETS:
        assert secret not in logged  # … never the values
    assert WA_TOKEN not in repr(selectors.connection_config(conn))
    with schema_context("public"):
        route = WebhookRoute.objects.get(route_key=conn.route_key)
    assert (route.external_id, route.connection_id, route.tenant_id) == (WA_PHONE_NUMBER_ID, conn.pk, tenant.pk)
    assert WA_VERIFY_TOKEN not in route.verify_token_sha256


def test_admin_adds_a_connection_with_write_only_credentials(admin_client: Client) -> None:
    choose = admin_client.get("/admin/messengers/connection/add/")
    assert choose.status_code == 200 and "?provider=whatsapp" in choose.content.decode()
    form = admin_client.get("/admin/messengers/connection/add/?provider=whatsapp")
    assert form.status_code == 200 and 'name="cred_app_secret"' in form.content.decode()
    response = admin_client.post(
        "/admin/messengers/connection/add/?provider=whatsapp",
        {
            "provider": "whatsapp",
            "name": "Rathaus WhatsApp",
            "external_id": "123123123",
            "account_id": WA_WABA_ID,
            "public_address": "+49 711 1234",
            "api_base": "",
            "rate_limit_per_second": "40",
            "whatsapp_tier": "",
            "price_per_message": "0.05",
            "cred_access_token": WA_TOKEN,
            "cred_app_secret": WA_APP_SECRET,
            "cred_verify_token": "",
            "_save": "Save",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    conn = Connection.objects.get(name="Rathaus WhatsApp")
    assert (conn.provider, conn.external_id, str(conn.rate_limit_per_second)) == ("whatsapp", "123123123", "40.00")
    assert selectors.connection_credentials(conn) == {"access_token": WA_TOKEN, "app_secret": WA_APP_SECRET}
    for secret in (WA_TOKEN, WA_APP_SECRET):
        assert secret not in raw_row(conn.pk)


def test_change_form_never_shows_credentials_and_blank_fields_keep_them(admin_client: Client) -> None:
    conn = whatsapp_connection()
    page = admin_client.get(CHANGE.format(pk=conn.pk))
    html = page.content.decode()
    assert page.status_code == 200
    for secret in SECRETS:
        assert secret not in html
    assert conn.credentials_encrypted not in html
    assert html.count("stored — leave empty to keep") == 3
    assert route_path(conn) in html  # the webhook URL to give Meta
    # blank credential fields: settings change, every secret stays
    response = admin_client.post(
        CHANGE.format(pk=conn.pk),
        form_data(conn, name="Umbenannt", api_base="https://graph.facebook.com/v23.0", public_address="+49 1"),
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    conn.refresh_from_db()
    assert (conn.name, conn.api_base, conn.public_address) == (
        "Umbenannt",
        "https://graph.facebook.com/v23.0",
        "+49 1",
    )
    assert selectors.connection_credentials(conn) == dict(
        zip(("access_token", "app_secret", "verify_token"), SECRETS, strict=True)
    )
    # one credential changed: the others stay
    admin_client.post(CHANGE.format(pk=conn.pk), form_data(conn, cred_access_token="EAAG-new-token"))
    conn.refresh_from_db()
    assert selectors.connection_credentials(conn) == {
        "access_token": "EAAG-new-token",
        "app_secret": WA_APP_SECRET,
        "verify_token": WA_VERIFY_TOKEN,
    }
    assert "EAAG-new-token" not in raw_row(conn.pk)
    changes = AuditEvent.objects.filter(action="connection.updated").order_by("id")
    assert [e.details for e in changes] == [
        {"fields": ["api_base", "name", "public_address"], "credential_keys": []},
        {"fields": [], "credential_keys": ["access_token"]},
    ]


def test_changing_the_external_id_moves_the_route(admin_client: Client) -> None:
    conn = whatsapp_connection()
    services.connection_update(connection=conn, actor=None, external_id="987654321")
    with schema_context("public"):
        assert WebhookRoute.objects.get(route_key=conn.route_key).external_id == "987654321"
    # taken by another connection: refused with a clear message, nothing changes
    other = whatsapp_connection(pnid="555555555", name="Zweite")
    response = admin_client.post(CHANGE.format(pk=other.pk), form_data(other, external_id="987654321"), follow=True)
    assert any("already uses" in text for text in texts(response))
    other.refresh_from_db()
    assert other.external_id == "555555555"


def test_credentials_that_cannot_be_decrypted_are_reported_not_crashing(tenant: Tenant) -> None:
    conn = whatsapp_connection()
    with override_settings(FERNET_KEYS=[crypto.generate_key()]):
        result = services.connection_check(connection=conn)
    assert not result.ok and "cannot be decrypted" in result.detail


# --------------------------------------------------------------------------------------------
# Test connection
# --------------------------------------------------------------------------------------------
def check_via_admin(client: Client, conn: Connection) -> tuple[list[str], Connection]:
    response = client.post(f"/admin/messengers/connection/{conn.pk}/check/", follow=True)
    assert response.status_code == 200
    conn.refresh_from_db()
    return texts(response), conn


def test_test_connection_whatsapp(admin_client: Client, wa_fake: FakeWhatsApp) -> None:
    good = whatsapp_connection(api_base=wa_fake.url)
    bad = whatsapp_connection(api_base=wa_fake.url, pnid="444444444", access_token="EAAG-revoked", name="Bad")
    messages, good = check_via_admin(admin_client, good)
    assert messages == ["Connected: WhatsApp number 15550783881"]
    assert good.last_check_ok is True and good.last_check_at is not None
    messages, bad = check_via_admin(admin_client, bad)
    assert messages == ["Access token rejected by Meta (code 190)."]
    assert bad.last_check_ok is False and bad.last_check_detail == messages[0]
    assert all(r["headers"]["Authorization"].startswith("Bearer ") for r in wa_fake.requests())


def test_test_connection_telegram(admin_client: Client, tg_fake: FakeTelegram) -> None:
    good = telegram_connection(api_base=tg_fake.url)
    bad = telegram_connection(api_base=tg_fake.url, token="7172552020:WRONGWRONGWRONGWRONGWRONG", name="Bad")
    assert check_via_admin(admin_client, good)[0] == ["Connected as @city_alerts_bot"]
    (message,) = check_via_admin(admin_client, bad)[0]
    assert message.startswith("Bot token rejected by Telegram") and "401" in message
    assert "WRONGWRONG" not in message


def test_test_connection_twilio(admin_client: Client, tw_fake: FakeTwilio) -> None:
    good = twilio_connection(api_base=tw_fake.url)
    bad = twilio_connection(api_base=tw_fake.url, token="f" * 32, name="Bad", number="+4930999999")
    assert check_via_admin(admin_client, good)[0] == [f"Connected to Twilio account {TW_ACCOUNT}"]
    assert check_via_admin(admin_client, bad)[0] == ["Account SID or auth token rejected by Twilio (code 20003)."]


def test_test_connection_smtp_and_sandbox(admin_client: Client, smtp_fake: FakeSMTP) -> None:
    host, port = smtp_fake.host, str(smtp_fake.smtp_port)

    def mail(password: str, name: str) -> Connection:
        return services.connection_create(
            provider="email",
            name=name,
            external_id="newsletter@example.org",
            credentials={"host": host, "port": port, "username": SMTP_USER, "password": password},
            by_operator=True,
        )

    good, bad = mail(SMTP_PASSWORD, "Mail"), mail("wrong-password", "Bad mail")
    assert check_via_admin(admin_client, good)[0] == [f"Connected to {host}:{port} as {SMTP_USER}"]
    (message,) = check_via_admin(admin_client, bad)[0]
    assert message.startswith(f"Login to {host}:{port} rejected") and "wrong-password" not in message
    sandbox = Connection.objects.get(provider="sandbox")
    assert check_via_admin(admin_client, sandbox)[0][0].startswith("Sandbox:")


def test_test_connection_admin_action_checks_every_selected(admin_client: Client, wa_fake: FakeWhatsApp) -> None:
    good = whatsapp_connection(api_base=wa_fake.url)
    bad = whatsapp_connection(api_base=wa_fake.url, pnid="444444444", access_token="EAAG-revoked", name="Bad")
    response = admin_client.post(
        "/admin/messengers/connection/",
        {"action": "test_connection", "_selected_action": [good.pk, bad.pk]},
        follow=True,
    )
    assert sorted(texts(response)) == [
        "Bad: Access token rejected by Meta (code 190).",
        "WhatsApp: Connected: WhatsApp number 15550783881",
    ]


def test_test_connection_needs_a_post_and_change_permission(client_a: Client, tenant: Tenant) -> None:
    conn = whatsapp_connection(api_base="http://127.0.0.1:9")
    editor = make_user(roles.EDITOR, username="looker")
    client_a.force_login(editor)
    assert client_a.post(f"/admin/messengers/connection/{conn.pk}/check/").status_code == 403
    conn.refresh_from_db()
    assert conn.last_check_at is None


# --------------------------------------------------------------------------------------------
# Telegram: the webhook is registered on save
# --------------------------------------------------------------------------------------------
def test_saving_a_telegram_connection_registers_its_webhook(admin_client: Client, tg_fake: FakeTelegram) -> None:
    with override_settings(MESSENGER_API_BASE_ALLOWLIST=[tg_fake.url]):  # the operator allowed the fake
        _save_a_telegram_connection(admin_client, tg_fake)


def _save_a_telegram_connection(admin_client: Client, tg_fake: FakeTelegram) -> None:
    response = admin_client.post(
        "/admin/messengers/connection/add/?provider=telegram",
        {
            "provider": "telegram",
            "name": "Stadtbot",
            "external_id": "",
            "account_id": "",
            "public_address": "@city_alerts_bot",
            "api_base": tg_fake.url,
            "rate_limit_per_second": "30",
            "price_per_message": "0",
            "cred_bot_token": TG_TOKEN,
            "cred_webhook_secret": "",
            "_save": "Save",
        },
        follow=True,
    )
    assert response.status_code == 200
    conn = Connection.objects.get(name="Stadtbot")
    assert conn.external_id == TG_TOKEN.split(":")[0]
    secret = selectors.connection_credentials(conn)["webhook_secret"]
    assert len(secret) >= 32
    info = tg_fake.webhook_info()
    assert info["url"] == "http://localhost:8000" + route_path(conn)
    assert info["secret_token"] == secret
    assert info["allowed_updates"] == ["message", "callback_query", "my_chat_member"]
    assert "Telegram webhook: Webhook was set" in texts(response)
    assert secret not in response.content.decode()
    # a new secret entered in the form is registered too (else every update would be refused)
    admin_client.post(CHANGE.format(pk=conn.pk), form_data(conn, cred_webhook_secret="new_secret-123"))
    assert tg_fake.webhook_info()["secret_token"] == "new_secret-123"
    assert len(tg_fake.requests(path_contains="setWebhook")) == 2
    # plain settings changes do not call Telegram
    admin_client.post(CHANGE.format(pk=conn.pk), form_data(conn, name="Stadtbot 2"))
    assert len(tg_fake.requests(path_contains="setWebhook")) == 2


def test_register_webhook_failure_is_shown(admin_client: Client, tg_fake: FakeTelegram) -> None:
    tg_fake.configure(require_https=True)
    conn = telegram_connection(api_base=tg_fake.url)
    response = admin_client.post(
        "/admin/messengers/connection/",
        {"action": "register_webhook", "_selected_action": [conn.pk]},
        follow=True,
    )
    (message,) = texts(response)
    assert message.startswith("Bot: setWebhook failed (code 400).") and "HTTPS" in message


# --------------------------------------------------------------------------------------------
# WhatsApp templates
# --------------------------------------------------------------------------------------------
def test_template_sync_from_the_graph_api(admin_client: Client, wa_fake: FakeWhatsApp) -> None:
    conn = whatsapp_connection(api_base=wa_fake.url)
    WhatsAppTemplate.objects.create(connection=conn, name="citizen_alert_v2", language="de", status="PENDING")
    for _ in range(2):  # syncing twice updates, never duplicates
        response = admin_client.post(
            "/admin/messengers/connection/",
            {"action": "sync_templates", "_selected_action": [conn.pk]},
            follow=True,
        )
        assert texts(response) == ["WhatsApp: 8 templates synced."]
    templates = {(t.name, t.language): t for t in WhatsAppTemplate.objects.filter(connection=conn)}
    assert len(templates) == 8
    alert = templates[("citizen_alert_v2", "de")]
    assert (alert.status, alert.category, alert.parameter_count) == ("APPROVED", "UTILITY", 2)
    assert alert.body == "Achtung: {{1}} ist ab {{2}} gesperrt."
    assert alert.is_usable and alert.synced_at is not None
    assert templates[("paused_promo", "de")].status == "PAUSED"
    assert not templates[("paused_promo", "de")].is_usable
    assert templates[("newsletter_update", "en_US")].category == "MARKETING"
    assert "/message_templates" in wa_fake.requests()[-1]["path"]


def test_template_sync_reports_a_refusal(tenant: Tenant, wa_fake: FakeWhatsApp) -> None:
    from core.errors import ApplicationError

    conn = whatsapp_connection(api_base=wa_fake.url, access_token="EAAG-revoked")
    with pytest.raises(ApplicationError, match="Meta refused the template list"):
        services.connection_sync_templates(connection=conn)
    assert not WhatsAppTemplate.objects.exists()


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------
def test_connection_add_command_prints_id_and_webhook_url(tenant: Tenant) -> None:
    out = io.StringIO()
    call_command(
        "connection_add",
        tenant.schema_name,
        "sms",
        "--name",
        "SMS Rathaus",
        "--credential",
        f"auth_token={TW_TOKEN}",
        "--external-id",
        TW_NUMBER,
        "--account-id",
        TW_ACCOUNT,
        "--rate",
        "5",
        stdout=out,
    )
    conn = Connection.objects.get(name="SMS Rathaus")
    text = out.getvalue()
    assert f"id:          {conn.pk}" in text
    assert f"webhook URL: http://localhost:8000/webhooks/twilio/{conn.route_key}/" in text
    assert TW_TOKEN not in text
    assert (conn.provider, conn.account_id, str(conn.rate_limit_per_second)) == ("sms", TW_ACCOUNT, "5.00")
    assert selectors.connection_credentials(conn) == {"auth_token": TW_TOKEN}
    with schema_context("public"):
        route = WebhookRoute.objects.get(route_key=conn.route_key)
    assert (route.provider, route.connection_id, route.tenant.schema_name) == ("sms", conn.pk, tenant.schema_name)


def test_connection_add_command_registers_a_telegram_webhook(tenant: Tenant, tg_fake: FakeTelegram) -> None:
    out = io.StringIO()
    call_command(
        "connection_add",
        tenant.schema_name,
        "telegram",
        "--name",
        "CLI Bot",
        "--credential",
        f"bot_token={TG_TOKEN}",
        "--api-base",
        tg_fake.url,
        "--register-webhook",
        stdout=out,
    )
    conn = Connection.objects.get(name="CLI Bot")
    assert "setWebhook:  ok Webhook was set" in out.getvalue()
    assert tg_fake.webhook_info()["secret_token"] == selectors.connection_credentials(conn)["webhook_secret"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope", "sms", "--name", "x"], "no tenant 'nope'"),
        (["public", "sms", "--name", "x"], "no tenant 'public'"),
        (["{schema}", "sms", "--name", "x", "--credential", "auth_token"], "KEY=VALUE"),
        (["{schema}", "sms", "--name", "x", "--credential", "password=1"], "Unknown credential password"),
        (["{schema}", "whatsapp", "--name", "x", "--credential", "access_token=1"], "app_secret"),
        (["{schema}", "telegram", "--name", "x"], "bot_token"),
    ],
)
def test_connection_add_command_errors(tenant: Tenant, args: list[str], message: str) -> None:
    args = [a.format(schema=tenant.schema_name) for a in args]
    with pytest.raises(CommandError, match=message):
        call_command("connection_add", *args, stdout=io.StringIO())
    assert not Connection.objects.exclude(provider="sandbox").exists()


def test_rotate_secrets_moves_credentials_to_the_new_key(tenant: Tenant, tenant_b: Tenant) -> None:
    from tests.conftest import in_tenant

    old_key = crypto.generate_key()
    new_key = crypto.generate_key()
    with override_settings(FERNET_KEYS=[old_key]):
        conn = whatsapp_connection()
        with in_tenant(tenant_b):
            conn_b = telegram_connection()
    before = conn.credentials_encrypted
    out = io.StringIO()
    with override_settings(FERNET_KEYS=[new_key, old_key]):
        call_command("rotate_secrets", stdout=out)
    assert f"{tenant.schema_name}: 1 connection(s) re-encrypted" in out.getvalue()
    assert f"{tenant_b.schema_name}: 1 connection(s) re-encrypted" in out.getvalue()
    conn.refresh_from_db()
    assert conn.credentials_encrypted != before
    with override_settings(FERNET_KEYS=[new_key]):  # the old key can be dropped now
        assert selectors.connection_credentials(conn)["app_secret"] == WA_APP_SECRET
        with in_tenant(tenant_b):
            conn_b.refresh_from_db()
            assert selectors.connection_credentials(conn_b)["bot_token"] == TG_TOKEN
    with override_settings(FERNET_KEYS=[old_key]), pytest.raises(crypto.SecretDecryptionError):
        selectors.connection_credentials(conn)
    # running it again is harmless
    with override_settings(FERNET_KEYS=[new_key, old_key]):
        call_command("rotate_secrets", stdout=io.StringIO())
    with override_settings(FERNET_KEYS=[new_key]):
        conn.refresh_from_db()
        assert selectors.connection_credentials(conn)["access_token"] == WA_TOKEN
