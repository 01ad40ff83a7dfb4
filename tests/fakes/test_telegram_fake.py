"""The fake Telegram Bot API speaks the documented wire protocol (providers.md section 2)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from tests.fakes.common import RecordingServer
from tests.fakes.fixtures import TG_SECRET, TG_TOKEN
from tests.fakes.telegram import FakeTelegram

CHAT = 123456789


def call(fake: FakeTelegram, method: str, token: str = TG_TOKEN, **kwargs: Any) -> requests.Response:
    return requests.post(f"{fake.url}/bot{token}/{method}", timeout=10, **kwargs)


def test_get_me_and_bad_token(tg_fake: FakeTelegram) -> None:
    data = call(tg_fake, "getMe").json()
    assert data["ok"] is True
    assert data["result"]["id"] == 7172552019 and data["result"]["is_bot"] is True
    assert data["result"]["username"] == "city_alerts_bot"
    response = call(tg_fake, "getMe", token="123:wrong-token-value")
    assert response.status_code == 401
    assert response.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
    assert requests.get(f"{tg_fake.url}/bot{TG_TOKEN}/GETME", timeout=5).json()["ok"] is True
    assert call(tg_fake, "noSuchMethod").json()["error_code"] == 404


@pytest.mark.parametrize("encoding", ["json", "form", "multipart", "query"])
def test_send_message_in_every_encoding(tg_fake: FakeTelegram, encoding: str) -> None:
    tg_fake.add_chat(CHAT, first_name="Erika", username="erika_m")
    markup = {"inline_keyboard": [[{"text": "Details", "url": "https://example.org/r/abc"}]]}
    params = {"chat_id": CHAT, "text": "Sperrung Hauptstraße", "reply_markup": markup}
    if encoding == "json":
        response = call(tg_fake, "sendMessage", json=params)
    elif encoding == "form":
        response = call(tg_fake, "sendMessage", data={**params, "reply_markup": json.dumps(markup)})
    elif encoding == "multipart":
        fields = {k: (None, v if isinstance(v, str) else json.dumps(v)) for k, v in params.items()}
        response = call(tg_fake, "sendMessage", files=fields)
    else:
        response = requests.get(
            f"{tg_fake.url}/bot{TG_TOKEN}/sendmessage",
            params={"chat_id": str(CHAT), "text": "Sperrung Hauptstraße", "reply_markup": json.dumps(markup)},
            timeout=5,
        )
    data = response.json()
    assert data["ok"] is True, data
    result = data["result"]
    assert result["chat"] == {"id": CHAT, "type": "private", "first_name": "Erika", "username": "erika_m"}
    assert result["text"] == "Sperrung Hauptstraße"
    assert result["from"]["is_bot"] is True
    assert result["reply_markup"] == markup
    assert tg_fake.sent_messages()[-1]["chat_id"] == CHAT


def test_send_photo_by_url_and_multipart_upload(tg_fake: FakeTelegram) -> None:
    tg_fake.add_chat(CHAT)
    data = call(
        tg_fake, "sendPhoto", json={"chat_id": CHAT, "photo": "https://cdn.example.org/a.jpg", "caption": "Flyer"}
    )
    assert data.json()["result"]["caption"] == "Flyer"
    assert data.json()["result"]["photo"][-1]["width"] == 800
    upload = call(
        tg_fake, "sendPhoto", data={"chat_id": str(CHAT)}, files={"photo": ("a.jpg", b"\xff\xd8jpeg", "image/jpeg")}
    )
    assert upload.json()["ok"] is True
    assert (
        call(tg_fake, "sendPhoto", json={"chat_id": CHAT}).json()["description"]
        == "Bad Request: there is no photo in the request"
    )
    video = call(tg_fake, "sendVideo", json={"chat_id": CHAT, "video": "https://cdn.example.org/v.mp4"}).json()
    assert video["result"]["video"]["mime_type"] == "video/mp4"


@pytest.mark.parametrize(
    ("setup", "code", "description"),
    [
        ({}, 400, "Bad Request: chat not found"),
        ({"started": False}, 403, "Forbidden: bot can't initiate conversation with a user"),
        ({"blocked": True}, 403, "Forbidden: bot was blocked by the user"),
        ({"deactivated": True}, 403, "Forbidden: user is deactivated"),
    ],
)
def test_chat_states(tg_fake: FakeTelegram, setup: dict[str, Any], code: int, description: str) -> None:
    if setup:
        tg_fake.add_chat(CHAT, **setup)
    response = call(tg_fake, "sendMessage", json={"chat_id": CHAT, "text": "hi"})
    assert response.status_code == code
    assert response.json() == {"ok": False, "error_code": code, "description": description}


@pytest.mark.parametrize(
    ("params", "description"),
    [
        ({"text": ""}, "Bad Request: message text is empty"),
        ({"text": "x" * 4097}, "Bad Request: message is too long"),
        ({"text": "<b>x", "parse_mode": "HTML"}, "Bad Request: can't parse entities"),
        ({"text": "<p>x</p>", "parse_mode": "HTML"}, "Bad Request: can't parse entities"),
        (
            {"text": "x", "reply_markup": {"inline_keyboard": [[{"text": "a", "callback_data": "x" * 65}]]}},
            "BUTTON_DATA_INVALID",
        ),
        ({"text": "x", "reply_markup": {"inline_keyboard": [[{"text": "a", "url": "ftp://x"}]]}}, "is invalid"),
        ({"text": "x", "reply_parameters": {"message_id": 999}}, "message to be replied not found"),
    ],
)
def test_send_validation(tg_fake: FakeTelegram, params: dict[str, Any], description: str) -> None:
    tg_fake.add_chat(CHAT)
    response = call(tg_fake, "sendMessage", json={"chat_id": CHAT, **params})
    assert response.status_code == 400
    assert description in response.json()["description"]


def test_flood_control_429_with_retry_after(tg_fake: FakeTelegram) -> None:
    tg_fake.configure(rate=1)
    tg_fake.add_chat(CHAT)
    answers = [call(tg_fake, "sendMessage", json={"chat_id": CHAT, "text": "x"}) for _ in range(4)]
    limited = [a for a in answers if a.status_code == 429]
    assert limited and answers[0].status_code == 200
    body = limited[0].json()
    assert body["description"].startswith("Too Many Requests: retry after ")
    assert body["parameters"]["retry_after"] >= 1


def test_per_chat_limit_and_injected_faults(tg_fake: FakeTelegram) -> None:
    tg_fake.configure(per_chat_rate=1)
    tg_fake.add_chat(CHAT)
    tg_fake.add_chat(CHAT + 1)
    assert call(tg_fake, "sendMessage", json={"chat_id": CHAT, "text": "x"}).status_code == 200
    assert call(tg_fake, "sendMessage", json={"chat_id": CHAT, "text": "x"}).status_code == 429
    assert call(tg_fake, "sendMessage", json={"chat_id": CHAT + 1, "text": "x"}).status_code == 200
    tg_fake.configure(per_chat_rate=None)
    tg_fake.fail_next(1, "rate_limit", retry_after=35)
    assert call(tg_fake, "sendMessage", json={"chat_id": CHAT, "text": "x"}).json()["parameters"] == {"retry_after": 35}
    tg_fake.fail_next(1, "5xx")
    assert call(tg_fake, "sendMessage", json={"chat_id": CHAT, "text": "x"}).status_code == 500
    tg_fake.fail_recipient(str(CHAT), "error")
    blocked = call(tg_fake, "sendMessage", json={"chat_id": CHAT, "text": "x"})
    assert blocked.status_code == 403 and blocked.json()["description"] == "Forbidden: bot was blocked by the user"
    tg_fake.fail_next(1, "reset")
    with pytest.raises(requests.ConnectionError):
        call(tg_fake, "sendMessage", json={"chat_id": CHAT + 1, "text": "x"})


def test_webhook_registration_and_signed_pushes(tg_fake: FakeTelegram, sink: RecordingServer) -> None:
    url = sink.url + "/webhooks/telegram/abc"
    bad = call(tg_fake, "setWebhook", json={"url": url, "secret_token": "bad secret!"})
    assert bad.status_code == 400
    response = call(
        tg_fake,
        "setWebhook",
        json={"url": url, "secret_token": TG_SECRET, "allowed_updates": ["message", "my_chat_member"]},
    )
    assert response.json() == {"ok": True, "result": True, "description": "Webhook was set"}
    info = call(tg_fake, "getWebhookInfo").json()["result"]
    assert info["url"] == url and info["allowed_updates"] == ["message", "my_chat_member"]
    assert call(tg_fake, "getUpdates").status_code == 409

    tg_fake.inbound(chat_id=CHAT, kind="start", payload="t_8f3KQz_tenant7")
    tg_fake.inbound(chat_id=CHAT, kind="text", text="Hallo")
    tg_fake.inbound(chat_id=CHAT, kind="callback", payload="unsub:c42")  # filtered by allowed_updates
    tg_fake.block(CHAT)
    assert tg_fake.wait_idle(10)
    received = sorted(sink.received(), key=lambda r: json.loads(r.body)["update_id"])
    assert [r.headers["x-telegram-bot-api-secret-token"] for r in received] == [TG_SECRET] * 3
    updates = [json.loads(r.body) for r in received]
    assert [u["update_id"] for u in updates] == sorted({u["update_id"] for u in updates})
    assert updates[0]["message"]["text"] == "/start t_8f3KQz_tenant7"
    assert updates[0]["message"]["entities"][0]["type"] == "bot_command"
    assert updates[1]["message"]["text"] == "Hallo"
    member = updates[2]["my_chat_member"]
    assert member["new_chat_member"]["status"] == "kicked" and member["old_chat_member"]["status"] == "member"
    assert call(tg_fake, "sendMessage", json={"chat_id": CHAT, "text": "x"}).status_code == 403

    assert call(tg_fake, "deleteWebhook").json()["description"] == "Webhook was deleted"
    assert call(tg_fake, "getWebhookInfo").json()["result"]["url"] == ""


def test_webhook_retries_and_reports_errors(tg_fake: FakeTelegram, sink: RecordingServer) -> None:
    call(tg_fake, "setWebhook", json={"url": sink.url + "/tg", "secret_token": TG_SECRET})
    sink.fail_next(1, 500)
    tg_fake.inbound(chat_id=CHAT, kind="text", text="x")
    assert tg_fake.wait_idle(10)
    assert len(sink.received()) == 2
    info = call(tg_fake, "getWebhookInfo").json()["result"]
    assert info["pending_update_count"] == 0
    assert "500" in info["last_error_message"]


def test_get_updates_polling(tg_fake: FakeTelegram) -> None:
    tg_fake.inbound(chat_id=CHAT, kind="start", payload="abc")
    tg_fake.inbound(chat_id=CHAT, kind="callback", payload="rsvp:yes")
    updates = call(tg_fake, "getUpdates").json()["result"]
    assert [("message" in u, "callback_query" in u) for u in updates] == [(True, False), (False, True)]
    assert updates[1]["callback_query"]["data"] == "rsvp:yes"
    again = call(tg_fake, "getUpdates", json={"offset": updates[1]["update_id"]}).json()["result"]
    assert [u["update_id"] for u in again] == [updates[1]["update_id"]]
    assert call(tg_fake, "getUpdates", json={"offset": updates[1]["update_id"] + 1}).json()["result"] == []
    # the chat was started by /start, so sends work now
    assert call(tg_fake, "sendMessage", json={"chat_id": CHAT, "text": "Willkommen"}).status_code == 200


def test_any_chat_mode_for_benchmarks(tg_fake: FakeTelegram) -> None:
    tg_fake.configure(any_chat=True)
    assert call(tg_fake, "sendMessage", json={"chat_id": 555, "text": "x"}).status_code == 200
    stats = tg_fake.stats_summary()
    assert stats["sends"]["accepted"] == 1
