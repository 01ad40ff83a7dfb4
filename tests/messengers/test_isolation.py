"""Two tenants, each with its own messenger accounts: a webhook for tenant A's number never lands
in tenant B (also when one body carries both numbers), forged route keys are refused, and B's
admin never lists A's connections, contacts or events."""

from __future__ import annotations

import pytest
from django.test import Client
from django_tenants.utils import schema_context

from accounts import roles
from messengers import services
from messengers.models import Connection, Contact, InboundMessage, WebhookEvent
from tenants.models import Tenant
from tests.conftest import in_tenant
from tests.factories import make_user
from tests.fakes.fixtures import TG_TOKEN
from tests.helpers import enrol_totp
from tests.messengers.support import (
    apply_all,
    events_per_tenant,
    meta_json,
    post_telegram,
    post_twilio,
    post_whatsapp,
    route_path,
    telegram_connection,
    twilio_connection,
    wa_envelope,
    wa_status,
    wa_text,
    whatsapp_connection,
)

PNID_A, PNID_B = "100000000000001", "200000000000002"
SECRET_A, SECRET_B, SHARED = "secret-of-a", "secret-of-b", "one-meta-app-for-both"
TS = 1_749_416_383


def keys(tenant: Tenant) -> list[str]:
    with schema_context(tenant.schema_name):
        return sorted(WebhookEvent.objects.values_list("dedupe_key", flat=True))


def test_each_number_lands_in_its_own_tenant_only(client_public: Client, tenant: Tenant, tenant_b: Tenant) -> None:
    whatsapp_connection(pnid=PNID_A, app_secret=SECRET_A)
    with in_tenant(tenant_b):
        whatsapp_connection(pnid=PNID_B, app_secret=SECRET_B)
    body_a = meta_json(wa_envelope((PNID_A, {"messages": [wa_text("wamid.A1", "4911", "für A", TS)]})))
    body_b = meta_json(wa_envelope((PNID_B, {"messages": [wa_text("wamid.B1", "4922", "für B", TS)]})))
    assert post_whatsapp(client_public, body_a, secret=SECRET_A).status_code == 200
    assert post_whatsapp(client_public, body_b, secret=SECRET_B).status_code == 200
    # each body signed with the other tenant's secret
    assert post_whatsapp(client_public, body_a, secret=SECRET_B).status_code == 403
    assert post_whatsapp(client_public, body_b, secret=SECRET_A).status_code == 403
    assert keys(tenant) == ["msg:wamid.A1"]
    assert keys(tenant_b) == ["msg:wamid.B1"]


def test_one_body_carrying_both_numbers_is_split(client_public: Client, tenant: Tenant, tenant_b: Tenant) -> None:
    """One Meta app serving both tenants' numbers: its body may batch them; a change without
    metadata names no number and is stored for nobody."""
    whatsapp_connection(pnid=PNID_A, app_secret=SHARED)
    with in_tenant(tenant_b):
        whatsapp_connection(pnid=PNID_B, app_secret=SHARED)
    body = meta_json(
        wa_envelope(
            (PNID_A, {"statuses": [wa_status("wamid.A-out", "read", TS)]}),
            (PNID_B, {"messages": [wa_text("wamid.B-in", "4922", "Hallo B", TS)]}),
            (None, {"messages": [wa_text("wamid.nobody", "4933", "ohne metadata", TS)]}),
            (PNID_A, {"messages": [wa_text("wamid.A-in", "4911", "Hallo A", TS)]}),
        )
    )
    assert post_whatsapp(client_public, body, secret=SHARED).status_code == 200
    assert keys(tenant) == ["msg:wamid.A-in", "status:wamid.A-out:read"]
    assert keys(tenant_b) == ["msg:wamid.B-in"]


def test_a_per_connection_url_passes_other_tenants_numbers_on(
    client_public: Client, tenant: Tenant, tenant_b: Tenant
) -> None:
    conn_a = whatsapp_connection(pnid=PNID_A, app_secret=SHARED)
    with in_tenant(tenant_b):
        whatsapp_connection(pnid=PNID_B, app_secret=SHARED)
    body = meta_json(
        wa_envelope(
            (PNID_B, {"messages": [wa_text("wamid.B-in", "4922", "für B", TS)]}),
            (None, {"messages": [wa_text("wamid.A-bare", "4911", "ohne metadata", TS)]}),
            ("300000000000003", {"messages": [wa_text("wamid.A-unknown", "4911", "unbekannt", TS)]}),
        )
    )
    assert post_whatsapp(client_public, body, secret=SHARED, path=route_path(conn_a)).status_code == 200
    assert keys(tenant) == ["msg:wamid.A-bare", "msg:wamid.A-unknown"]
    assert keys(tenant_b) == ["msg:wamid.B-in"]


def test_a_body_for_both_numbers_is_refused_whole_when_one_signature_fails(
    client_public: Client, tenant: Tenant, tenant_b: Tenant
) -> None:
    whatsapp_connection(pnid=PNID_A, app_secret=SECRET_A)
    with in_tenant(tenant_b):
        whatsapp_connection(pnid=PNID_B, app_secret=SECRET_B)
    body = meta_json(
        wa_envelope(
            (PNID_A, {"statuses": [wa_status("wamid.A", "read", TS)]}),
            (PNID_B, {"statuses": [wa_status("wamid.B", "read", TS)]}),
        )
    )
    for secret in (SECRET_A, SECRET_B):
        assert post_whatsapp(client_public, body, secret=secret).status_code == 403
    assert events_per_tenant([tenant, tenant_b]) == {tenant.schema_name: 0, tenant_b.schema_name: 0}


def test_forged_route_keys_are_refused(client_public: Client, tenant: Tenant, tenant_b: Tenant) -> None:
    wa_a = whatsapp_connection(pnid=PNID_A, app_secret=SECRET_A)
    tg_a = telegram_connection(secret="tg-secret-a")
    tw_a = twilio_connection(token="a" * 32)
    with in_tenant(tenant_b):
        whatsapp_connection(pnid=PNID_B, app_secret=SECRET_B)
        telegram_connection(token="1234567:BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB", secret="tg-secret-b")
        twilio_connection(token="b" * 32, number="+4940999999")
    wa_body = meta_json(wa_envelope((PNID_A, {"messages": [wa_text("wamid.F", "4911", "x", TS)]})))
    assert post_whatsapp(client_public, wa_body, secret=SECRET_B, path=route_path(wa_a)).status_code == 403
    tg_body = b'{"update_id":1,"message":{"message_id":1,"chat":{"id":5,"type":"private"},"date":1,"text":"x"}}'
    assert post_telegram(client_public, tg_a, tg_body, secret="tg-secret-b").status_code == 403
    params = [("MessageSid", "SM1"), ("SmsStatus", "received"), ("From", "+4911"), ("Body", "x")]
    assert post_twilio(client_public, route_path(tw_a), params, token="b" * 32).status_code == 403
    assert events_per_tenant([tenant, tenant_b]) == {tenant.schema_name: 0, tenant_b.schema_name: 0}
    # the same bodies with A's own secrets are fine, and stay in A
    assert post_whatsapp(client_public, wa_body, secret=SECRET_A, path=route_path(wa_a)).status_code == 200
    assert post_telegram(client_public, tg_a, tg_body, secret="tg-secret-a").status_code == 200
    assert post_twilio(client_public, route_path(tw_a), params, token="a" * 32).status_code == 200
    assert events_per_tenant([tenant, tenant_b]) == {tenant.schema_name: 3, tenant_b.schema_name: 0}


def test_a_number_or_bot_cannot_be_registered_by_two_tenants(tenant: Tenant, tenant_b: Tenant) -> None:
    from core.errors import ApplicationError

    whatsapp_connection(pnid=PNID_A)
    telegram_connection(token=TG_TOKEN)
    twilio_connection()
    with in_tenant(tenant_b):
        with pytest.raises(ApplicationError, match="already uses"):
            whatsapp_connection(pnid=PNID_A)
        with pytest.raises(ApplicationError, match="already uses"):
            telegram_connection(token=TG_TOKEN)
        with pytest.raises(ApplicationError, match="already uses"):
            twilio_connection()
        # e-mail senders may be shared (no webhooks to route)
        for _ in range(2):
            services.connection_create(
                provider="email",
                name="Mail",
                credentials={"host": "127.0.0.1"},
                external_id="noreply@example.org",
                by_operator=True,
            )
        assert list(Connection.objects.exclude(provider="sandbox").values_list("provider", flat=True)) == [
            "email",
            "email",
        ]


@pytest.mark.usefixtures("tenant")
def test_tenant_b_admin_lists_only_its_own_messenger_data(
    client_public: Client, client_b: Client, tenant: Tenant, tenant_b: Tenant
) -> None:
    conn_a = whatsapp_connection(pnid=PNID_A, app_secret=SECRET_A, name="Nur-A-Nummer")
    services.contact_get_or_create(connection=conn_a, address="+4911111", display_name="Anna Aus-A")
    body_a = meta_json(wa_envelope((PNID_A, {"messages": [wa_text("wamid.ONLY-A", "4911222", "Geheim A", TS)]})))
    assert post_whatsapp(client_public, body_a, secret=SECRET_A).status_code == 200
    apply_all()
    assert InboundMessage.objects.filter(text="Geheim A").exists()
    with in_tenant(tenant_b):
        conn_b = whatsapp_connection(pnid=PNID_B, app_secret=SECRET_B, name="Nur-B-Nummer")
        services.contact_get_or_create(connection=conn_b, address="+4922222", display_name="Berta Aus-B")
        admin_b = make_user(roles.ADMIN, username="chef_b")
        enrol_totp(admin_b)
        client_b.force_login(admin_b)
    pages = {
        "/admin/messengers/connection/": ("Nur-B-Nummer", "Nur-A-Nummer"),
        "/admin/messengers/contact/": ("Berta Aus-B", "Anna Aus-A"),
        "/admin/messengers/inboundmessage/": ("", "Geheim A"),
        "/admin/messengers/webhookevent/": ("", "wamid.ONLY-A"),
    }
    for path, (present, absent) in pages.items():
        with in_tenant(tenant_b):
            response = client_b.get(path)
        assert response.status_code == 200, path
        html = response.content.decode()
        assert present in html
        assert absent not in html, path
    with in_tenant(tenant_b):
        assert not Contact.objects.filter(display_name="Anna Aus-A").exists()
