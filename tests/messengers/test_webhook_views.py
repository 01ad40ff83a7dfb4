"""The three webhook endpoints through the Django test client, on the platform's public domain:
signatures (403 and nothing stored), malformed bodies (400), routing (404), the Meta handshake,
and bodies pushed by the fake providers replayed byte for byte."""

from __future__ import annotations

import json

import pytest
from django.test import Client, override_settings

from messengers.models import WebhookEvent
from tenants.models import Tenant
from tests.fakes.common import RecordingServer
from tests.fakes.fixtures import TG_SECRET, TW_NUMBER, TW_TOKEN, WA_APP_SECRET, WA_PHONE_NUMBER_ID, WA_VERIFY_TOKEN
from tests.fakes.telegram import FakeTelegram
from tests.fakes.twilio import FakeTwilio
from tests.fakes.whatsapp import FakeWhatsApp
from tests.messengers.support import (
    events_per_tenant,
    meta_json,
    meta_signature,
    post_telegram,
    post_twilio,
    post_whatsapp,
    replay,
    route_path,
    telegram_connection,
    twilio_connection,
    twilio_signature,
    wa_envelope,
    wa_status,
    wa_text,
    whatsapp_connection,
)

pytestmark = pytest.mark.usefixtures("tenant")

TS = 1_749_416_383


def nothing_stored(*tenants: Tenant) -> bool:
    return set(events_per_tenant(tenants).values()) == {0}


def status_body(pnid: str = WA_PHONE_NUMBER_ID, wamid: str = "wamid.A", status: str = "delivered") -> bytes:
    return meta_json(wa_envelope((pnid, {"statuses": [wa_status(wamid, status, TS)]})))


# --------------------------------------------------------------------------------------------
# Our signing helpers agree with the published test vectors (providers.md 6b)
# --------------------------------------------------------------------------------------------
def test_signing_helpers_reproduce_the_test_vectors() -> None:
    params = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+12349013030"),
        ("Digits", "1234"),
        ("From", "+12349013030"),
        ("To", "+18005551212"),
    ]
    assert twilio_signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", params) == (
        "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    )
    assert meta_signature("secret", b"test") == (
        "sha256=0329a06b62cd16b33eb6792be8c60b158d89a2ee3a876fce9a881ebb488c0914"
    )
    payload = wa_envelope(
        (WA_PHONE_NUMBER_ID, {"messages": [wa_text("wamid.X", "491701234567", "Straße gesperrt? 😮", TS)]})
    )
    payload["entry"][0]["id"] = "1"
    body = meta_json(payload)
    assert body == (
        rb'{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":'
        rb'{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":'
        rb'"106540352242922"},"messages":[{"from":"491701234567","id":"wamid.X","timestamp":"1749416383",'
        rb'"type":"text","text":{"body":"Stra\u00dfe gesperrt? \ud83d\ude2e"}}]}}]}]}'
    )
    assert meta_signature("app_secret_123", body) == (
        "sha256=5c74127093fbb501c61072a1b4374f521168a0fc23b52d5022e3b29a0d588ce4"
    )


# --------------------------------------------------------------------------------------------
# WhatsApp
# --------------------------------------------------------------------------------------------
def test_whatsapp_signed_body_on_the_shared_url_is_stored_once_however_often_it_arrives(
    client_public: Client, tenant: Tenant, tenant_b: Tenant
) -> None:
    conn = whatsapp_connection()
    body = meta_json(
        wa_envelope(
            (
                WA_PHONE_NUMBER_ID,
                {
                    "contacts": [{"profile": {"name": "Erika Muster"}, "wa_id": "491701234567"}],
                    "messages": [wa_text("wamid.IN1", "491701234567", "Ist die Straße wieder frei?", TS)],
                    "statuses": [wa_status("wamid.OUT1", "sent", TS), wa_status("wamid.OUT1", "delivered", TS + 1)],
                },
            )
        )
    )
    for _ in range(3):
        response = post_whatsapp(client_public, body)
        assert response.status_code == 200, response.content
    events = WebhookEvent.objects.filter(connection=conn)
    assert sorted(events.values_list("dedupe_key", flat=True)) == [
        "msg:wamid.IN1",
        "status:wamid.OUT1:delivered",
        "status:wamid.OUT1:sent",
    ]
    inbound = events.get(kind=WebhookEvent.Kind.INBOUND)
    assert inbound.payload["text"] == "Ist die Straße wieder frei?"
    assert inbound.payload["sender_name"] == "Erika Muster"
    assert events_per_tenant([tenant_b]) == {tenant_b.schema_name: 0}


def test_whatsapp_per_connection_url_accepts_its_own_signature(client_public: Client) -> None:
    conn = whatsapp_connection()
    response = post_whatsapp(client_public, status_body(), path=route_path(conn))
    assert response.status_code == 200
    assert list(WebhookEvent.objects.values_list("connection_id", "kind")) == [(conn.pk, "status")]


@pytest.mark.parametrize(
    "signature",
    [
        None,  # header missing
        "",
        "sha256=",
        "sha1=0329a06b62cd16b33eb6792be8c60b158d89a2ee3a876fce9a881ebb488c0914",
        meta_signature("another-app-secret", status_body()),
        meta_signature(WA_APP_SECRET, status_body() + b" "),  # over other bytes
        meta_signature(WA_APP_SECRET, status_body()).upper().replace("SHA256=", "sha256=") + "00",
    ],
    ids=["missing", "empty", "no-digest", "sha1", "other-secret", "other-bytes", "garbled"],
)
@pytest.mark.parametrize("use_route", [False, True], ids=["shared-url", "route-url"])
def test_whatsapp_bad_signature_is_refused_and_nothing_is_stored(
    client_public: Client, tenant: Tenant, tenant_b: Tenant, signature: str | None, use_route: bool
) -> None:
    conn = whatsapp_connection()
    path = route_path(conn) if use_route else "/webhooks/whatsapp/"
    if signature is None:
        response = post_whatsapp(client_public, status_body(), secret=None, path=path)
    else:
        response = post_whatsapp(client_public, status_body(), signature=signature, path=path)
    assert response.status_code == 403
    assert nothing_stored(tenant, tenant_b)


def test_whatsapp_signature_over_reserialised_json_is_refused(client_public: Client, tenant: Tenant) -> None:
    """Meta signs the \\u-escaped bytes; the same JSON re-encoded as UTF-8 is another body."""
    whatsapp_connection()
    payload = wa_envelope((WA_PHONE_NUMBER_ID, {"messages": [wa_text("wamid.U", "4917", "Grüße 😮", TS)]}))
    escaped = meta_json(payload)
    utf8 = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    assert escaped != utf8
    response = post_whatsapp(client_public, utf8, signature=meta_signature(WA_APP_SECRET, escaped))
    assert response.status_code == 403
    assert post_whatsapp(client_public, escaped).status_code == 200
    assert WebhookEvent.objects.get().payload["text"] == "Grüße 😮"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe\x00",
        b"[]",
        b'"whatsapp_business_account"',
        b'{"object":"page","entry":[]}',
        b'{"object":"whatsapp_business_account","entry":{}}',
        b'{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":[]}]}]}',
        b'{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":'
        b'{"statuses":[{"status":"read"}]}}]}]}',
        b'{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":'
        b'{"messages":[{"id":"wamid.T","from":"1","type":"text","timestamp":"soon"}]}}]}]}',
    ],
    ids=["empty", "text", "binary", "list", "string", "other-object", "entry-dict", "value-list", "no-id", "bad-ts"],
)
def test_whatsapp_malformed_but_signed_body_on_the_route_url_is_400(
    client_public: Client, tenant: Tenant, tenant_b: Tenant, body: bytes
) -> None:
    conn = whatsapp_connection()
    response = post_whatsapp(client_public, body, path=route_path(conn))
    assert response.status_code == 400, response.content
    assert nothing_stored(tenant, tenant_b)


@pytest.mark.parametrize("body", [b"not json", b"[1]", b'{"entry":5}', b'{"entry":[{"changes":"x"}]}'])
def test_whatsapp_malformed_but_signed_body_on_the_shared_url_is_400(
    client_public: Client, tenant: Tenant, body: bytes
) -> None:
    whatsapp_connection()
    assert post_whatsapp(client_public, body).status_code == 400
    assert nothing_stored(tenant)


def test_whatsapp_unknown_number_or_route_is_404(client_public: Client, tenant: Tenant) -> None:
    whatsapp_connection()
    assert post_whatsapp(client_public, status_body(pnid="999000111")).status_code == 404
    assert post_whatsapp(client_public, status_body(), path="/webhooks/whatsapp/no-such-route/").status_code == 404
    # a Telegram route key is not a WhatsApp route
    bot = telegram_connection()
    assert post_whatsapp(client_public, status_body(), path=f"/webhooks/whatsapp/{bot.route_key}/").status_code == 404
    assert nothing_stored(tenant)


def test_whatsapp_body_for_no_phone_number_stores_nothing(client_public: Client, tenant: Tenant) -> None:
    whatsapp_connection()
    body = meta_json({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": []}]})
    assert post_whatsapp(client_public, body).status_code == 200
    assert post_whatsapp(client_public, body, secret=None).status_code == 403  # unsigned: not from Meta
    assert nothing_stored(tenant)


def test_whatsapp_only_get_and_post(client_public: Client) -> None:
    conn = whatsapp_connection()
    assert client_public.put(route_path(conn), data=status_body()).status_code == 405
    assert client_public.delete("/webhooks/whatsapp/").status_code == 405


def test_meta_verify_handshake(client_public: Client) -> None:
    conn = whatsapp_connection()
    other = whatsapp_connection(pnid="555000111", verify_token="another-token", name="Zweite")
    good = {"hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": WA_VERIFY_TOKEN}
    for path in ("/webhooks/whatsapp/", route_path(conn)):
        response = client_public.get(path, good)
        assert response.status_code == 200
        assert response.content == b"1158201444"
        assert response["Content-Type"].startswith("text/plain")
    assert client_public.get("/webhooks/whatsapp/", {**good, "hub.verify_token": "wrong"}).status_code == 403
    # the token of one connection does not open another connection's URL
    assert client_public.get(route_path(other), good).status_code == 403
    assert client_public.get(route_path(other), {**good, "hub.verify_token": "another-token"}).status_code == 200
    assert client_public.get("/webhooks/whatsapp/", {**good, "hub.mode": "unsubscribe"}).status_code in (400, 403)
    assert client_public.get("/webhooks/whatsapp/", {"hub.challenge": "1"}).status_code in (400, 403)


def test_meta_handshake_follows_a_changed_verify_token(client_public: Client) -> None:
    from messengers import services

    conn = whatsapp_connection()
    services.connection_update(connection=conn, actor=None, credentials={"verify_token": "rotated"})
    query = {"hub.mode": "subscribe", "hub.challenge": "42"}
    assert client_public.get("/webhooks/whatsapp/", {**query, "hub.verify_token": WA_VERIFY_TOKEN}).status_code == 403
    assert client_public.get("/webhooks/whatsapp/", {**query, "hub.verify_token": "rotated"}).content == b"42"


def test_whatsapp_new_app_secret_takes_effect_at_once(client_public: Client) -> None:
    from messengers import services

    conn = whatsapp_connection()
    assert post_whatsapp(client_public, status_body(wamid="wamid.1")).status_code == 200  # caches the adapter
    services.connection_update(connection=conn, actor=None, credentials={"app_secret": "new-secret"})
    assert post_whatsapp(client_public, status_body(wamid="wamid.2")).status_code == 403
    assert post_whatsapp(client_public, status_body(wamid="wamid.3"), secret="new-secret").status_code == 200
    assert sorted(WebhookEvent.objects.values_list("dedupe_key", flat=True)) == [
        "status:wamid.1:delivered",
        "status:wamid.3:delivered",
    ]


def test_whatsapp_bodies_pushed_by_the_fake_are_accepted(
    client_public: Client, wa_fake: FakeWhatsApp, sink: RecordingServer
) -> None:
    conn = whatsapp_connection(api_base=wa_fake.url)
    wa_fake.inbound(sender="491701234567", kind="text", text="Grüezi 👋 — äöü")
    wa_fake.inbound(sender="491701234567", kind="location", text="Rathaus")
    assert wa_fake.wait_idle(20)
    received = sink.wait_for(2, timeout=20)
    assert len(received) == 2
    for item in received:
        assert replay(client_public, item, "/webhooks/whatsapp/").status_code == 200
        assert replay(client_public, item, route_path(conn)).status_code == 200
    kinds = sorted(WebhookEvent.objects.values_list("payload__kind", flat=True))
    assert kinds == ["location", "text"]
    assert WebhookEvent.objects.get(payload__kind="text").payload["text"] == "Grüezi 👋 — äöü"


# --------------------------------------------------------------------------------------------
# Telegram
# --------------------------------------------------------------------------------------------
def tg_update(update_id: int = 100001, text: str = "Hallo", chat: int = 123456789) -> bytes:
    message = {
        "message_id": 55,
        "from": {"id": chat, "is_bot": False, "first_name": "Erika"},
        "chat": {"id": chat, "first_name": "Erika", "type": "private"},
        "date": 1737277100,
        "text": text,
    }
    return json.dumps({"update_id": update_id, "message": message}).encode()


def test_telegram_update_with_the_secret_token_is_stored_once(client_public: Client) -> None:
    bot = telegram_connection(secret=TG_SECRET)
    for _ in range(3):
        response = post_telegram(client_public, bot, tg_update(), secret=TG_SECRET)
        assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert (event.connection_id, event.kind, event.dedupe_key) == (bot.pk, "inbound", "msg:123456789:55")


@pytest.mark.parametrize("secret", [None, "", "wrong", TG_SECRET + "x", TG_SECRET.upper()])
def test_telegram_wrong_or_missing_secret_is_refused(
    client_public: Client, tenant: Tenant, tenant_b: Tenant, secret: str | None
) -> None:
    bot = telegram_connection(secret=TG_SECRET)
    assert post_telegram(client_public, bot, tg_update(), secret=secret).status_code == 403
    assert nothing_stored(tenant, tenant_b)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"[]",
        b"{}",
        b'{"update_id":"7"}',
        b'{"update_id":1,"message":{"chat":{}}}',
        b'{"update_id":1,"message":{"message_id":1,"chat":{"id":5},"text":"x"}}',
    ],
    ids=["empty", "broken", "list", "no-update-id", "string-id", "no-chat-id", "no-date"],
)
def test_telegram_malformed_body_with_the_right_secret_is_400(
    client_public: Client, tenant: Tenant, body: bytes
) -> None:
    bot = telegram_connection(secret=TG_SECRET)
    assert post_telegram(client_public, bot, body, secret=TG_SECRET).status_code == 400
    assert nothing_stored(tenant)


def test_telegram_unknown_route_is_404(client_public: Client, tenant: Tenant) -> None:
    telegram_connection(secret=TG_SECRET)
    wa = whatsapp_connection()
    assert post_telegram(client_public, "/webhooks/telegram/nope/", tg_update(), secret=TG_SECRET).status_code == 404
    path = f"/webhooks/telegram/{wa.route_key}/"
    assert post_telegram(client_public, path, tg_update(), secret=TG_SECRET).status_code == 404
    assert nothing_stored(tenant)


def test_telegram_updates_pushed_by_the_fake_are_accepted(
    client_public: Client, tg_fake: FakeTelegram, sink: RecordingServer
) -> None:
    from messengers import selectors
    from messengers.adapters import get_adapter

    bot = telegram_connection(api_base=tg_fake.url)
    secret = selectors.connection_credentials(bot)["webhook_secret"]
    assert get_adapter(selectors.connection_config(bot)).register_webhook(sink.url + "/tg").ok
    tg_fake.inbound(chat_id=4242, kind="start", payload="t_8f3KQz")
    tg_fake.inbound(chat_id=4242, kind="block")
    assert tg_fake.wait_idle(20)
    received = sink.wait_for(2, timeout=20)
    assert [r.headers["x-telegram-bot-api-secret-token"] for r in received] == [secret, secret]
    for item in received:
        assert replay(client_public, item, route_path(bot)).status_code == 200
    assert sorted(WebhookEvent.objects.values_list("payload__kind", flat=True)) == ["block", "start"]


# --------------------------------------------------------------------------------------------
# Twilio
# --------------------------------------------------------------------------------------------
def tw_status(sid: str = "SM" + "1" * 32, status: str = "delivered", code: str = "") -> list[tuple[str, str]]:
    params = [
        ("SmsSid", sid),
        ("SmsStatus", status),
        ("MessageStatus", status),
        ("To", "+491701234567"),
        ("MessageSid", sid),
        ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
        ("From", TW_NUMBER),
        ("ApiVersion", "2010-04-01"),
    ]
    if code:
        params.append(("ErrorCode", code))
    return params


def tw_inbound(body: str = "Hallo", sid: str = "SM" + "2" * 32) -> list[tuple[str, str]]:
    return [
        ("MessageSid", sid),
        ("SmsSid", sid),
        ("SmsStatus", "received"),
        ("From", "+491701234567"),
        ("To", TW_NUMBER),
        ("Body", body),
        ("NumMedia", "0"),
    ]


def test_twilio_status_callback_and_inbound_message_are_stored(client_public: Client) -> None:
    conn = twilio_connection()
    path = route_path(conn) + "?ref=o17"
    response = post_twilio(client_public, path, tw_status(status="undelivered", code="30003"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/xml")
    assert b"<Response>" in response.content
    assert post_twilio(client_public, route_path(conn), tw_inbound("Wann kommt der Bus?")).status_code == 200
    # replays are no-ops
    post_twilio(client_public, path, tw_status(status="undelivered", code="30003"))
    post_twilio(client_public, route_path(conn), tw_inbound("Wann kommt der Bus?"))
    status = WebhookEvent.objects.get(kind="status")
    assert status.payload["status"] == "failed"
    assert status.payload["error_code"] == "30003"
    assert status.payload["reference"] == "o17"
    assert WebhookEvent.objects.get(kind="inbound").payload["text"] == "Wann kommt der Bus?"


@override_settings(PUBLIC_URL="https://messenger.example.org")
def test_twilio_signature_over_the_public_url_behind_a_proxy(client_public: Client) -> None:
    conn = twilio_connection()
    path = route_path(conn)
    signed = "https://messenger.example.org" + path
    assert post_twilio(client_public, path, tw_inbound(), signed_url=signed).status_code == 200
    assert WebhookEvent.objects.count() == 1


@pytest.mark.parametrize("case", ["missing", "other-token", "tampered", "other-url", "other-route"])
def test_twilio_bad_signature_is_refused(client_public: Client, tenant: Tenant, tenant_b: Tenant, case: str) -> None:
    conn = twilio_connection()
    path = route_path(conn)
    params = tw_inbound("STOP")
    if case == "missing":
        response = post_twilio(client_public, path, params, token=None)
    elif case == "other-token":
        response = post_twilio(client_public, path, params, token="f" * 32)
    elif case == "tampered":
        signature = twilio_signature(TW_TOKEN, f"http://localhost{path}", params)
        response = post_twilio(client_public, path, tw_inbound("START"), signature=signature)
    elif case == "other-url":
        response = post_twilio(client_public, path, params, signed_url="http://localhost/webhooks/twilio/x/")
    else:
        other = twilio_connection(name="SMS 2", number="+4930999999")
        response = post_twilio(client_public, route_path(other), params, signed_url=f"http://localhost{path}")
    assert response.status_code == 403
    assert nothing_stored(tenant, tenant_b)


def test_twilio_malformed_but_signed_body_is_400(client_public: Client, tenant: Tenant) -> None:
    conn = twilio_connection()
    path = route_path(conn)
    assert post_twilio(client_public, path, [("Foo", "bar")]).status_code == 400  # no MessageSid
    assert post_twilio(client_public, path, [("MessageSid", "SM1")]).status_code == 400  # neither kind
    # a JSON body signed over the URL alone (no form parameters)
    signature = twilio_signature(TW_TOKEN, f"http://localhost{path}", [])
    response = client_public.post(
        path, data=b'{"a":1}', content_type="application/json", HTTP_X_TWILIO_SIGNATURE=signature
    )
    assert response.status_code == 400
    assert nothing_stored(tenant)


def test_twilio_unknown_route_is_404(client_public: Client, tenant: Tenant) -> None:
    twilio_connection()
    assert post_twilio(client_public, "/webhooks/twilio/unknown/", tw_inbound()).status_code == 404
    assert nothing_stored(tenant)


def test_twilio_callbacks_pushed_by_the_fake_are_accepted(
    client_public: Client, tw_fake: FakeTwilio, sink: RecordingServer
) -> None:
    conn = twilio_connection(api_base=tw_fake.url)
    path = route_path(conn)
    tw_fake.configure(inbound_url=sink.url + path)
    tw_fake.inbound(sender="+491701234567", text="HILFE")
    assert tw_fake.wait_idle(20)
    (received,) = sink.wait_for(1, timeout=20)
    host = f"{sink.host}:{sink.port}"
    assert replay(client_public, received, path, host=host).status_code == 200
    assert replay(client_public, received, path, host="localhost").status_code == 403  # signed for another URL
    assert WebhookEvent.objects.get().payload["text"] == "HILFE"
