"""EmailAdapter against the SMTP sink: headers (RFC 8058), Message-ID, errors, credentials."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import aiohttp
import pytest

from messengers.adapters import get_adapter
from messengers.adapters.base import (
    Button,
    ConnectionConfig,
    ErrorKind,
    Media,
    OutgoingMessage,
    Provider,
    ProviderError,
    WebhookParseError,
    WebhookRequest,
)
from messengers.adapters.email import EmailAdapter
from tests.fakes.common import RecordingServer
from tests.fakes.fixtures import SMTP_PASSWORD, SMTP_USER
from tests.fakes.smtp import FakeSMTP, list_unsubscribe_uris, one_click_unsubscribe

SENDER = "news@stadt-a.example"
UNSUBSCRIBE = "https://alerts.example.org/u/Zx8kR2c9Qm"


def make_config(fake: FakeSMTP | None, **credentials: str) -> ConnectionConfig:
    base = {
        "host": fake.host if fake else "127.0.0.1",
        "port": str(fake.smtp_port if fake else 9),
        "username": SMTP_USER,
        "password": SMTP_PASSWORD,
        "use_tls": "false",
    }
    return ConnectionConfig(
        provider=Provider.EMAIL,
        credentials={**base, **credentials},
        external_id=SENDER,
        timeout=5.0,
        connection_id=4,
    )


def adapter_for(fake: FakeSMTP | None, **credentials: str) -> EmailAdapter:
    adapter = get_adapter(make_config(fake, **credentials))
    assert isinstance(adapter, EmailAdapter)
    return adapter


def broadcast(**overrides: Any) -> OutgoingMessage:
    message = OutgoingMessage(
        to="erika@example.org",
        subject="Straßenfest am Samstag",
        text="Am Samstag feiern wir.",
        html="<p>Am Samstag <b>feiern</b> wir.</p>",
        reference="delivery-77",
        unsubscribe_url=UNSUBSCRIBE,
        unsubscribe_mailto="unsubscribe@alerts.example.org?subject=unsub-77",
    )
    return replace(message, **overrides)


def test_registry_and_repr_hide_the_password(smtp_fake: FakeSMTP) -> None:
    adapter = adapter_for(smtp_fake)
    assert adapter.provider is Provider.EMAIL and not adapter.native_async
    assert SMTP_PASSWORD not in repr(adapter)


def test_send_with_one_click_unsubscribe_headers(smtp_fake: FakeSMTP) -> None:
    adapter = adapter_for(smtp_fake)
    result = adapter.send(broadcast())
    assert result.provider_message_id == "<delivery-77@stadt-a.example>"
    (mail,) = smtp_fake.wait_for(1)
    assert mail.mail_from == SENDER and mail.rcpt_tos == ["erika@example.org"]
    assert mail.authenticated_as == SMTP_USER
    assert mail.header("Message-ID") == result.provider_message_id
    assert mail.header("Subject") == "Straßenfest am Samstag"
    assert mail.header("List-Unsubscribe") == (
        f"<{UNSUBSCRIBE}>, <mailto:unsubscribe@alerts.example.org?subject=unsub-77>"
    )
    assert mail.header("List-Unsubscribe-Post") == "List-Unsubscribe=One-Click"
    assert mail.text.strip() == "Am Samstag feiern wir."
    assert "<b>feiern</b>" in mail.html
    adapter.close()


def test_one_click_post_reaches_the_endpoint(smtp_fake: FakeSMTP, sink: RecordingServer) -> None:
    adapter_for(smtp_fake).send(broadcast())
    (mail,) = smtp_fake.wait_for(1)
    assert list_unsubscribe_uris(mail.message)[0] == UNSUBSCRIBE
    local = {"rewrite": lambda uri: uri.replace("https://alerts.example.org", sink.url)}
    assert one_click_unsubscribe(mail.message, encoding="multipart", **local).status_code == 200  # type: ignore[arg-type]
    assert one_click_unsubscribe(mail.message, encoding="urlencoded", **local).status_code == 200  # type: ignore[arg-type]
    first, second = sink.received()
    assert first.path == second.path == "/u/Zx8kR2c9Qm"
    assert first.headers["content-type"].startswith("multipart/form-data")
    assert second.body == b"List-Unsubscribe=One-Click"


def test_headers_without_https_url_or_without_unsubscribe(smtp_fake: FakeSMTP) -> None:
    adapter = adapter_for(smtp_fake)
    adapter.send(broadcast(unsubscribe_url="", unsubscribe_mailto="mailto:u@x.example", reference="r-2"))
    adapter.send(broadcast(unsubscribe_url="", unsubscribe_mailto="", reference=""))
    first, second = smtp_fake.wait_for(2)
    assert first.header("List-Unsubscribe") == "<mailto:u@x.example>"
    assert first.header("List-Unsubscribe-Post") == ""
    assert second.header("List-Unsubscribe") == "" and second.header("Message-ID").endswith("@stadt-a.example>")


def test_links_and_media_are_appended_to_the_text(smtp_fake: FakeSMTP) -> None:
    message = broadcast(
        html="",
        buttons=(Button(title="Programm", url="https://stadt-a.example/fest"), Button(title="Ja", payload="yes")),
        media=Media(url="https://cdn.example.org/plakat.jpg"),
        reference="ref with spaces/and:colons",
    )
    result = adapter_for(smtp_fake).send(message)
    assert result.provider_message_id == "<ref-with-spaces-and-colons@stadt-a.example>"
    (mail,) = smtp_fake.wait_for(1)
    assert mail.text.strip().splitlines() == [
        "Am Samstag feiern wir.",
        "",
        "Programm: https://stadt-a.example/fest",
        "",
        "https://cdn.example.org/plakat.jpg",
    ]
    assert mail.html == ""


def test_connection_is_reused_between_sends(smtp_fake: FakeSMTP) -> None:
    adapter = adapter_for(smtp_fake)
    for i in range(3):
        adapter.send(broadcast(reference=f"r{i}"))
    mails = smtp_fake.wait_for(3)
    assert len({m.peer for m in mails}) == 1
    adapter.close()


def test_send_async_runs_in_a_thread(smtp_fake: FakeSMTP) -> None:
    adapter = adapter_for(smtp_fake)

    async def run() -> str:
        async with aiohttp.ClientSession() as session:
            result = await adapter.send_async(session, broadcast())
        return result.provider_message_id

    assert asyncio.run(run()) == "<delivery-77@stadt-a.example>"
    assert len(smtp_fake.wait_for(1)) == 1


def test_smtp_errors_are_classified(smtp_fake: FakeSMTP) -> None:
    adapter = adapter_for(smtp_fake)
    smtp_fake.reject_recipient("gone@example.org")
    with pytest.raises(ProviderError) as error:
        adapter.send(broadcast(to="gone@example.org"))
    assert error.value.kind is ErrorKind.INVALID_RECIPIENT and error.value.code == "550"
    smtp_fake.reject_recipient("busy@example.org", code=450, message="4.2.1 Mailbox busy")
    with pytest.raises(ProviderError) as error:
        adapter.send(broadcast(to="busy@example.org"))
    assert error.value.kind is ErrorKind.TEMPORARY and error.value.code == "450"
    smtp_fake.fail_next(1, "rate_limit")
    with pytest.raises(ProviderError) as error:
        adapter.send(broadcast())
    assert error.value.kind is ErrorKind.TEMPORARY and error.value.code == "451"
    smtp_fake.fail_next(1, "5xx")
    with pytest.raises(ProviderError) as error:
        adapter.send(broadcast())
    assert error.value.kind is ErrorKind.BAD_REQUEST and error.value.code == "554"
    adapter.send(broadcast())  # the connection recovers after errors
    assert len(smtp_fake.wait_for(1)) == 1
    with pytest.raises(ProviderError) as error:
        adapter.send(broadcast(subject="Injected\nBcc: everyone@example.org"))
    assert error.value.kind is ErrorKind.BAD_REQUEST


def test_bad_login_and_unreachable_server(smtp_fake: FakeSMTP) -> None:
    wrong = adapter_for(smtp_fake, password="wrong-password")
    with pytest.raises(ProviderError) as error:
        wrong.send(broadcast())
    assert error.value.kind is ErrorKind.BAD_CREDENTIALS and "wrong-password" not in str(error.value)
    with pytest.raises(ProviderError) as error:
        adapter_for(None).send(broadcast())
    assert error.value.kind is ErrorKind.TEMPORARY
    with pytest.raises(ProviderError) as error:
        adapter_for(smtp_fake, host="").send(broadcast())
    assert error.value.kind is ErrorKind.ACCOUNT_PROBLEM
    with pytest.raises(ProviderError) as error:
        adapter_for(smtp_fake, host="a..b").send(broadcast())  # IDNA refuses it before any lookup
    assert error.value.kind is ErrorKind.ACCOUNT_PROBLEM
    assert not adapter_for(smtp_fake, host="a..b").check_credentials().ok


def test_check_credentials(smtp_fake: FakeSMTP) -> None:
    good = adapter_for(smtp_fake).check_credentials()
    assert good.ok and good.detail == f"Connected to {smtp_fake.host}:{smtp_fake.smtp_port} as {SMTP_USER}"
    bad = adapter_for(smtp_fake, password="wrong-password").check_credentials()
    assert not bad.ok and "rejected" in bad.detail and "wrong-password" not in bad.detail
    offline = adapter_for(None).check_credentials()
    assert not offline.ok and "Cannot reach" in offline.detail
    assert not adapter_for(smtp_fake, host="").check_credentials().ok


def test_no_webhooks() -> None:
    adapter = adapter_for(None)
    request = WebhookRequest(method="POST", url="https://x/", headers={}, body=b"{}")
    assert adapter.verify_webhook(request) is False
    with pytest.raises(WebhookParseError):
        adapter.parse_webhook(request)
