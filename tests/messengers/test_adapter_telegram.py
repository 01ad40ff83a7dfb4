"""TelegramAdapter against the fake Bot API over loopback HTTP."""

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
    WebhookParseError,
    WebhookRequest,
)
from messengers.adapters.telegram import TelegramAdapter, classify
from tests.fakes.common import RecordingServer
from tests.fakes.fixtures import TG_SECRET, TG_TOKEN
from tests.fakes.strategies import json_values, tg_updates
from tests.fakes.telegram import FakeTelegram

CHAT = 123456789
FUZZ = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def make_config(fake: FakeTelegram | None = None, **overrides: Any) -> ConnectionConfig:
    config = ConnectionConfig(
        provider=Provider.TELEGRAM,
        credentials={"bot_token": TG_TOKEN, "webhook_secret": TG_SECRET},
        external_id="7172552019",
        api_base=fake.url if fake else "http://127.0.0.1:9",
        timeout=5.0,
        connection_id=2,
    )
    return replace(config, **overrides)


def adapter_for(fake: FakeTelegram | None = None, **overrides: Any) -> TelegramAdapter:
    adapter = get_adapter(make_config(fake, **overrides))
    assert isinstance(adapter, TelegramAdapter)
    return adapter


def last_params(fake: FakeTelegram) -> dict[str, Any]:
    params: dict[str, Any] = fake.requests(kind="send")[-1]["body"]
    return params


def update_request(update: Any, secret: str | None = TG_SECRET) -> WebhookRequest:
    headers = {"content-type": "application/json"}
    if secret is not None:
        headers["x-telegram-bot-api-secret-token"] = secret
    body = update if isinstance(update, bytes) else json.dumps(update).encode()
    return WebhookRequest(method="POST", url="https://app.example/webhooks/telegram/k", headers=headers, body=body)


def pushed(sink: RecordingServer) -> list[WebhookRequest]:
    ordered = sorted(sink.received(), key=lambda r: json.loads(r.body)["update_id"])
    return [WebhookRequest(method=r.method, url=r.url, headers=r.headers, body=r.body) for r in ordered]


def test_registry_and_repr_hide_the_token() -> None:
    adapter = adapter_for()
    assert adapter.provider is Provider.TELEGRAM and adapter.native_async
    assert TG_TOKEN not in repr(adapter) and TG_SECRET not in repr(adapter)


# ------------------------------------------------------------------ sending
def test_send_plain_text_with_buttons(tg_fake: FakeTelegram) -> None:
    tg_fake.add_chat(CHAT)
    buttons = (Button(title="Details", url="https://example.org/r/abc"), Button(title="Abmelden", payload="unsub:c42"))
    result = adapter_for(tg_fake).send(
        OutgoingMessage(to=str(CHAT), text="<Sperrung> & mehr", buttons=buttons, silent=True)
    )
    assert result.provider_message_id == f"{CHAT}:1" and result.provider_status == "accepted"
    params = last_params(tg_fake)
    assert params == {
        "chat_id": CHAT,
        "text": "<Sperrung> & mehr",
        "link_preview_options": {"is_disabled": True},
        "reply_markup": {
            "inline_keyboard": [
                [{"text": "Details", "url": "https://example.org/r/abc"}],
                [{"text": "Abmelden", "callback_data": "unsub:c42"}],
            ]
        },
        "disable_notification": True,
    }
    second = adapter_for(tg_fake).send(OutgoingMessage(to=str(CHAT), text="Antwort", reply_to_provider_id=f"{CHAT}:1"))
    assert second.provider_message_id == f"{CHAT}:2"
    assert last_params(tg_fake)["reply_parameters"] == {"message_id": 1, "allow_sending_without_reply": True}


def test_send_photo_and_video_with_caption(tg_fake: FakeTelegram) -> None:
    tg_fake.add_chat(CHAT)
    adapter = adapter_for(tg_fake)
    adapter.send(OutgoingMessage(to=str(CHAT), text="Flyer", media=Media(url="https://cdn.example.org/f.jpg")))
    assert tg_fake.requests(kind="send")[-1]["path"].endswith("/sendPhoto")
    assert last_params(tg_fake) == {"chat_id": CHAT, "photo": "https://cdn.example.org/f.jpg", "caption": "Flyer"}
    adapter.send(OutgoingMessage(to=str(CHAT), text="", media=Media(url="https://cdn.example.org/v.mp4", kind="video")))
    assert tg_fake.requests(kind="send")[-1]["path"].endswith("/sendVideo")
    assert last_params(tg_fake) == {"chat_id": CHAT, "video": "https://cdn.example.org/v.mp4"}


def test_parse_mode_is_opt_in(tg_fake: FakeTelegram) -> None:
    tg_fake.add_chat(CHAT)
    adapter = adapter_for(tg_fake)
    adapter.parse_mode = "HTML"
    adapter.send(OutgoingMessage(to=str(CHAT), text="<b>Wichtig</b>"))
    assert last_params(tg_fake)["parse_mode"] == "HTML"
    with pytest.raises(ProviderError) as error:
        adapter.send(OutgoingMessage(to=str(CHAT), text="<p>kaputt</p>"))
    assert error.value.kind is ErrorKind.BAD_REQUEST and "can't parse entities" in error.value.message


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    ("setup", "kind", "code"),
    [
        ({}, ErrorKind.NOT_ON_MESSENGER, "400"),
        ({"blocked": True}, ErrorKind.BLOCKED, "403"),
        ({"deactivated": True}, ErrorKind.NOT_ON_MESSENGER, "403"),
        ({"started": False}, ErrorKind.NOT_ON_MESSENGER, "403"),
    ],
)
def test_recipient_errors(tg_fake: FakeTelegram, setup: dict[str, Any], kind: ErrorKind, code: str) -> None:
    if setup:
        tg_fake.add_chat(CHAT, **setup)
    with pytest.raises(ProviderError) as error:
        adapter_for(tg_fake).send(OutgoingMessage(to=str(CHAT), text="x"))
    assert error.value.kind is kind and error.value.code == code
    assert error.value.unreachable


def test_empty_text_and_bad_token(tg_fake: FakeTelegram) -> None:
    tg_fake.add_chat(CHAT)
    with pytest.raises(ProviderError) as error:
        adapter_for(tg_fake).send(OutgoingMessage(to=str(CHAT), text=""))
    assert error.value.kind is ErrorKind.BAD_REQUEST and error.value.message == "Bad Request: message text is empty"
    bad = adapter_for(tg_fake, credentials={"bot_token": "999:not-the-right-token", "webhook_secret": "s"})
    with pytest.raises(ProviderError) as error:
        bad.send(OutgoingMessage(to=str(CHAT), text="x"))
    assert error.value.kind is ErrorKind.BAD_CREDENTIALS and error.value.code == "401"
    assert "not-the-right-token" not in str(error.value)


def test_flood_control_retry_after(tg_fake: FakeTelegram) -> None:
    tg_fake.add_chat(CHAT)
    adapter = adapter_for(tg_fake)
    tg_fake.fail_next(1, "rate_limit", retry_after=35)
    with pytest.raises(ProviderError) as error:
        adapter.send(OutgoingMessage(to=str(CHAT), text="x"))
    assert error.value.kind is ErrorKind.RATE_LIMITED and error.value.retry_after == 35.0
    assert error.value.code == "429"
    tg_fake.configure(rate=1)
    errors = []
    for _ in range(4):
        try:
            adapter.send(OutgoingMessage(to=str(CHAT), text="x"))
        except ProviderError as exc:
            errors.append(exc)
    assert errors and all(e.kind is ErrorKind.RATE_LIMITED and (e.retry_after or 0) >= 1 for e in errors)


def test_server_errors_resets_timeouts_and_network_are_temporary(tg_fake: FakeTelegram) -> None:
    tg_fake.add_chat(CHAT)
    tg_fake.configure(timeout_hold=3.0)
    adapter = adapter_for(tg_fake, timeout=0.5)
    for kind in ("5xx", "reset", "timeout"):
        tg_fake.fail_next(1, kind)
        with pytest.raises(ProviderError) as error:
            adapter.send(OutgoingMessage(to=str(CHAT), text="x"))
        assert error.value.kind is ErrorKind.TEMPORARY, kind
        assert TG_TOKEN not in str(error.value)
    with pytest.raises(ProviderError) as error:
        adapter_for(None).send(OutgoingMessage(to=str(CHAT), text="x"))
    assert error.value.kind is ErrorKind.TEMPORARY and TG_TOKEN not in str(error.value)


@pytest.mark.parametrize(
    ("code", "description", "kind"),
    [
        (429, "Too Many Requests: retry after 5", ErrorKind.RATE_LIMITED),
        (403, "Forbidden: bot was kicked from the supergroup chat", ErrorKind.BLOCKED),
        (400, "Bad Request: group chat was upgraded to a supergroup chat", ErrorKind.INVALID_RECIPIENT),
        (400, "Bad Request: can't parse entities: x", ErrorKind.BAD_REQUEST),
        (404, "Not Found", ErrorKind.BAD_CREDENTIALS),
        (502, "Bad Gateway", ErrorKind.TEMPORARY),
        (None, "", ErrorKind.TEMPORARY),
    ],
)
def test_classification_table(code: int | None, description: str, kind: ErrorKind) -> None:
    assert classify(code, description) is kind


def test_send_async(tg_fake: FakeTelegram) -> None:
    for i in range(5):
        tg_fake.add_chat(CHAT + i)
    tg_fake.add_chat(CHAT + 99, blocked=True)
    adapter = adapter_for(tg_fake)

    async def run() -> tuple[list[str], ProviderError]:
        async with aiohttp.ClientSession() as session:
            results = await asyncio.gather(
                *(adapter.send_async(session, OutgoingMessage(to=str(CHAT + i), text="hallo")) for i in range(5))
            )
            try:
                await adapter.send_async(session, OutgoingMessage(to=str(CHAT + 99), text="x"))
            except ProviderError as exc:
                blocked = exc
        return [r.provider_message_id for r in results], blocked

    ids, blocked = asyncio.run(run())
    assert sorted(ids) == sorted(f"{CHAT + i}:1" for i in range(5))
    assert blocked.kind is ErrorKind.BLOCKED


# ------------------------------------------------------------------ webhooks
def test_register_webhook_and_verify_what_the_fake_pushes(tg_fake: FakeTelegram, sink: RecordingServer) -> None:
    adapter = adapter_for(tg_fake)
    url = sink.url + "/webhooks/telegram/route-1"
    result = adapter.register_webhook(url)
    assert result.ok and result.detail == "Webhook was set"
    info = tg_fake.webhook_info()
    assert info == {
        "url": url,
        "secret_token": TG_SECRET,
        "allowed_updates": ["message", "callback_query", "my_chat_member"],
    }
    assert adapter.webhook_info()["url"] == url
    no_secret = adapter_for(tg_fake, credentials={"bot_token": TG_TOKEN})
    assert not no_secret.register_webhook(url).ok

    tg_fake.inbound(chat_id=CHAT, kind="start", payload="t_8f3KQz_tenant7", first_name="Erika", language_code="de")
    sent = adapter.send(
        OutgoingMessage(to=str(CHAT), text="Abstimmung", buttons=(Button(title="Ja", payload="vote:yes"),))
    )
    tg_fake.inbound(chat_id=CHAT, kind="text", text="Danke!")
    tg_fake.inbound(
        chat_id=CHAT, kind="callback", payload="vote:yes", message_id=int(sent.provider_message_id.split(":")[1])
    )
    tg_fake.inbound(chat_id=CHAT, kind="photo", text="Schlagloch")
    tg_fake.inbound(chat_id=CHAT, kind="location")
    tg_fake.inbound(chat_id=CHAT, kind="block")
    tg_fake.inbound(chat_id=CHAT, kind="unblock")
    assert tg_fake.wait_idle(10)
    requests_ = pushed(sink)
    assert all(adapter.verify_webhook(r) for r in requests_)
    events = [e for r in requests_ for e in adapter.parse_webhook(r)]
    assert all(isinstance(e, InboundMessage) for e in events)
    kinds = [(e.kind, e.text) for e in events if isinstance(e, InboundMessage)]
    assert kinds == [
        ("start", "t_8f3KQz_tenant7"),
        ("text", "Danke!"),
        ("button", "Ja"),
        ("image", "Schlagloch"),
        ("location", ""),
        ("block", ""),
        ("unblock", ""),
    ]
    start, _text, button, photo, location, block, _unblock = events
    assert isinstance(start, InboundMessage) and start.sender == str(CHAT)
    assert start.sender_name == "Erika" and start.language == "de"
    assert isinstance(button, InboundMessage) and button.payload["payload"] == "vote:yes"
    assert button.reply_to_provider_id == sent.provider_message_id
    assert isinstance(photo, InboundMessage) and photo.payload["file_id"]
    assert isinstance(location, InboundMessage) and location.payload["latitude"] == 52.52
    assert isinstance(block, InboundMessage) and block.payload["new_status"] == "kicked"
    assert len({e.dedupe_key for e in events}) == len(events)


@pytest.mark.parametrize("header", [None, "", "wrong-secret", TG_SECRET + "x", "ümlaut"])
def test_wrong_or_missing_secret_is_rejected(header: str | None) -> None:
    adapter = adapter_for()
    assert not adapter.verify_webhook(update_request({"update_id": 1}, secret=header))
    assert adapter.verify_webhook(update_request({"update_id": 1}))
    no_secret = adapter_for(credentials={"bot_token": TG_TOKEN})
    assert not no_secret.verify_webhook(update_request({"update_id": 1}))


def test_parse_edge_cases() -> None:
    adapter = adapter_for()
    message = {"message_id": 7, "chat": {"id": CHAT, "type": "private"}, "date": 1737277100}
    start = adapter.parse_webhook(
        update_request({"update_id": 1, "message": {**message, "text": "/start@city_alerts_bot abc"}})
    )
    assert isinstance(start[0], InboundMessage) and (start[0].kind, start[0].text) == ("start", "abc")
    bare = adapter.parse_webhook(update_request({"update_id": 2, "message": {**message, "text": "/start"}}))
    assert isinstance(bare[0], InboundMessage) and (bare[0].kind, bare[0].text) == ("start", "")
    reply = adapter.parse_webhook(
        update_request({"update_id": 3, "message": {**message, "text": "ok", "reply_to_message": {"message_id": 5}}})
    )
    assert isinstance(reply[0], InboundMessage) and reply[0].reply_to_provider_id == f"{CHAT}:5"
    assert adapter.parse_webhook(update_request({"update_id": 4, "edited_message": message})) == []
    (poll,) = adapter.parse_webhook(update_request({"update_id": 5, "poll": {"id": "p"}}))
    assert (
        isinstance(poll, InboundMessage)
        and poll.kind == "unknown"
        and poll.payload == {"type": "poll", "poll": {"id": "p"}}
    )
    group = {"chat": {"id": -100, "type": "supergroup"}, "date": 1, "new_chat_member": {"status": "kicked"}}
    (kicked,) = adapter.parse_webhook(update_request({"update_id": 6, "my_chat_member": group}))
    assert isinstance(kicked, InboundMessage) and kicked.kind == "unknown"  # only private chats mean "blocked"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"nope",
        b"[]",
        b"{}",
        b'{"update_id":"1"}',
        b'{"update_id":1,"message":{"chat":{}}}',
        b'{"update_id":1,"message":[]}',
    ],
)
def test_malformed_updates_raise_parse_error(body: bytes) -> None:
    with pytest.raises(WebhookParseError):
        adapter_for().parse_webhook(update_request(body))


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_parse_arbitrary_bytes(body: bytes) -> None:
    try:
        adapter_for().parse_webhook(update_request(body))
    except WebhookParseError:
        pass


@FUZZ
@given(st.one_of(json_values, tg_updates))
def test_fuzz_parse_arbitrary_json(value: Any) -> None:
    try:
        events = adapter_for().parse_webhook(update_request(value))
    except WebhookParseError:
        return
    for event in events:
        assert isinstance(event, InboundMessage | StatusEvent) and event.dedupe_key


# ------------------------------------------------------------------ account
def test_check_credentials(tg_fake: FakeTelegram) -> None:
    good = adapter_for(tg_fake).check_credentials()
    assert good.ok and good.detail == "Connected as @city_alerts_bot" and good.info["id"] == "7172552019"
    other = adapter_for(tg_fake, external_id="42").check_credentials()
    assert not other.ok and "not to bot 42" in other.detail
    bad = adapter_for(tg_fake, credentials={"bot_token": "1:wrongwrongwrong"}).check_credentials()
    assert not bad.ok and "rejected" in bad.detail and "wrongwrongwrong" not in bad.detail
    offline = adapter_for(None).check_credentials()
    assert not offline.ok and "not reachable" in offline.detail and TG_TOKEN not in offline.detail


@pytest.mark.parametrize("digits", ["²", "٣", "１２"])  # digits to str.isdigit(), not to int()
def test_a_reply_to_a_non_ascii_digit_id_is_sent_without_the_quote(digits: str) -> None:
    _, params = adapter_for().build_request(OutgoingMessage(to="42", text="Hallo", reply_to_provider_id=f"42:{digits}"))
    assert "reply_parameters" not in params
