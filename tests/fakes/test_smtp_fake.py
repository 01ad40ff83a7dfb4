"""The SMTP sink and the RFC 8058 one-click helpers."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

import pytest
import requests

from tests.fakes.common import RecordingServer
from tests.fakes.fixtures import SMTP_PASSWORD, SMTP_USER
from tests.fakes.smtp import (
    FakeSMTP,
    OneClickError,
    list_unsubscribe_uris,
    one_click_unsubscribe,
    one_click_uri,
)


def mail(to: str = "erika@example.org", unsubscribe: str | None = None) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Stadt <news@stadt.example>"
    message["To"] = to
    message["Subject"] = "Straßenfest"
    message["Message-ID"] = "<d-1@stadt.example>"
    if unsubscribe:
        message["List-Unsubscribe"] = unsubscribe
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content("Am Samstag: Straßenfest.")
    message.add_alternative("<p>Am Samstag: <b>Straßenfest</b>.</p>", subtype="html")
    return message


def smtp(fake: FakeSMTP, login: bool = True) -> smtplib.SMTP:
    client = smtplib.SMTP(fake.host, fake.smtp_port, timeout=10)
    if login:
        client.login(SMTP_USER, SMTP_PASSWORD)
    return client


def test_stores_and_parses_messages(smtp_fake: FakeSMTP) -> None:
    with smtp(smtp_fake) as client:
        client.send_message(mail(unsubscribe="<https://alerts.example.org/u/abc>, <mailto:u@alerts.example.org>"))
    (stored,) = smtp_fake.wait_for(1)
    assert stored.mail_from == "news@stadt.example"
    assert stored.rcpt_tos == ["erika@example.org"]
    assert stored.authenticated_as == SMTP_USER
    assert stored.header("Subject") == "Straßenfest"
    assert stored.text.strip() == "Am Samstag: Straßenfest."
    assert "<b>Straßenfest</b>" in stored.html
    summary = requests.get(smtp_fake.url + "/_fake/messages", timeout=5).json()["messages"][0]
    assert summary["list_unsubscribe"] == ["https://alerts.example.org/u/abc", "mailto:u@alerts.example.org"]
    assert summary["list_unsubscribe_post"] == "List-Unsubscribe=One-Click"
    assert summary["message_id"] == "<d-1@stadt.example>"
    requests.post(smtp_fake.url + "/_fake/clear", timeout=5)
    assert smtp_fake.messages() == []


def test_login_is_required_and_checked(smtp_fake: FakeSMTP) -> None:
    client = smtplib.SMTP(smtp_fake.host, smtp_fake.smtp_port, timeout=10)
    with pytest.raises(smtplib.SMTPAuthenticationError):
        client.login(SMTP_USER, "wrong")
    with pytest.raises(smtplib.SMTPSenderRefused):
        client.send_message(mail())
    client.close()


def test_recipient_rules_and_data_faults(smtp_fake: FakeSMTP) -> None:
    smtp_fake.reject_recipient("gone@example.org")
    with smtp(smtp_fake) as client, pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        client.send_message(mail(to="gone@example.org"))
    assert refused.value.recipients["gone@example.org"][0] == 550
    smtp_fake.fail_next(1, "rate_limit")
    with smtp(smtp_fake) as client:
        with pytest.raises(smtplib.SMTPDataError) as data_error:
            client.send_message(mail())
        assert data_error.value.smtp_code == 451
        client.send_message(mail())
    assert len(smtp_fake.messages()) == 1
    assert smtp_fake.stats_summary()["outcomes"]["fault:rate_limit"] == 1


def test_list_unsubscribe_parsing() -> None:
    message = mail(unsubscribe="<mailto:u@x.org?subject=unsub>, <https://x.org/u/1>")
    assert list_unsubscribe_uris(message) == ["mailto:u@x.org?subject=unsub", "https://x.org/u/1"]
    assert one_click_uri(message) == "https://x.org/u/1"
    with pytest.raises(OneClickError, match="no https"):
        one_click_uri(mail(unsubscribe="<mailto:u@x.org>"))
    with pytest.raises(OneClickError, match="no List-Unsubscribe"):
        one_click_uri(mail())
    without_post = mail(unsubscribe="<https://x.org/u/1>")
    del without_post["List-Unsubscribe-Post"]
    with pytest.raises(OneClickError, match="List-Unsubscribe-Post"):
        one_click_uri(without_post)


@pytest.mark.parametrize("encoding", ["multipart", "urlencoded"])
def test_one_click_post_in_both_encodings(sink: RecordingServer, encoding: str) -> None:
    message = mail(unsubscribe="<https://alerts.example.org/u/Zx8kR2c9Qm>")
    response = one_click_unsubscribe(
        message, encoding=encoding, rewrite=lambda uri: uri.replace("https://alerts.example.org", sink.url)
    )
    assert response.status_code == 200
    (request,) = sink.received()
    assert request.method == "POST" and request.path == "/u/Zx8kR2c9Qm"
    assert "cookie" not in request.headers and "authorization" not in request.headers
    if encoding == "multipart":
        assert request.headers["content-type"].startswith("multipart/form-data")
        assert b'name="List-Unsubscribe"' in request.body and b"One-Click" in request.body
    else:
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        assert request.body == b"List-Unsubscribe=One-Click"


def test_one_click_rejects_redirects_and_errors(sink: RecordingServer) -> None:
    rewrite = {"rewrite": lambda uri: uri.replace("https://x.org", sink.url)}
    sink.status = 302
    with pytest.raises(OneClickError, match="redirect"):
        one_click_unsubscribe("https://x.org/u/1", **rewrite)  # type: ignore[arg-type]
    sink.status = 500
    with pytest.raises(OneClickError, match="500"):
        one_click_unsubscribe("https://x.org/u/1", **rewrite)  # type: ignore[arg-type]
    with pytest.raises(OneClickError, match="https"):
        one_click_unsubscribe("http://x.org/u/1")
