"""WhatsAppAdapter webhooks: signatures, parsing the fake's and hand-made bodies, fuzzing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messengers.adapters._http import unix_time
from messengers.adapters.base import (
    ErrorKind,
    InboundMessage,
    OutgoingMessage,
    StatusEvent,
    WebhookParseError,
)
from messengers.adapters.whatsapp import whatsapp_routing_ids
from tests.fakes.common import RecordingServer
from tests.fakes.fixtures import WA_PHONE_NUMBER_ID
from tests.fakes.strategies import json_values, wa_envelopes
from tests.fakes.whatsapp import FakeWhatsApp
from tests.messengers.support import meta_json, wa_envelope
from tests.messengers.whatsapp_helpers import TO, WA_ID, adapter_for, pushed, webhook

FUZZ = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# providers.md 6b, third row: the exact bytes (one line, \u escapes as sent by Meta)
ESCAPED_BODY = (
    rb'{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":'
    rb'{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":'
    rb'"106540352242922"},"messages":[{"from":"491701234567","id":"wamid.X","timestamp":"1749416383",'
    rb'"type":"text","text":{"body":"Stra\u00dfe gesperrt? \ud83d\ude2e"}}]}}]}]}'
)
ESCAPED_SIGNATURE = "sha256=5c74127093fbb501c61072a1b4374f521168a0fc23b52d5022e3b29a0d588ce4"


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


@pytest.mark.parametrize("digits", ["²", "٣", "１２"])  # digits to str.isdigit(), not to int()
def test_non_ascii_digits_in_codes_and_timestamps_do_not_crash_the_parser(digits: str) -> None:
    status: dict[str, Any] = {"id": "wamid.X", "status": "failed", "timestamp": "1700000000", "recipient_id": "49"}
    status["errors"] = [{"code": digits, "title": "x"}]
    body = meta_json(wa_envelope((WA_PHONE_NUMBER_ID, {"statuses": [status]})))
    (event,) = adapter_for().parse_webhook(webhook(body))
    assert isinstance(event, StatusEvent) and event.status == "failed"
    with pytest.raises(WebhookParseError):
        unix_time(digits)
