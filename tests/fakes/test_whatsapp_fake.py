"""The fake WhatsApp Cloud API speaks the documented wire protocol (providers.md section 1)."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest
import requests

from tests.fakes.common import RecordingServer
from tests.fakes.fixtures import WA_APP_SECRET, WA_PHONE_NUMBER_ID, WA_TOKEN, WA_WABA_ID
from tests.fakes.whatsapp import FakeWhatsApp

AUTH = {"Authorization": f"Bearer {WA_TOKEN}"}
TO = "+491701234567"


def send(fake: FakeWhatsApp, body: dict[str, Any], headers: dict[str, str] | None = None) -> requests.Response:
    payload = {"messaging_product": "whatsapp", "to": TO, **body}
    url = f"{fake.url}/v23.0/{WA_PHONE_NUMBER_ID}/messages"
    return requests.post(url, json=payload, headers=AUTH if headers is None else headers, timeout=10)


def text(body: str = "Straßensperrung") -> dict[str, Any]:
    return {"type": "text", "text": {"preview_url": False, "body": body}}


def statuses(sink: RecordingServer) -> list[dict[str, Any]]:
    out = []
    for request in sink.received():
        value = json.loads(request.body)["entry"][0]["changes"][0]["value"]
        out.extend(value.get("statuses", []))
    return out


def test_text_send_success_envelope_and_status_webhooks(wa_fake: FakeWhatsApp, sink: RecordingServer) -> None:
    wa_fake.open_window(TO)
    response = send(wa_fake, {**text(), "biz_opaque_callback_data": "delivery-1"})
    assert response.status_code == 200
    data = response.json()
    assert data["messaging_product"] == "whatsapp"
    assert data["contacts"] == [{"input": TO, "wa_id": "491701234567"}]
    wamid = data["messages"][0]["id"]
    assert wamid.startswith("wamid.")
    assert wa_fake.wait_idle(10)
    received = sink.received()
    assert [s["status"] for s in statuses(sink)] == ["sent", "delivered", "read"]
    for request in received:
        assert request.path == "/webhooks/whatsapp"
        expected = "sha256=" + hmac.new(WA_APP_SECRET.encode(), request.body, hashlib.sha256).hexdigest()
        assert request.headers["x-hub-signature-256"] == expected
        envelope = json.loads(request.body)
        assert envelope["object"] == "whatsapp_business_account"
        assert envelope["entry"][0]["id"] == WA_WABA_ID
        assert envelope["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] == WA_PHONE_NUMBER_ID
    for status in statuses(sink):
        assert status["id"] == wamid and status["recipient_id"] == "491701234567"
        assert status["biz_opaque_callback_data"] == "delivery-1"
        assert isinstance(status["timestamp"], str)
    sent = wa_fake.sent_messages()
    assert sent[-1]["id"] == wamid and sent[-1]["reference"] == "delivery-1"


def test_free_form_outside_the_window_fails_asynchronously(wa_fake: FakeWhatsApp, sink: RecordingServer) -> None:
    wa_fake.open_window(TO, age_hours=25)
    response = send(wa_fake, text())
    assert response.status_code == 200
    assert wa_fake.wait_idle(10)
    (status,) = statuses(sink)
    assert status["status"] == "failed"
    assert status["errors"][0]["code"] == 131047
    assert status["errors"][0]["title"] == "Re-engagement message"


def test_template_is_allowed_outside_the_window(wa_fake: FakeWhatsApp, sink: RecordingServer) -> None:
    template = {
        "name": "citizen_alert_v2",
        "language": {"code": "de", "policy": "deterministic"},
        "components": [
            {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://cdn.example.org/m.png"}}]},
            {"type": "body", "parameters": [{"type": "text", "text": "Main St"}, {"type": "text", "text": "08:00"}]},
            {"type": "button", "sub_type": "url", "index": "1", "parameters": [{"type": "text", "text": "c42"}]},
        ],
    }
    response = send(wa_fake, {"type": "template", "template": template})
    assert response.status_code == 200, response.text
    assert response.json()["messages"][0]["message_status"] == "accepted"
    assert wa_fake.wait_idle(10)
    assert [s["status"] for s in statuses(sink)] == ["sent", "delivered", "read"]
    assert statuses(sink)[0]["pricing"]["category"] == "utility"


@pytest.mark.parametrize(
    ("template", "code", "http"),
    [
        ({"name": "nope", "language": {"code": "de"}}, 132001, 404),
        ({"name": "hello_world", "language": {"code": "de"}}, 132001, 404),
        ({"name": "pending_notice", "language": {"code": "de"}}, 132001, 404),
        ({"name": "paused_promo", "language": {"code": "de"}}, 132015, 400),
        ({"name": "disabled_promo", "language": {"code": "de"}}, 132016, 400),
        ({"name": "newsletter_update", "language": {"code": "de"}, "components": []}, 132000, 400),
        ({"name": "citizen_alert_v2", "language": {"code": "de"}}, 132000, 400),
        ({"name": "hello_world"}, 131008, 400),
    ],
)
def test_template_catalogue_errors(wa_fake: FakeWhatsApp, template: dict[str, Any], code: int, http: int) -> None:
    response = send(wa_fake, {"type": "template", "template": template})
    assert response.status_code == http
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"].startswith(f"(#{code}) ")
    assert error["type"] == "OAuthException" and error["fbtrace_id"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"messaging_product": "sms", **text()}, 100),
        ({"to": "", **text()}, 131008),
        ({"to": "not a number", **text()}, 100),
        ({"type": "text", "text": {"body": ""}}, 131008),
        ({"type": "carousel", "carousel": {}}, 131051),
        ({"type": "image", "image": {"caption": "x"}}, 100),
        (
            {
                "type": "interactive",
                "interactive": {"type": "button", "body": {"text": "x"}, "action": {"buttons": []}},
            },
            131009,
        ),
    ],
)
def test_request_validation(wa_fake: FakeWhatsApp, body: dict[str, Any], code: int) -> None:
    response = send(wa_fake, body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


def test_bad_or_missing_token_is_190(wa_fake: FakeWhatsApp) -> None:
    for headers in ({"Authorization": "Bearer wrong"}, {}):
        response = send(wa_fake, text(), headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == 190


def test_throughput_limit_is_130429_as_429_or_400(wa_fake: FakeWhatsApp) -> None:
    wa_fake.configure(rate=1)
    codes = [send(wa_fake, text()).status_code for _ in range(5)]
    assert 429 in codes and codes[0] == 200
    wa_fake.configure(rate_limit_status=400)
    response = send(wa_fake, text())
    assert response.status_code == 400 and response.json()["error"]["code"] == 130429
    stats = wa_fake.stats_summary()
    assert stats["sends"]["max_in_any_second"] <= 1 + stats["sends"]["accepted"] // 2
    assert stats["outcomes"]["error:130429"] >= 2


def test_pair_rate_limit_131056(wa_fake: FakeWhatsApp) -> None:
    wa_fake.configure(pair_limit=1, pair_window=60)
    assert send(wa_fake, text()).status_code == 200
    response = send(wa_fake, text())
    assert response.status_code == 400 and response.json()["error"]["code"] == 131056
    assert send(wa_fake, {**text(), "to": "+491709999999"}).status_code == 200


def test_injected_faults(wa_fake: FakeWhatsApp) -> None:
    wa_fake.fail_next(1, "5xx")
    response = send(wa_fake, text())
    assert response.status_code == 500 and response.json()["error"]["code"] == 131000
    wa_fake.fail_next(1, "rate_limit", http_status=400, retry_after=3)
    response = send(wa_fake, text())
    assert response.status_code == 400 and response.json()["error"]["code"] == 130429
    assert response.headers["Retry-After"] == "3"
    wa_fake.fail_next(1, "error", code=368)
    assert send(wa_fake, text()).json()["error"]["code"] == 368
    wa_fake.fail_next(1, "reset")
    with pytest.raises(requests.ConnectionError):
        send(wa_fake, text())
    wa_fake.configure(timeout_hold=2.0)
    wa_fake.fail_next(1, "timeout")
    with pytest.raises(requests.Timeout):
        requests.post(
            f"{wa_fake.url}/v23.0/{WA_PHONE_NUMBER_ID}/messages",
            json={"messaging_product": "whatsapp", "to": TO, **text()},
            headers=AUTH,
            timeout=0.3,
        )
    assert send(wa_fake, text()).status_code == 200


def test_per_recipient_async_failure(wa_fake: FakeWhatsApp, sink: RecordingServer) -> None:
    wa_fake.open_window("+491700000001")
    wa_fake.fail_recipient("+49 170 0000001", "async_fail", code=131026)
    assert send(wa_fake, {**text(), "to": "+491700000001"}).status_code == 200
    assert wa_fake.wait_idle(10)
    (status,) = statuses(sink)
    assert status["status"] == "failed" and status["errors"][0]["code"] == 131026


def test_seeded_error_rate_is_reproducible(wa_fake: FakeWhatsApp) -> None:
    def run() -> list[int]:
        wa_fake.reset()
        wa_fake.set_faults(seed=99, rates={"5xx": 0.4})
        return [send(wa_fake, text()).status_code for _ in range(30)]

    first = run()
    assert first == run()
    assert 500 in first and 200 in first


def test_duplicates_reordering_and_batching(wa_fake: FakeWhatsApp, sink: RecordingServer) -> None:
    wa_fake.configure(enforce_window=False, duplicate_rate=1.0)
    send(wa_fake, text())
    assert wa_fake.wait_idle(10)
    assert sorted(s["status"] for s in statuses(sink)) == ["delivered", "delivered", "read", "read", "sent", "sent"]

    sink.clear()
    wa_fake.configure(duplicate_rate=0.0, reorder_rate=1.0)
    for _ in range(8):
        send(wa_fake, text())
    assert wa_fake.wait_idle(10)
    orders: dict[str, list[str]] = {}
    for status in statuses(sink):
        orders.setdefault(status["id"], []).append(status["status"])
    assert len(orders) == 8
    assert any(order != ["sent", "delivered", "read"] for order in orders.values())

    sink.clear()
    wa_fake.configure(reorder_rate=0.0, batch_size=3)
    send(wa_fake, text())
    send(wa_fake, text())
    assert wa_fake.wait_idle(10)
    sizes = [len(json.loads(r.body)["entry"][0]["changes"][0]["value"]["statuses"]) for r in sink.received()]
    assert sum(sizes) == 6 and max(sizes) == 3


def test_push_now_delivers_delayed_statuses(wa_fake: FakeWhatsApp, sink: RecordingServer) -> None:
    wa_fake.configure(speed=1.0, enforce_window=False, status_delays={"sent": 300, "delivered": 600, "read": 900})
    send(wa_fake, text())
    assert wa_fake.stats_summary()["webhooks"]["pending"] == 3
    assert sink.received() == []
    assert requests.post(wa_fake.url + "/_fake/push", timeout=5).json()["ran"] == 3
    assert wa_fake.wait_idle(10)
    assert [s["status"] for s in statuses(sink)] == ["sent", "delivered", "read"]


def test_inbound_messages_are_signed_ascii_escaped_and_open_the_window(
    wa_fake: FakeWhatsApp, sink: RecordingServer
) -> None:
    result = requests.post(
        wa_fake.url + "/_fake/inbound",
        json={"from": "491701234567", "text": "Straße gesperrt? 😮", "name": "Jürgen"},
        timeout=5,
    ).json()
    assert wa_fake.wait_idle(10)
    (request,) = sink.received()
    assert request.body.decode() == result["body"]
    assert b"Stra\\u00dfe gesperrt? \\ud83d\\ude2e" in request.body
    assert request.body.isascii()
    expected = "sha256=" + hmac.new(WA_APP_SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["x-hub-signature-256"] == expected
    value = json.loads(request.body)["entry"][0]["changes"][0]["value"]
    assert value["contacts"][0]["profile"]["name"] == "Jürgen"
    assert value["messages"][0]["type"] == "text"
    assert wa_fake.window_open("491701234567")
    # mark-as-read works for that inbound id and only for known ids
    url = f"{wa_fake.url}/v23.0/{WA_PHONE_NUMBER_ID}/messages"
    read = {"messaging_product": "whatsapp", "status": "read", "message_id": result["id"]}
    assert requests.post(url, json=read, headers=AUTH, timeout=5).json() == {"success": True}
    read["message_id"] = "wamid.unknown"
    assert requests.post(url, json=read, headers=AUTH, timeout=5).json()["error"]["code"] == 131009


@pytest.mark.parametrize(
    ("kind", "extra", "key"),
    [
        ("image", {"text": "caption"}, "image"),
        ("location", {}, "location"),
        ("contacts", {}, "contacts"),
        ("reaction", {"text": "👍", "context_id": "wamid.X"}, "reaction"),
        ("button", {"text": "Yes", "payload": "ACK:1", "context_id": "wamid.T"}, "button"),
        ("interactive", {"text": "Yes", "payload": "rsvp:yes"}, "interactive"),
        ("list_reply", {"text": "Row", "payload": "row-1"}, "interactive"),
        ("unsupported", {}, "errors"),
    ],
)
def test_inbound_kinds(
    wa_fake: FakeWhatsApp, sink: RecordingServer, kind: str, extra: dict[str, Any], key: str
) -> None:
    wa_fake.inbound(kind=kind, **extra)
    assert wa_fake.wait_idle(10)
    message = json.loads(sink.received()[0].body)["entry"][0]["changes"][0]["value"]["messages"][0]
    assert key in message


def test_phone_number_lookup_and_unknown_ids(wa_fake: FakeWhatsApp) -> None:
    url = f"{wa_fake.url}/v23.0/{WA_PHONE_NUMBER_ID}"
    data = requests.get(url, params={"fields": "verified_name,display_phone_number"}, headers=AUTH, timeout=5).json()
    assert data == {
        "verified_name": "Stadt Musterstadt",
        "display_phone_number": "15550783881",
        "id": WA_PHONE_NUMBER_ID,
    }
    assert requests.get(url, timeout=5).json()["error"]["code"] == 190
    wa_fake.configure(strict_numbers=True)
    response = requests.get(f"{wa_fake.url}/v23.0/999", headers=AUTH, timeout=5)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == 100 and response.json()["error"]["error_subcode"] == 33


def test_template_list_paging(wa_fake: FakeWhatsApp) -> None:
    url = f"{wa_fake.url}/v23.0/{WA_WABA_ID}/message_templates"
    names = []
    params: dict[str, str] = {"limit": "3"}
    pages = 0
    while True:
        data = requests.get(url, params=params, headers=AUTH, timeout=5).json()
        pages += 1
        names += [(t["name"], t["language"]) for t in data["data"]]
        if "next" not in data.get("paging", {}):
            break
        params["after"] = data["paging"]["cursors"]["after"]
    assert pages == 3
    assert len(names) == len(set(names)) == 8
    filtered = requests.get(url, params={"status": "APPROVED"}, headers=AUTH, timeout=5).json()["data"]
    assert {t["status"] for t in filtered} == {"APPROVED"}


def test_control_api_requests_stats_and_synthesize(wa_fake: FakeWhatsApp, sink: RecordingServer) -> None:
    wa_fake.configure(enforce_window=False)
    send(wa_fake, text())
    send(wa_fake, text(), headers={})
    recorded = requests.get(wa_fake.url + "/_fake/requests", params={"kind": "send"}, timeout=5).json()["requests"]
    assert [r["status"] for r in recorded] == [200, 401]
    assert recorded[0]["body"]["text"]["body"] == "Straßensperrung"
    assert recorded[0]["headers"]["Authorization"] == f"Bearer {WA_TOKEN}"
    assert recorded[0]["recipient"] == "491701234567"
    stats = requests.get(wa_fake.url + "/_fake/stats", timeout=5).json()
    assert stats["sends"]["attempts"] == 2 and stats["sends"]["accepted"] == 1
    assert stats["outcomes"]["error:190"] == 1
    requests.post(wa_fake.url + "/_fake/wait_idle", timeout=15)
    sink.clear()
    requests.post(wa_fake.url + "/_fake/synthesize", json={"count": 5, "statuses": ["sent", "read"]}, timeout=5)
    assert requests.post(wa_fake.url + "/_fake/wait_idle", params={"timeout": 10}, timeout=15).json()["idle"]
    assert len(statuses(sink)) == 10


def test_verification_handshake(wa_fake: FakeWhatsApp, sink: RecordingServer) -> None:
    result = wa_fake.handshake("verify-me", challenge="1158201444")
    assert result == {"ok": True, "status": 200, "body": "1158201444"}
    (request,) = sink.received()
    assert request.method == "GET"
    assert request.query == {"hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": "verify-me"}


def test_per_number_secret_and_target(wa_fake: FakeWhatsApp, sink: RecordingServer) -> None:
    wa_fake.register_number("200000000000001", app_secret="other-secret", webhook_url=sink.url + "/tenant-b")
    wa_fake.inbound(phone_number_id="200000000000001", text="hi")
    assert wa_fake.wait_idle(10)
    (request,) = sink.received()
    assert request.path == "/tenant-b"
    expected = "sha256=" + hmac.new(b"other-secret", request.body, hashlib.sha256).hexdigest()
    assert request.headers["x-hub-signature-256"] == expected
