"""The fake Twilio Messaging API speaks the documented wire protocol (providers.md section 3)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, parse_qsl

import pytest
import requests

from tests.fakes.common import RecordingServer
from tests.fakes.fixtures import TW_ACCOUNT, TW_NUMBER, TW_TOKEN
from tests.fakes.twilio import DEFAULT_SERVICE_SID, FakeTwilio, twilio_signature

TO = "+491701234567"


def send(fake: FakeTwilio, auth: tuple[str, str] = (TW_ACCOUNT, TW_TOKEN), **form: Any) -> requests.Response:
    data = {"To": TO, "From": TW_NUMBER, "Body": "Sperrung ab 8 Uhr", **form}
    data = {k: v for k, v in data.items() if v is not None}
    url = f"{fake.url}/2010-04-01/Accounts/{TW_ACCOUNT}/Messages.json"
    return requests.post(url, data=data, auth=auth, timeout=10)


def test_signature_matches_twilios_published_example() -> None:
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+12349013030",
        "Digits": "1234",
        "From": "+12349013030",
        "To": "+18005551212",
    }
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert twilio_signature("12345", url, params) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


def test_send_returns_201_message_resource_and_status_callbacks(tw_fake: FakeTwilio, sink: RecordingServer) -> None:
    callback = sink.url + "/webhooks/twilio/abc?ref=d-17"
    response = send(tw_fake, StatusCallback=callback)
    assert response.status_code == 201
    message = response.json()
    assert message["sid"].startswith("SM") and len(message["sid"]) == 34
    assert message["status"] == "queued" and message["direction"] == "outbound-api"
    assert message["to"] == TO and message["from"] == TW_NUMBER
    assert message["num_segments"] == "1" and message["num_media"] == "0"
    assert message["uri"] == f"/2010-04-01/Accounts/{TW_ACCOUNT}/Messages/{message['sid']}.json"
    assert tw_fake.wait_idle(10)
    received = sink.received()
    assert [parse_qs(r.body.decode())["MessageStatus"] for r in received] == [["sent"], ["delivered"]]
    for request in received:
        params = dict(parse_qsl(request.body.decode(), keep_blank_values=True))
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        assert request.url == callback
        assert request.headers["x-twilio-signature"] == twilio_signature(TW_TOKEN, callback, params)
        assert params["MessageSid"] == params["SmsSid"] == message["sid"]
        assert params["AccountSid"] == TW_ACCOUNT and params["To"] == TO
    assert "RawDlrDoneDate" in dict(parse_qsl(received[1].body.decode()))
    fetched = requests.get(
        f"{tw_fake.url}/2010-04-01/Accounts/{TW_ACCOUNT}/Messages/{message['sid']}.json",
        auth=(TW_ACCOUNT, TW_TOKEN),
        timeout=5,
    ).json()
    assert fetched["status"] == "delivered"


def test_messaging_service_and_media(tw_fake: FakeTwilio) -> None:
    response = send(
        tw_fake, From=None, MessagingServiceSid=DEFAULT_SERVICE_SID, MediaUrl=["https://a/1.jpg", "https://a/2.jpg"]
    )
    message = response.json()
    assert response.status_code == 201
    assert message["status"] == "accepted" and message["from"] is None
    assert message["messaging_service_sid"] == DEFAULT_SERVICE_SID
    assert message["sid"].startswith("MM") and message["num_media"] == "2"
    assert tw_fake.requests(kind="send")[-1]["body"]["MediaUrl"] == ["https://a/1.jpg", "https://a/2.jpg"]


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"To": None}, 21604),
        ({"From": None}, 21603),
        ({"Body": None}, 21602),
        ({"Body": "x" * 1601}, 21617),
        ({"To": "12"}, 21211),
        ({"To": "+49 170"}, 21211),
        ({"From": None, "MessagingServiceSid": "MGnope"}, 21701),
        ({"StatusCallback": "ftp://x"}, 21609),
    ],
)
def test_validation_errors(tw_fake: FakeTwilio, form: dict[str, Any], code: int) -> None:
    response = send(tw_fake, **form)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == code and body["status"] == 400
    assert body["more_info"] == f"https://www.twilio.com/docs/errors/{code}"


def test_authentication_20003(tw_fake: FakeTwilio) -> None:
    for auth in ((TW_ACCOUNT, "wrong"), ("AC" + "1" * 32, TW_TOKEN)):
        response = send(tw_fake, auth=auth)
        assert response.status_code == 401
        assert response.json()["code"] == 20003
    account = requests.get(
        f"{tw_fake.url}/2010-04-01/Accounts/{TW_ACCOUNT}.json", auth=(TW_ACCOUNT, TW_TOKEN), timeout=5
    )
    assert account.json()["status"] == "active" and account.json()["sid"] == TW_ACCOUNT
    assert "auth_token" not in account.json()


def test_stop_opt_out_then_21610_then_start(tw_fake: FakeTwilio, sink: RecordingServer) -> None:
    result = tw_fake.inbound(sender=TO, text="  stop ")
    assert tw_fake.wait_idle(10)
    (request,) = sink.received()
    params = dict(parse_qsl(request.body.decode(), keep_blank_values=True))
    assert params["OptOutType"] == "STOP" and params["From"] == TO and params["To"] == TW_NUMBER
    assert params["SmsStatus"] == "received" and params["MessageSid"] == result["sid"]
    assert request.headers["x-twilio-signature"] == twilio_signature(TW_TOKEN, request.url, params)
    response = send(tw_fake)
    assert response.status_code == 400 and response.json()["code"] == 21610
    via_service = send(tw_fake, From=None, MessagingServiceSid=DEFAULT_SERVICE_SID)
    assert via_service.json()["code"] == 21610
    assert send(tw_fake, To="+491709999999").status_code == 201
    tw_fake.inbound(sender=TO, text="START")
    assert send(tw_fake).status_code == 201


def test_rate_limit_and_faults(tw_fake: FakeTwilio, sink: RecordingServer) -> None:
    tw_fake.configure(rate=1)
    codes = [send(tw_fake).status_code for _ in range(4)]
    assert codes[0] == 201 and 429 in codes
    limited = send(tw_fake)
    assert limited.json()["code"] == 20429
    tw_fake.configure(rate=None)
    tw_fake.fail_next(1, "rate_limit", retry_after=2)
    response = send(tw_fake)
    assert response.status_code == 429 and response.headers["Retry-After"] == "2"
    tw_fake.fail_next(1, "5xx")
    assert send(tw_fake).status_code == 500
    tw_fake.fail_recipient("+491700000009", "async_fail", code=30003)
    callback = sink.url + "/cb"
    assert send(tw_fake, To="+491700000009", StatusCallback=callback).status_code == 201
    assert tw_fake.wait_idle(10)
    (request,) = sink.received()
    params = dict(parse_qsl(request.body.decode()))
    assert params["MessageStatus"] == "undelivered" and params["ErrorCode"] == "30003"


def test_whatsapp_recipients_get_read_status(tw_fake: FakeTwilio, sink: RecordingServer) -> None:
    send(tw_fake, To="whatsapp:" + TO, From="whatsapp:" + TW_NUMBER, StatusCallback=sink.url + "/cb")
    assert tw_fake.wait_idle(10)
    assert [parse_qs(r.body.decode())["MessageStatus"][0] for r in sink.received()] == ["sent", "delivered", "read"]


def test_inbound_media_button_and_location(tw_fake: FakeTwilio, sink: RecordingServer) -> None:
    tw_fake.inbound(sender="whatsapp:" + TO, text="Ja", kind="button", payload="rsvp:yes")
    tw_fake.inbound(sender=TO, text="Foto", kind="media", media_urls=["https://api.twilio.com/media/1"])
    tw_fake.inbound(sender=TO, kind="location")
    assert tw_fake.wait_idle(10)
    forms = [dict(parse_qsl(r.body.decode(), keep_blank_values=True)) for r in sink.received()]
    by_kind = {("ButtonPayload" in f, "MediaUrl0" in f, "Latitude" in f): f for f in forms}
    assert by_kind[(True, False, False)]["ProfileName"] == "Erika"
    assert by_kind[(False, True, False)]["NumMedia"] == "1"
    assert by_kind[(False, False, True)]["Longitude"] == "13.405"
