"""TwilioAdapter against the fake Messaging API over loopback HTTP."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl, urlencode

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from messengers.adapters import get_adapter
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
from messengers.adapters.twilio import TwilioAdapter, classify, twilio_signature, url_variants
from tests.fakes.common import RecordingServer
from tests.fakes.fixtures import TW_ACCOUNT, TW_NUMBER, TW_TOKEN
from tests.fakes.strategies import tw_forms
from tests.fakes.twilio import DEFAULT_SERVICE_SID, FakeTwilio

TO = "+491701234567"
FUZZ = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
# providers.md 6b, first row (Twilio's published example)
VECTOR_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
VECTOR_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+12349013030",
    "Digits": "1234",
    "From": "+12349013030",
    "To": "+18005551212",
}
VECTOR_SIGNATURE = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


def make_config(fake: FakeTwilio | None = None, webhook_url: str = "", **overrides: Any) -> ConnectionConfig:
    config = ConnectionConfig(
        provider=Provider.SMS,
        credentials={"auth_token": TW_TOKEN},
        external_id=TW_NUMBER,
        account_id=TW_ACCOUNT,
        api_base=fake.url if fake else "http://127.0.0.1:9",
        webhook_url=webhook_url,
        timeout=5.0,
        connection_id=3,
    )
    return replace(config, **overrides)


def adapter_for(fake: FakeTwilio | None = None, webhook_url: str = "", **overrides: Any) -> TwilioAdapter:
    adapter = get_adapter(make_config(fake, webhook_url, **overrides))
    assert isinstance(adapter, TwilioAdapter)
    return adapter


def last_form(fake: FakeTwilio) -> dict[str, Any]:
    form: dict[str, Any] = fake.requests(kind="send")[-1]["body"]
    return form


def form_request(
    url: str, params: dict[str, str] | bytes, signature: str | None, method: str = "POST"
) -> WebhookRequest:
    body = params if isinstance(params, bytes) else urlencode(params).encode()
    headers = {"content-type": "application/x-www-form-urlencoded"}
    if signature is not None:
        headers["x-twilio-signature"] = signature
    query = dict(parse_qsl(url.partition("?")[2]))
    return WebhookRequest(method=method, url=url, headers=headers, body=body, query=query)


def pushed(sink: RecordingServer) -> list[WebhookRequest]:
    return [
        WebhookRequest(method=r.method, url=r.url, headers=r.headers, body=r.body, query=r.query)
        for r in sink.received()
    ]


def test_registry_and_repr_hide_the_token() -> None:
    adapter = adapter_for()
    assert adapter.provider is Provider.SMS and adapter.native_async
    assert TW_TOKEN not in repr(adapter)


# ------------------------------------------------------------------ sending
def test_send_sms_with_status_callback(tw_fake: FakeTwilio, sink: RecordingServer) -> None:
    callback = sink.url + "/webhooks/twilio/route-3"
    adapter = adapter_for(tw_fake, webhook_url=callback)
    buttons = (Button(title="Details", url="https://example.org/r/1"), Button(title="Ja", payload="yes"))
    result = adapter.send(OutgoingMessage(to="+49 170 1234567", text="Sperrung", buttons=buttons, reference="d 42"))
    assert result.provider_message_id.startswith("SM") and result.provider_status == "queued"
    form = last_form(tw_fake)
    assert form == {
        "To": TO,
        "From": TW_NUMBER,
        "Body": "Sperrung\n\nDetails: https://example.org/r/1",
        "StatusCallback": callback + "?ref=d+42",
    }
    assert tw_fake.wait_idle(10)
    events = []
    for request in pushed(sink):
        assert adapter.verify_webhook(request)
        events += adapter.parse_webhook(request)
    assert [(e.status, e.reference) for e in events if isinstance(e, StatusEvent)] == [
        ("sent", "d 42"),
        ("delivered", "d 42"),
    ]
    assert all(isinstance(e, StatusEvent) and e.provider_message_id == result.provider_message_id for e in events)


def test_messaging_service_media_and_existing_query(tw_fake: FakeTwilio, sink: RecordingServer) -> None:
    adapter = adapter_for(tw_fake, webhook_url=sink.url + "/hook?x=1", external_id=DEFAULT_SERVICE_SID)
    result = adapter.send(
        OutgoingMessage(to=TO, text="Foto", media=Media(url="https://cdn.example.org/a.jpg"), reference="r1")
    )
    assert result.provider_status == "accepted"
    form = last_form(tw_fake)
    assert form["MessagingServiceSid"] == DEFAULT_SERVICE_SID and "From" not in form
    assert form["MediaUrl"] == ["https://cdn.example.org/a.jpg"]
    assert form["StatusCallback"] == sink.url + "/hook?x=1&ref=r1"
    adapter_for(tw_fake).send(OutgoingMessage(to=TO, text="ohne Callback"))
    assert "StatusCallback" not in last_form(tw_fake)


def test_content_template(tw_fake: FakeTwilio) -> None:
    adapter = adapter_for(tw_fake)
    adapter.send(
        OutgoingMessage(
            to="whatsapp:" + TO, template=TemplateRef(name="HX123", language="de", body_params=("Hauptstraße", "8"))
        )
    )
    form = last_form(tw_fake)
    assert form["ContentSid"] == "HX123" and form["ContentVariables"] == '{"1": "Hauptstraße", "2": "8"}'
    assert "Body" not in form and form["To"] == "whatsapp:" + TO
    with pytest.raises(ProviderError) as error:
        adapter.send(OutgoingMessage(to=TO, template=TemplateRef(name="citizen_alert", language="de")))
    assert error.value.kind is ErrorKind.TEMPLATE_PROBLEM


# ------------------------------------------------------------------ errors
def test_opt_out_via_stop_is_blocked(tw_fake: FakeTwilio, sink: RecordingServer) -> None:
    adapter = adapter_for(tw_fake)
    tw_fake.inbound(sender=TO, text="STOP")
    assert tw_fake.wait_idle(10)
    (request,) = pushed(sink)
    assert adapter.verify_webhook(request)
    (event,) = adapter.parse_webhook(request)
    assert isinstance(event, InboundMessage) and event.kind == "block" and event.sender == TO
    assert event.payload["opt_out_type"] == "STOP"
    with pytest.raises(ProviderError) as error:
        adapter.send(OutgoingMessage(to=TO, text="x"))
    assert error.value.kind is ErrorKind.BLOCKED and error.value.code == "21610" and error.value.unreachable


@pytest.mark.parametrize(
    ("fault", "kind", "code"),
    [
        ({"kind": "error", "code": 21211}, ErrorKind.INVALID_RECIPIENT, "21211"),
        ({"kind": "error", "code": 21614}, ErrorKind.INVALID_RECIPIENT, "21614"),
        ({"kind": "error", "code": 21610}, ErrorKind.BLOCKED, "21610"),
        ({"kind": "error", "code": 21608}, ErrorKind.ACCOUNT_PROBLEM, "21608"),
        ({"kind": "error", "code": 21602}, ErrorKind.BAD_REQUEST, "21602"),
        ({"kind": "error", "code": 20003, "http_status": 400}, ErrorKind.BAD_CREDENTIALS, "20003"),
        ({"kind": "error", "code": 20429, "http_status": 400}, ErrorKind.RATE_LIMITED, "20429"),
        ({"kind": "5xx"}, ErrorKind.TEMPORARY, "20500"),
    ],
)
def test_errors_are_classified_by_code(tw_fake: FakeTwilio, fault: dict[str, Any], kind: ErrorKind, code: str) -> None:
    tw_fake.fail_next(1, **fault)
    with pytest.raises(ProviderError) as error:
        adapter_for(tw_fake).send(OutgoingMessage(to=TO, text="x"))
    assert error.value.kind is kind and error.value.code == code


def test_invalid_number_and_bad_credentials(tw_fake: FakeTwilio) -> None:
    with pytest.raises(ProviderError) as error:
        adapter_for(tw_fake).send(OutgoingMessage(to="12", text="x"))
    assert error.value.kind is ErrorKind.INVALID_RECIPIENT and error.value.code == "21211"
    bad = adapter_for(tw_fake, credentials={"auth_token": "wrong-token"})
    with pytest.raises(ProviderError) as error:
        bad.send(OutgoingMessage(to=TO, text="x"))
    assert error.value.kind is ErrorKind.BAD_CREDENTIALS and error.value.http_status == 401
    assert "wrong-token" not in str(error.value)


def test_rate_limits_and_transport_failures(tw_fake: FakeTwilio) -> None:
    adapter = adapter_for(tw_fake, timeout=0.5)
    tw_fake.fail_next(1, "rate_limit")
    with pytest.raises(ProviderError) as error:
        adapter.send(OutgoingMessage(to=TO, text="x"))
    assert error.value.kind is ErrorKind.RATE_LIMITED and error.value.retry_after == 1.0 and error.value.code == "20429"
    tw_fake.fail_next(1, "rate_limit", retry_after=4)
    with pytest.raises(ProviderError) as error:
        adapter.send(OutgoingMessage(to=TO, text="x"))
    assert error.value.retry_after == 4.0
    tw_fake.configure(timeout_hold=3.0)
    for kind in ("reset", "timeout"):
        tw_fake.fail_next(1, kind)
        with pytest.raises(ProviderError) as error:
            adapter.send(OutgoingMessage(to=TO, text="x"))
        assert error.value.kind is ErrorKind.TEMPORARY
    assert classify(None, 503) is ErrorKind.TEMPORARY and classify(63016) is ErrorKind.WINDOW_CLOSED


def test_async_failure_in_status_callback(tw_fake: FakeTwilio, sink: RecordingServer) -> None:
    adapter = adapter_for(tw_fake, webhook_url=sink.url + "/cb")
    tw_fake.fail_recipient("+491700000003", "async_fail", code=30003)
    tw_fake.fail_recipient("+491700000005", "async_fail", code=30005)
    adapter.send(OutgoingMessage(to="+491700000003", text="x", reference="a"))
    adapter.send(OutgoingMessage(to="+491700000005", text="x", reference="b"))
    assert tw_fake.wait_idle(10)
    events = {e.reference: e for r in pushed(sink) for e in adapter.parse_webhook(r) if isinstance(e, StatusEvent)}
    assert events["a"].status == "failed" and events["a"].error_code == "30003"
    assert (
        events["a"].error_kind is ErrorKind.TEMPORARY and events["a"].error_title == "Unreachable destination handset"
    )
    assert events["b"].error_kind is ErrorKind.INVALID_RECIPIENT


def test_send_async(tw_fake: FakeTwilio) -> None:
    adapter = adapter_for(tw_fake)
    tw_fake.opt_out("+491700000099")

    async def run() -> tuple[list[str], ProviderError]:
        async with aiohttp.ClientSession() as session:
            results = await asyncio.gather(
                *(adapter.send_async(session, OutgoingMessage(to=f"+4917000000{i:02d}", text="x")) for i in range(10))
            )
            try:
                await adapter.send_async(session, OutgoingMessage(to="+491700000099", text="x"))
            except ProviderError as exc:
                blocked = exc
        return [r.provider_message_id for r in results], blocked

    ids, blocked = asyncio.run(run())
    assert len(set(ids)) == 10 and blocked.kind is ErrorKind.BLOCKED


# ------------------------------------------------------------------ webhooks
def test_signature_test_vector_and_port_variants() -> None:
    adapter = adapter_for(credentials={"auth_token": "12345"})
    assert twilio_signature("12345", VECTOR_URL, {k: [v] for k, v in VECTOR_PARAMS.items()}) == VECTOR_SIGNATURE
    assert adapter.verify_webhook(form_request(VECTOR_URL, VECTOR_PARAMS, VECTOR_SIGNATURE))
    # Twilio may have signed with the default port while we see none, or the other way round
    with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2"
    assert adapter.verify_webhook(form_request(with_port, VECTOR_PARAMS, VECTOR_SIGNATURE))
    signed_with_port = twilio_signature("12345", with_port, {k: [v] for k, v in VECTOR_PARAMS.items()})
    assert adapter.verify_webhook(form_request(VECTOR_URL, VECTOR_PARAMS, signed_with_port))
    assert url_variants("http://h:8080/x") == ["http://h:8080/x"]
    assert url_variants("http://h/x") == ["http://h/x", "http://h:80/x"]


@pytest.mark.parametrize(
    ("url", "params", "signature"),
    [
        (VECTOR_URL, VECTOR_PARAMS, None),
        (VECTOR_URL, VECTOR_PARAMS, ""),
        (VECTOR_URL, VECTOR_PARAMS, "0/KCTR6DLpKmkAf8muzZqo1nDgQ"),
        (VECTOR_URL, {**VECTOR_PARAMS, "Digits": "1235"}, VECTOR_SIGNATURE),
        ("https://mycompany.com/myapp.php?foo=1&bar=3", VECTOR_PARAMS, VECTOR_SIGNATURE),
        ("https://evil.example/myapp.php?foo=1&bar=2", VECTOR_PARAMS, VECTOR_SIGNATURE),
        (VECTOR_URL, VECTOR_PARAMS, "ümlaut"),
    ],
)
def test_wrong_or_missing_signature_is_rejected(url: str, params: dict[str, str], signature: str | None) -> None:
    adapter = adapter_for(credentials={"auth_token": "12345"})
    assert not adapter.verify_webhook(form_request(url, params, signature))
    assert not adapter_for(credentials={}).verify_webhook(form_request(VECTOR_URL, VECTOR_PARAMS, VECTOR_SIGNATURE))


def test_json_body_variant_with_body_sha256() -> None:
    import hashlib

    body = b'{"event":"x"}'
    url = f"https://app.example/hook?bodySHA256={hashlib.sha256(body).hexdigest()}"
    signature = twilio_signature(TW_TOKEN, url, {})
    request = WebhookRequest(
        method="POST", url=url, headers={"content-type": "application/json", "x-twilio-signature": signature}, body=body
    )
    adapter = adapter_for()
    assert adapter.verify_webhook(request)
    assert not adapter.verify_webhook(replace(request, body=b'{"event":"y"}'))


def test_inbound_kinds_from_the_fake(tw_fake: FakeTwilio, sink: RecordingServer) -> None:
    adapter = adapter_for(tw_fake)
    tw_fake.inbound(sender=TO, text="Ist die Straße wieder frei?")
    tw_fake.inbound(sender=TO, text="Foto", kind="media", media_urls=["https://api.twilio.com/m/1"])
    tw_fake.inbound(sender="whatsapp:" + TO, text="Ja", kind="button", payload="rsvp:yes")
    tw_fake.inbound(sender=TO, kind="location")
    tw_fake.inbound(sender=TO, text="START")
    assert tw_fake.wait_idle(10)
    events = []
    for request in pushed(sink):
        assert adapter.verify_webhook(request)
        events += adapter.parse_webhook(request)
    by_kind = {e.kind: e for e in events if isinstance(e, InboundMessage)}
    assert by_kind["text"].text == "Ist die Straße wieder frei?" and by_kind["text"].sender == TO
    assert by_kind["image"].payload["media"] == [{"url": "https://api.twilio.com/m/1", "content_type": "image/jpeg"}]
    assert by_kind["button"].payload["payload"] == "rsvp:yes" and by_kind["button"].sender_name == "Erika"
    assert by_kind["location"].payload == {"latitude": "52.52", "longitude": "13.405"}
    assert by_kind["unblock"].text == "START"


def test_parse_edge_cases() -> None:
    adapter = adapter_for()
    queued = form_request("https://a/h", {"MessageSid": "SM1", "MessageStatus": "queued"}, None)
    assert adapter.parse_webhook(queued) == []
    stop = form_request(
        "https://a/h", {"MessageSid": "SM2", "SmsStatus": "received", "From": TO, "Body": " quit "}, None
    )
    (event,) = adapter.parse_webhook(stop)
    assert isinstance(event, InboundMessage) and event.kind == "block"
    for body in (b"", b"MessageStatus=sent", b"MessageSid=SM1", b"%ff%fe=1", b"a&b", b"\xff"):
        with pytest.raises(WebhookParseError):
            adapter.parse_webhook(form_request("https://a/h", body, None))


@FUZZ
@given(st.one_of(st.binary(max_size=300), tw_forms))
def test_fuzz_parse_arbitrary_bodies(body: bytes) -> None:
    adapter = adapter_for()
    request = form_request("https://a/h?ref=x", body, "sig")
    assert adapter.verify_webhook(request) is False
    try:
        events = adapter.parse_webhook(request)
    except WebhookParseError:
        return
    for event in events:
        assert isinstance(event, InboundMessage | StatusEvent) and event.dedupe_key


# ------------------------------------------------------------------ account
def test_check_credentials(tw_fake: FakeTwilio) -> None:
    good = adapter_for(tw_fake).check_credentials()
    # our account SID, not the friendly name the remote side chose (messengers.endpoints)
    assert good.ok and good.detail == f"Connected to Twilio account {TW_ACCOUNT}"
    bad = adapter_for(tw_fake, credentials={"auth_token": "nope"}).check_credentials()
    assert not bad.ok and "rejected" in bad.detail and "20003" in bad.detail
    tw_fake.configure(account_status="suspended")
    suspended = adapter_for(tw_fake).check_credentials()
    assert not suspended.ok and "suspended" in suspended.detail
    offline = adapter_for(None).check_credentials()
    assert not offline.ok and "not reachable" in offline.detail
    assert not adapter_for(tw_fake, account_id="").check_credentials().ok


@pytest.mark.parametrize("digits", ["²", "٣", "１２"])  # digits to str.isdigit(), not to int()
def test_non_ascii_digits_in_an_error_code_do_not_crash_the_parser(digits: str) -> None:
    body = urlencode({"MessageSid": "SM1", "MessageStatus": "failed", "ErrorCode": digits}).encode()
    (event,) = adapter_for().parse_webhook(form_request("https://a/h", body, None))
    assert isinstance(event, StatusEvent) and event.status == "failed"
