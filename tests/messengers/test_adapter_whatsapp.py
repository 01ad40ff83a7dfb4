"""WhatsAppAdapter against the fake Cloud API over loopback HTTP."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messengers.adapters import get_adapter
from messengers.adapters._http import unix_time
from messengers.adapters.base import (
    Button,
    ConnectionConfig,
    ErrorKind,
    InboundMessage,
    Media,
    OutgoingMessage,
    Provider,
    ProviderError,
    StatusEvent,
    TemplateRef,
    WebhookParseError,
    WebhookRequest,
)
from messengers.adapters.whatsapp import WhatsAppAdapter, classify, graph_root, whatsapp_routing_ids
from tests.fakes.common import RecordingServer
from tests.fakes.fixtures import WA_APP_SECRET, WA_PHONE_NUMBER_ID, WA_TOKEN, WA_VERIFY_TOKEN, WA_WABA_ID
from tests.fakes.strategies import json_values, wa_envelopes
from tests.fakes.whatsapp import FakeWhatsApp
from tests.messengers.support import meta_json, wa_envelope

TO = "+49 170 1234567"
WA_ID = "491701234567"
FUZZ = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# providers.md 6b, third row: the exact bytes (one line, \u escapes as sent by Meta)
ESCAPED_BODY = (
    rb'{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":'
    rb'{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":'
    rb'"106540352242922"},"messages":[{"from":"491701234567","id":"wamid.X","timestamp":"1749416383",'
    rb'"type":"text","text":{"body":"Stra\u00dfe gesperrt? \ud83d\ude2e"}}]}}]}]}'
)
ESCAPED_SIGNATURE = "sha256=5c74127093fbb501c61072a1b4374f521168a0fc23b52d5022e3b29a0d588ce4"


def make_config(fake: FakeWhatsApp | None = None, **overrides: Any) -> ConnectionConfig:
    config = ConnectionConfig(
        provider=Provider.WHATSAPP,
        credentials={"access_token": WA_TOKEN, "app_secret": WA_APP_SECRET, "verify_token": WA_VERIFY_TOKEN},
        external_id=WA_PHONE_NUMBER_ID,
        account_id=WA_WABA_ID,
        api_base=fake.url if fake else "http://127.0.0.1:9",
        timeout=5.0,
        connection_id=1,
    )
    return replace(config, **overrides)


def adapter_for(fake: FakeWhatsApp | None = None, **overrides: Any) -> WhatsAppAdapter:
    adapter = get_adapter(make_config(fake, **overrides))
    assert isinstance(adapter, WhatsAppAdapter)
    return adapter


def last_body(fake: FakeWhatsApp) -> dict[str, Any]:
    body: dict[str, Any] = fake.requests(kind="send")[-1]["body"]
    return body


def webhook(body: bytes, signature: str | None = None) -> WebhookRequest:
    headers = {"content-type": "application/json"}
    if signature is not None:
        headers["x-hub-signature-256"] = signature
    return WebhookRequest(method="POST", url="https://app.example/webhooks/whatsapp/", headers=headers, body=body)


def pushed(sink: RecordingServer) -> list[WebhookRequest]:
    return [WebhookRequest(method=r.method, url=r.url, headers=r.headers, body=r.body) for r in sink.received()]


# ------------------------------------------------------------------ registry, config
def test_registry_and_repr_hide_credentials() -> None:
    adapter = adapter_for()
    assert adapter.provider is Provider.WHATSAPP and adapter.native_async
    assert WA_TOKEN not in repr(adapter) and WA_APP_SECRET not in repr(adapter)
    assert graph_root("") == "https://graph.facebook.com/v23.0"
    assert graph_root("http://127.0.0.1:8080/") == "http://127.0.0.1:8080/v23.0"
    assert graph_root("https://graph.facebook.com/v25.0") == "https://graph.facebook.com/v25.0"


# ------------------------------------------------------------------ sending
def test_send_text(wa_fake: FakeWhatsApp) -> None:
    wa_fake.open_window(WA_ID)
    result = adapter_for(wa_fake).send(OutgoingMessage(to=TO, text="Sperrung Hauptstraße", reference="d-1"))
    assert result.provider_message_id.startswith("wamid.") and result.provider_status == "accepted"
    assert last_body(wa_fake) == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "+491701234567",
        "type": "text",
        "text": {"preview_url": False, "body": "Sperrung Hauptstraße"},
        "biz_opaque_callback_data": "d-1",
    }
    assert wa_fake.sent_messages()[-1]["id"] == result.provider_message_id


def test_send_media_link_buttons_and_reply_context(wa_fake: FakeWhatsApp) -> None:
    adapter = adapter_for(wa_fake)
    adapter.send(
        OutgoingMessage(
            to=TO,
            text="Flyer",
            media=Media(url="https://cdn.example.org/f.jpg"),
            buttons=(Button(title="Details", url="https://example.org/r/1"),),
            reply_to_provider_id="wamid.PREV",
        )
    )
    body = last_body(wa_fake)
    assert body["type"] == "image"
    assert body["image"] == {
        "link": "https://cdn.example.org/f.jpg",
        "caption": "Flyer\n\nDetails: https://example.org/r/1",
    }
    assert body["context"] == {"message_id": "wamid.PREV"}
    adapter.send(OutgoingMessage(to=TO, text="", media=Media(url="https://cdn.example.org/v.mp4", kind="video")))
    assert last_body(wa_fake)["video"] == {"link": "https://cdn.example.org/v.mp4"}


def test_send_reply_buttons_as_interactive(wa_fake: FakeWhatsApp) -> None:
    buttons = (Button(title="Ja, ich komme gerne vorbei", payload="rsvp:yes"), Button(title="Nein", payload="rsvp:no"))
    adapter_for(wa_fake).send(
        OutgoingMessage(to=TO, text="Kommen Sie?", media=Media(url="https://cdn.example.org/h.jpg"), buttons=buttons)
    )
    body = last_body(wa_fake)
    assert body["type"] == "interactive"
    interactive = body["interactive"]
    assert interactive["type"] == "button"
    assert interactive["body"] == {"text": "Kommen Sie?"}
    assert interactive["header"] == {"type": "image", "image": {"link": "https://cdn.example.org/h.jpg"}}
    assert interactive["action"]["buttons"][0] == {
        "type": "reply",
        "reply": {"id": "rsvp:yes", "title": "Ja, ich komme gerne "},
    }
    too_many = tuple(Button(title=str(i), payload=f"p{i}") for i in range(4))
    count = len(wa_fake.requests())
    with pytest.raises(ProviderError) as error:
        adapter_for(wa_fake).send(OutgoingMessage(to=TO, text="?", buttons=too_many))
    assert error.value.kind is ErrorKind.BAD_REQUEST
    assert len(wa_fake.requests()) == count  # refused before any request


def test_send_template(wa_fake: FakeWhatsApp, sink: RecordingServer) -> None:
    template = TemplateRef(
        name="citizen_alert_v2",
        language="de",
        body_params=("Hauptstraße", "08:00"),
        header_media=Media(url="https://cdn.example.org/map.png"),
        button_params=((1, "c42?t=abc"),),
    )
    result = adapter_for(wa_fake).send(OutgoingMessage(to=TO, template=template, reference="d-9"))
    assert result.provider_status == "accepted"
    body = last_body(wa_fake)
    assert body["type"] == "template"
    assert body["template"] == {
        "name": "citizen_alert_v2",
        "language": {"code": "de", "policy": "deterministic"},
        "components": [
            {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://cdn.example.org/map.png"}}]},
            {
                "type": "body",
                "parameters": [{"type": "text", "text": "Hauptstraße"}, {"type": "text", "text": "08:00"}],
            },
            {"type": "button", "sub_type": "url", "index": "1", "parameters": [{"type": "text", "text": "c42?t=abc"}]},
        ],
    }
    assert wa_fake.wait_idle(10)
    events = [e for r in pushed(sink) for e in adapter_for(wa_fake).parse_webhook(r)]
    assert {e.status for e in events if isinstance(e, StatusEvent)} == {"sent", "delivered", "read"}


@pytest.mark.parametrize(
    ("template", "code"),
    [
        (TemplateRef(name="missing", language="de"), "132001"),
        (TemplateRef(name="paused_promo", language="de"), "132015"),
        (TemplateRef(name="disabled_promo", language="de"), "132016"),
        (TemplateRef(name="newsletter_update", language="de", body_params=("only one",)), "132000"),
    ],
)
def test_template_problems(wa_fake: FakeWhatsApp, template: TemplateRef, code: str) -> None:
    with pytest.raises(ProviderError) as error:
        adapter_for(wa_fake).send(OutgoingMessage(to=TO, template=template))
    assert error.value.kind is ErrorKind.TEMPLATE_PROBLEM and error.value.code == code
    assert error.value.permanent


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (131026, ErrorKind.NOT_ON_MESSENGER),
        (131047, ErrorKind.WINDOW_CLOSED),
        (131056, ErrorKind.PAIR_RATE),
        (368, ErrorKind.ACCOUNT_PROBLEM),
        (131031, ErrorKind.ACCOUNT_PROBLEM),
        (131042, ErrorKind.ACCOUNT_PROBLEM),
        (132000, ErrorKind.TEMPLATE_PROBLEM),
        (132001, ErrorKind.TEMPLATE_PROBLEM),
        (132015, ErrorKind.TEMPLATE_PROBLEM),
        (132016, ErrorKind.TEMPLATE_PROBLEM),
        (100, ErrorKind.BAD_REQUEST),
        (131008, ErrorKind.BAD_REQUEST),
        (131009, ErrorKind.BAD_REQUEST),
        (131051, ErrorKind.BAD_REQUEST),
        (1, ErrorKind.TEMPORARY),
        (2, ErrorKind.TEMPORARY),
        (131000, ErrorKind.TEMPORARY),
        (131016, ErrorKind.TEMPORARY),
        (131057, ErrorKind.TEMPORARY),
        (190, ErrorKind.BAD_CREDENTIALS),
        (130429, ErrorKind.RATE_LIMITED),
    ],
)
def test_errors_are_classified_by_code(wa_fake: FakeWhatsApp, code: int, kind: ErrorKind) -> None:
    # a misleading HTTP status on purpose: classification must follow the code in the body
    wa_fake.fail_next(1, "error", code=code, http_status=400)
    with pytest.raises(ProviderError) as error:
        adapter_for(wa_fake).send(OutgoingMessage(to=TO, text="x"))
    assert error.value.kind is kind
    assert error.value.code == str(code) and error.value.http_status == 400
    if code != 190:  # token errors use Graph's classic message instead of "(#code) title"
        assert error.value.message.startswith(f"(#{code})")


def test_bad_token_is_bad_credentials(wa_fake: FakeWhatsApp) -> None:
    adapter = adapter_for(wa_fake, credentials={"access_token": "stale", "app_secret": "x"})
    with pytest.raises(ProviderError) as error:
        adapter.send(OutgoingMessage(to=TO, text="x"))
    assert error.value.kind is ErrorKind.BAD_CREDENTIALS and error.value.affects_connection
    assert "stale" not in str(error.value)


def test_rate_limits_carry_retry_after(wa_fake: FakeWhatsApp) -> None:
    adapter = adapter_for(wa_fake)
    wa_fake.fail_next(1, "rate_limit", http_status=400)
    with pytest.raises(ProviderError) as error:
        adapter.send(OutgoingMessage(to=TO, text="x"))
    assert error.value.kind is ErrorKind.RATE_LIMITED and error.value.retry_after == 1.0
    assert error.value.retryable
    wa_fake.fail_next(1, "rate_limit", http_status=429, retry_after=3)
    with pytest.raises(ProviderError) as error:
        adapter.send(OutgoingMessage(to=TO, text="x"))
    assert error.value.retry_after == 3.0 and error.value.http_status == 429
    wa_fake.fail_next(1, "error", code=131056)
    with pytest.raises(ProviderError) as error:
        adapter.send(OutgoingMessage(to=TO, text="x"))
    assert error.value.kind is ErrorKind.PAIR_RATE and error.value.retry_after == 6.0
    wa_fake.configure(rate=1)
    kinds = set()
    for _ in range(4):
        try:
            adapter.send(OutgoingMessage(to=TO, text="x"))
        except ProviderError as exc:
            kinds.add((exc.kind, exc.code))
    assert (ErrorKind.RATE_LIMITED, "130429") in kinds


def test_server_errors_resets_and_timeouts_are_temporary(wa_fake: FakeWhatsApp) -> None:
    adapter = adapter_for(wa_fake, timeout=0.5)
    wa_fake.configure(timeout_hold=3.0)
    for kind in ("5xx", "reset", "timeout"):
        wa_fake.fail_next(1, kind)
        with pytest.raises(ProviderError) as error:
            adapter.send(OutgoingMessage(to=TO, text="x"))
        assert error.value.kind is ErrorKind.TEMPORARY, kind
        assert WA_TOKEN not in str(error.value)
    with pytest.raises(ProviderError) as error:
        adapter_for(None).send(OutgoingMessage(to=TO, text="x"))
    assert error.value.kind is ErrorKind.TEMPORARY and "network error" in error.value.message


def test_unknown_codes_fall_back_on_http_status() -> None:
    assert classify(999999, 503) is ErrorKind.TEMPORARY
    assert classify(999999, 429) is ErrorKind.RATE_LIMITED
    assert classify(999999, 400) is ErrorKind.BAD_REQUEST
    assert classify(250) is ErrorKind.ACCOUNT_PROBLEM
    assert classify(None, 401) is ErrorKind.BAD_CREDENTIALS


def test_send_async_shares_the_request_and_error_code(wa_fake: FakeWhatsApp) -> None:
    adapter = adapter_for(wa_fake)
    wa_fake.open_window(WA_ID)

    async def run() -> tuple[list[str], ProviderError, ProviderError]:
        async with aiohttp.ClientSession() as session:
            results = await asyncio.gather(
                *(
                    adapter.send_async(session, OutgoingMessage(to=TO, text=f"m{i}", reference=f"r{i}"))
                    for i in range(20)
                )
            )
            wa_fake.fail_next(1, "rate_limit", http_status=400)
            try:
                await adapter.send_async(session, OutgoingMessage(to=TO, text="x"))
            except ProviderError as exc:
                limited = exc
            try:
                await adapter_for(None).send_async(session, OutgoingMessage(to=TO, text="x"))
            except ProviderError as exc:
                offline = exc
        return [r.provider_message_id for r in results], limited, offline

    ids, limited, offline = asyncio.run(run())
    assert len(set(ids)) == 20 and all(i.startswith("wamid.") for i in ids)
    assert {m["reference"] for m in wa_fake.sent_messages()} >= {f"r{i}" for i in range(20)}
    assert limited.kind is ErrorKind.RATE_LIMITED and limited.retry_after == 1.0
    assert offline.kind is ErrorKind.TEMPORARY


# ------------------------------------------------------------------ webhooks
def test_signature_test_vectors() -> None:
    sanity = adapter_for(credentials={"app_secret": "secret"})
    good = "sha256=0329a06b62cd16b33eb6792be8c60b158d89a2ee3a876fce9a881ebb488c0914"
    assert sanity.verify_webhook(webhook(b"test", good))
    adapter = adapter_for(credentials={"app_secret": "app_secret_123"})
    assert adapter.verify_webhook(webhook(ESCAPED_BODY, ESCAPED_SIGNATURE))
    payload = json.loads(ESCAPED_BODY)
    assert json.dumps(payload, separators=(",", ":"), ensure_ascii=True).encode() == ESCAPED_BODY
    (event,) = adapter.parse_webhook(webhook(ESCAPED_BODY, ESCAPED_SIGNATURE))
    assert isinstance(event, InboundMessage) and event.text == "Straße gesperrt? 😮"
    # the same JSON re-serialized with raw UTF-8 is different bytes: the signature must fail
    utf8 = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    assert not adapter.verify_webhook(webhook(utf8, ESCAPED_SIGNATURE))


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        "sha256=",
        "sha1=0329a06b62cd16b33eb6792be8c60b158d89a2ee3a876fce9a881ebb488c0914",
        "sha256=" + "0" * 64,
        "sha256=ümlaut",
    ],
)
def test_wrong_or_missing_signature_is_rejected(signature: str | None) -> None:
    adapter = adapter_for(credentials={"app_secret": "secret"})
    assert not adapter.verify_webhook(webhook(b"test", signature))
    no_secret = adapter_for(credentials={"access_token": "t"})
    good = "sha256=0329a06b62cd16b33eb6792be8c60b158d89a2ee3a876fce9a881ebb488c0914"
    assert not no_secret.verify_webhook(webhook(b"test", good))


def test_fake_status_webhooks_verify_and_parse(wa_fake: FakeWhatsApp, sink: RecordingServer) -> None:
    adapter = adapter_for(wa_fake)
    wa_fake.open_window(WA_ID)
    wa_fake.configure(batch_size=5)
    ok = adapter.send(OutgoingMessage(to=TO, text="a", reference="ref-ok"))
    closed = adapter.send(OutgoingMessage(to="+491709999999", text="b", reference="ref-closed"))
    assert wa_fake.wait_idle(10)
    events: list[StatusEvent] = []
    for request in pushed(sink):
        assert adapter.verify_webhook(request)
        assert whatsapp_routing_ids(request.body) == {WA_PHONE_NUMBER_ID}
        events += [e for e in adapter.parse_webhook(request) if isinstance(e, StatusEvent)]
    by_id = {(e.provider_message_id, e.status): e for e in events}
    for status in ("sent", "delivered", "read"):
        event = by_id[(ok.provider_message_id, status)]
        assert event.reference == "ref-ok" and event.recipient == WA_ID and event.error_kind is None
        assert event.account_id == WA_PHONE_NUMBER_ID and event.at.tzinfo is not None
    failed = by_id[(closed.provider_message_id, "failed")]
    assert failed.error_code == "131047" and failed.error_title == "Re-engagement message"
    assert failed.error_kind is ErrorKind.WINDOW_CLOSED and failed.reference == "ref-closed"
    assert failed.dedupe_key == f"status:{closed.provider_message_id}:failed"


@pytest.mark.parametrize(
    ("kind", "extra", "expected"),
    [
        ("text", {"text": "Ist die Straße frei?"}, {"kind": "text", "text": "Ist die Straße frei?"}),
        ("image", {"text": "Foto", "media_id": "m-1"}, {"kind": "image", "text": "Foto"}),
        ("video", {}, {"kind": "video"}),
        ("audio", {}, {"kind": "audio"}),
        ("document", {}, {"kind": "document"}),
        ("sticker", {}, {"kind": "sticker"}),
        ("location", {"text": "Rathaus"}, {"kind": "location", "text": "Rathaus"}),
        ("contacts", {"text": "Max Muster"}, {"kind": "contacts", "text": "Max Muster"}),
        (
            "reaction",
            {"text": "👍", "context_id": "wamid.OURS"},
            {"kind": "reaction", "text": "👍", "reply": "wamid.OURS"},
        ),
        (
            "button",
            {"text": "Verstanden", "payload": "ACK:c42", "context_id": "wamid.TPL"},
            {"kind": "button", "text": "Verstanden", "payload": "ACK:c42", "reply": "wamid.TPL"},
        ),
        (
            "interactive",
            {"text": "Ja", "payload": "rsvp:yes", "context_id": "wamid.Q"},
            {"kind": "interactive", "text": "Ja", "payload": "rsvp:yes", "reply": "wamid.Q"},
        ),
        (
            "list_reply",
            {"text": "Zeile", "payload": "row-2"},
            {"kind": "interactive", "text": "Zeile", "payload": "row-2"},
        ),
        ("unsupported", {}, {"kind": "unknown"}),
    ],
)
def test_fake_inbound_webhooks_parse(
    wa_fake: FakeWhatsApp, sink: RecordingServer, kind: str, extra: dict[str, Any], expected: dict[str, Any]
) -> None:
    adapter = adapter_for(wa_fake)
    result = wa_fake.inbound(sender=WA_ID, kind=kind, name="Erika Muster", **extra)
    assert wa_fake.wait_idle(10)
    (request,) = pushed(sink)
    assert adapter.verify_webhook(request)
    (event,) = adapter.parse_webhook(request)
    assert isinstance(event, InboundMessage)
    assert event.provider_message_id == result["id"] and event.sender == WA_ID
    assert event.sender_name == "Erika Muster" and event.account_id == WA_PHONE_NUMBER_ID
    assert event.kind == expected["kind"]
    assert event.text == expected.get("text", event.text)
    if "payload" in expected:
        assert event.payload["payload"] == expected["payload"]
    if "reply" in expected:
        assert event.reply_to_provider_id == expected["reply"]
    if kind == "unsupported":
        assert event.payload["type"] == "unsupported" and "message" in event.payload


def test_parse_ignores_other_fields_and_unknown_statuses() -> None:
    adapter = adapter_for()
    body = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "1",
                "changes": [
                    {"field": "message_template_status_update", "value": {"event": "APPROVED"}},
                    {
                        "field": "messages",
                        "value": {
                            "metadata": {"phone_number_id": "111"},
                            "statuses": [{"id": "wamid.A", "status": "deleted", "timestamp": "1"}],
                            "messages": [{"id": "wamid.B", "from": "49", "timestamp": 5, "type": "order", "order": {}}],
                        },
                    },
                    {"field": "messages", "value": {"metadata": {"phone_number_id": "222"}}},
                ],
            }
        ],
    }
    raw = json.dumps(body).encode()
    (event,) = adapter.parse_webhook(webhook(raw))
    assert isinstance(event, InboundMessage) and event.kind == "unknown" and event.account_id == "111"
    assert whatsapp_routing_ids(raw) == {"111", "222"}


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'{"object":"page","entry":[]}',
        b'{"object":"whatsapp_business_account","entry":{}}',
        b'{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":[]}]}]}',
        b'{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"statuses":[{"status":"sent"}]}}]}]}',
        b'{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"statuses":[{"id":"w","status":"sent","timestamp":"x"}]}}]}]}',
        b"\xff\xfe",
    ],
)
def test_malformed_bodies_raise_parse_error(body: bytes) -> None:
    with pytest.raises(WebhookParseError):
        adapter_for().parse_webhook(webhook(body))


def test_routing_ids_reject_malformed() -> None:
    for body in (b"{", b"[]", b'{"entry":"x"}'):
        with pytest.raises(WebhookParseError):
            whatsapp_routing_ids(body)


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_parse_arbitrary_bytes(body: bytes) -> None:
    adapter = adapter_for()
    try:
        adapter.parse_webhook(webhook(body))
    except WebhookParseError:
        pass
    try:
        whatsapp_routing_ids(body)
    except WebhookParseError:
        pass


@FUZZ
@given(st.one_of(json_values, wa_envelopes))
def test_fuzz_parse_arbitrary_json(value: Any) -> None:
    body = json.dumps(value).encode()
    adapter = adapter_for()
    try:
        events = adapter.parse_webhook(webhook(body))
    except WebhookParseError:
        return
    for event in events:
        assert isinstance(event, StatusEvent | InboundMessage)
        assert event.dedupe_key
    try:
        whatsapp_routing_ids(body)
    except WebhookParseError:
        pass


# ------------------------------------------------------------------ account
def test_check_credentials(wa_fake: FakeWhatsApp) -> None:
    good = adapter_for(wa_fake).check_credentials()
    # the number, not the verified name: no free text of the remote side (messengers.endpoints)
    assert good.ok and good.detail == "Connected: WhatsApp number 15550783881"
    assert good.info["id"] == WA_PHONE_NUMBER_ID
    bad = adapter_for(wa_fake, credentials={"access_token": "nope"}).check_credentials()
    assert not bad.ok and "Access token rejected" in bad.detail and "nope" not in bad.detail
    wa_fake.configure(strict_numbers=True)
    unknown = adapter_for(wa_fake, external_id="999").check_credentials()
    assert not unknown.ok and "999" in unknown.detail and "code 100" in unknown.detail
    offline = adapter_for(None).check_credentials()
    assert not offline.ok and "not reachable" in offline.detail
    assert not adapter_for(wa_fake, external_id="").check_credentials().ok


def test_list_templates_follows_paging(wa_fake: FakeWhatsApp) -> None:
    for i in range(120):
        wa_fake.add_template(name=f"bulk_{i:03d}", language="de", body="Hallo {{1}}, {{2}}")
    templates = adapter_for(wa_fake).list_templates()
    assert len(templates) == 128
    paths = [r["query"].get("after") for r in wa_fake.requests(kind="templates")]
    assert paths[0] is None and paths[1]  # the second page used the cursor
    alert = next(t for t in templates if t.name == "citizen_alert_v2")
    assert alert.language == "de" and alert.category == "UTILITY" and alert.status == "APPROVED"
    assert alert.parameter_count == 2 and alert.body == "Achtung: {{1}} ist ab {{2}} gesperrt."
    assert {t.status for t in templates} >= {"APPROVED", "PAUSED", "DISABLED", "PENDING"}
    with pytest.raises(ProviderError) as error:
        adapter_for(wa_fake, credentials={"access_token": "nope"}).list_templates()
    assert error.value.kind is ErrorKind.BAD_CREDENTIALS


def test_handshake_and_mark_read(wa_fake: FakeWhatsApp) -> None:
    adapter = adapter_for(wa_fake)
    query = {"hub.mode": "subscribe", "hub.verify_token": WA_VERIFY_TOKEN, "hub.challenge": "1158201444"}
    assert adapter.handshake_challenge(query) == "1158201444"
    assert adapter.handshake_challenge({**query, "hub.verify_token": "wrong"}) is None
    assert adapter.handshake_challenge({**query, "hub.mode": "unsubscribe"}) is None
    inbound = wa_fake.inbound(sender=WA_ID, text="hi")
    assert adapter.mark_read(inbound["id"])
    assert not adapter.mark_read("wamid.unknown")


@pytest.mark.parametrize("digits", ["²", "٣", "１２"])  # digits to str.isdigit(), not to int()
def test_non_ascii_digits_in_codes_and_timestamps_do_not_crash_the_parser(digits: str) -> None:
    status: dict[str, Any] = {"id": "wamid.X", "status": "failed", "timestamp": "1700000000", "recipient_id": "49"}
    status["errors"] = [{"code": digits, "title": "x"}]
    body = meta_json(wa_envelope((WA_PHONE_NUMBER_ID, {"statuses": [status]})))
    (event,) = adapter_for().parse_webhook(webhook(body))
    assert isinstance(event, StatusEvent) and event.status == "failed"
    with pytest.raises(WebhookParseError):
        unix_time(digits)
