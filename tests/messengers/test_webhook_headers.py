"""Webhook answers skip most middleware (core.middleware.WebhookFastPathMiddleware), and the
challenge of Meta's handshake is echoed back: every answer, whatever its status, says nosniff and
no-store. The same for the other answers given before the page middleware runs (unknown host)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from tenants.models import Tenant
from tests.fakes.fixtures import WA_VERIFY_TOKEN
from tests.messengers.support import route_path, telegram_connection, twilio_connection, whatsapp_connection

HANDSHAKE = {"hub.mode": "subscribe", "hub.challenge": "<script>alert(1)</script>", "hub.verify_token": WA_VERIFY_TOKEN}


def _requests() -> list[tuple[str, str, dict[str, Any]]]:
    wa, bot, sms = whatsapp_connection(), telegram_connection(secret="s" * 32), twilio_connection()
    json = {"data": b"{}", "content_type": "application/json"}
    return [
        ("get", "/webhooks/whatsapp/", {"data": HANDSHAKE}),  # 200, the challenge echoed
        ("get", route_path(wa), {"data": HANDSHAKE}),
        ("get", "/webhooks/whatsapp/", {"data": {**HANDSHAKE, "hub.verify_token": "wrong"}}),  # 403
        ("get", "/webhooks/whatsapp/", {"data": {"hub.mode": "x"}}),  # 400
        ("post", "/webhooks/whatsapp/", json),  # 403: no signature
        ("put", "/webhooks/whatsapp/", {}),  # 405
        ("post", route_path(bot), json),  # 403: no secret
        ("post", "/webhooks/telegram/unknown-route/", json),  # 404
        ("get", route_path(bot), {}),  # 405
        ("post", route_path(sms), {"data": {"a": "b"}}),  # 403
        ("post", "/webhooks/twilio/unknown-route/", {"data": {"a": "b"}}),  # 404
    ]


def test_every_webhook_answer_says_nosniff_and_no_store(client_public: Client, tenant: Tenant) -> None:
    statuses = set()
    for method, path, kwargs in _requests():
        response = getattr(client_public, method)(path, **kwargs)
        statuses.add(response.status_code)
        assert response["X-Content-Type-Options"] == "nosniff", (method, path, response.status_code)
        assert response["Cache-Control"] == "no-store", (method, path)
        assert response["Content-Type"].startswith("text/")
    assert {200, 400, 403, 404, 405} <= statuses


@pytest.mark.parametrize("host", ["unknown.localhost", "tenant-a.localhost.", "TENANT-X.localhost"])
def test_answers_for_unknown_hosts_carry_the_security_headers(db: Any, host: str) -> None:
    response = Client(HTTP_HOST=host, raise_request_exception=False).get("/admin/")
    assert response.status_code == 404
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
