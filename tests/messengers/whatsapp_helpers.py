"""Helpers of the WhatsApp adapter tests (sending and webhooks): configs and adapters against the
fake Cloud API, webhook requests, and what the fake pushed to a sink."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from messengers.adapters import get_adapter
from messengers.adapters.base import (
    ConnectionConfig,
    Provider,
    WebhookRequest,
)
from messengers.adapters.whatsapp import WhatsAppAdapter
from tests.fakes.common import RecordingServer
from tests.fakes.fixtures import WA_APP_SECRET, WA_PHONE_NUMBER_ID, WA_TOKEN, WA_VERIFY_TOKEN, WA_WABA_ID
from tests.fakes.whatsapp import FakeWhatsApp

TO = "+49 170 1234567"
WA_ID = "491701234567"


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
