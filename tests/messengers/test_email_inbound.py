"""Inbound e-mail parsing (messengers.adapters.email_inbound): sender, ids and recipients; text
in every charset and transfer encoding mail programs use; HTML-only mail; the quoted message and
signature cut off as German and English clients write them; automatic mail dropped; attachments
noted, never read; caps; and hypothesis: arbitrary bytes never raise anything else than
WebhookParseError. No database needed."""

from __future__ import annotations

import base64
import quopri
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from messengers.adapters.base import ConnectionConfig, InboundMessage, Provider, WebhookParseError, WebhookRequest
from messengers.adapters.email import EmailAdapter
from messengers.adapters.email_inbound import (
    Limits,
    html_to_text,
    mail_signature,
    parse_message,
    strip_reply,
    verify_mail_signature,
)
from tests.fakes.strategies import mail_messages

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def mail(
    body: bytes | str,
    *,
    content_type: str = "text/plain; charset=utf-8",
    encoding: str = "8bit",
    headers: dict[str, str] | None = None,
) -> bytes:
    fields = {
        "From": "Erika Muster <Erika.Muster@Example.ORG>",
        "To": "Stadt A <news@stadt-a.example>",
        "Subject": "Re: Feinstaubalarm",
        "Message-ID": "<m1@mail.example.org>",
        "Date": "Tue, 01 Dec 2026 11:30:00 +0100",
        "MIME-Version": "1.0",
        "Content-Type": content_type,
        "Content-Transfer-Encoding": encoding,
        **(headers or {}),
    }
    head = "".join(f"{name}: {value}\r\n" for name, value in fields.items() if value)
    data = body.encode() if isinstance(body, str) else body
    return head.encode() + b"\r\n" + data


def parsed(raw: bytes, **kwargs: object) -> InboundMessage:
    message = parse_message(raw, now=NOW, **kwargs)  # type: ignore[arg-type]
    assert message is not None
    return message


# --------------------------------------------------------------------------------------------
# Headers
# --------------------------------------------------------------------------------------------
def test_sender_ids_and_recipients() -> None:
    raw = mail(
        "Wann ist der Alarm vorbei?",
        headers={
            "From": "=?utf-8?q?Erika_M=C3=BCller?= <Erika.Mueller@Example.ORG>",
            "Cc": "Zweite <Second@Example.org>, dritte@example.org",
            "Delivered-To": "News+fwd-1-abc@Stadt-A.example",
            "In-Reply-To": "<o17@stadt-a.example>",
            "References": "<b3-1@stadt-a.example>\r\n <o17@stadt-a.example>",
        },
    )
    message = parsed(raw)
    assert message.sender == "erika.mueller@example.org" and message.sender_name == "Erika Müller"
    assert message.provider_message_id == "<m1@mail.example.org>"
    assert message.reply_to_provider_id == "<o17@stadt-a.example>"
    assert message.at == datetime(2026, 12, 1, 10, 30, tzinfo=UTC)
    assert message.kind == "text" and message.text == "Wann ist der Alarm vorbei?"
    payload = message.payload
    assert payload["to"] == ["news@stadt-a.example"]
    assert payload["cc"] == ["second@example.org", "dritte@example.org"]
    assert payload["delivered_to"] == ["news+fwd-1-abc@stadt-a.example"]
    assert payload["references"] == ["<b3-1@stadt-a.example>", "<o17@stadt-a.example>"]
    assert payload["subject"] == "Re: Feinstaubalarm"


def test_a_message_without_message_id_gets_one_from_its_bytes_and_dates_are_clamped() -> None:
    raw = mail("Hallo", headers={"Message-ID": "", "Date": "Sat, 01 Jan 2050 00:00:00 +0000"})
    first, again = parsed(raw), parsed(raw)
    assert first.provider_message_id == again.provider_message_id
    assert first.provider_message_id.endswith("@no-message-id.invalid>")
    assert parsed(mail("Hallo x", headers={"Message-ID": ""})).provider_message_id != first.provider_message_id
    assert first.at == NOW  # never in the future
    old = parsed(mail("x", headers={"Date": "Mon, 01 Jan 2001 00:00:00 +0000"}))
    assert old.at == NOW - timedelta(days=7)
    assert parsed(mail("x", headers={"Date": "gestern"})).at == NOW


@pytest.mark.parametrize("sender", ["", "nobody", "<>", "Erika <erika at example.org>", "a@b@c"])
def test_no_sender_address_is_malformed(sender: str) -> None:
    with pytest.raises(WebhookParseError):
        parse_message(mail("Hallo", headers={"From": sender}), now=NOW)


@pytest.mark.parametrize("raw", [b"", b"   \r\n", b"\x00\xff\xfe", b"just some text", b"{json: 1}"])
def test_what_is_no_mail_is_malformed(raw: bytes) -> None:
    with pytest.raises(WebhookParseError):
        parse_message(raw, now=NOW)


@pytest.mark.parametrize(
    "headers",
    [
        {"Auto-Submitted": "auto-replied"},
        {"Auto-Submitted": "auto-generated"},
        {"Precedence": "bulk"},
        {"X-Autoreply": "yes"},
        {"From": "MAILER-DAEMON@mail.example.org"},
        {"Subject": "Automatische Antwort: Feinstaubalarm"},
        {"Subject": "Automatic reply: Feinstaubalarm"},
        {"Subject": "Abwesenheitsnotiz"},
        {"Content-Type": 'multipart/report; report-type=delivery-status; boundary="x"'},
    ],
)
def test_automatic_mail_gives_no_event(headers: dict[str, str]) -> None:
    assert parse_message(mail("Ich bin bis Montag nicht im Büro.", headers=headers), now=NOW) is None


def test_auto_submitted_no_is_a_person() -> None:
    assert parsed(mail("STOP", headers={"Auto-Submitted": "no"})).text == "STOP"


# --------------------------------------------------------------------------------------------
# Charsets and transfer encodings
# --------------------------------------------------------------------------------------------
TEXT = "Grüße aus Bad Cannstatt – wann endet der Alarm? 5 €"


@pytest.mark.parametrize(
    ("charset", "encoding", "body"),
    [
        ("utf-8", "8bit", TEXT.encode("utf-8")),
        ("utf-8", "quoted-printable", quopri.encodestring(TEXT.encode("utf-8"))),
        ("utf-8", "base64", base64.encodebytes(TEXT.encode("utf-8"))),
        ("cp1252", "8bit", TEXT.encode("cp1252")),
        ("windows-1252", "quoted-printable", quopri.encodestring(TEXT.encode("cp1252"))),
        ("iso-8859-15", "base64", base64.encodebytes(TEXT.replace("–", "-").encode("iso-8859-15"))),
    ],
)
def test_text_in_its_charset_and_transfer_encoding(charset: str, encoding: str, body: bytes) -> None:
    raw = mail(body, content_type=f"text/plain; charset={charset}", encoding=encoding)
    expected = TEXT.replace("–", "-") if charset == "iso-8859-15" else TEXT
    assert parsed(raw).text == expected


def test_latin1_text_and_wrong_or_unknown_charsets_fall_back() -> None:
    latin = "Grüße, Straße gesperrt"
    assert parsed(mail(latin.encode("iso-8859-1"), content_type="text/plain; charset=iso-8859-1")).text == latin
    # declared UTF-8 but written in cp1252 (a common mistake): cp1252, not replacement characters
    assert parsed(mail(TEXT.encode("cp1252"), content_type="text/plain; charset=utf-8")).text == TEXT
    for charset in ("x-unknown", "rot13", "base64", "utf-16"):
        text = parsed(mail(latin.encode("utf-8"), content_type=f"text/plain; charset={charset}")).text
        assert "Stra" in text, charset
    assert parsed(mail(latin.encode("utf-8"), content_type="text/plain")).text == latin  # no charset


def test_encoded_subject_and_raw_utf8_headers() -> None:
    raw = mail("x", headers={"Subject": "=?iso-8859-1?q?Gr=FC=DFe?= aus =?utf-8?b?U3R1dHRnYXJ0?="})
    assert parsed(raw).payload["subject"] == "Grüße aus Stuttgart"
    raw8 = mail("x", headers={"Subject": "Straße"}).replace(b"Stra\xc3\x9fe", "Straße".encode())
    assert parsed(raw8).payload["subject"] == "Straße"


# --------------------------------------------------------------------------------------------
# Structure: multipart, HTML only, attachments, caps
# --------------------------------------------------------------------------------------------
def multipart(*parts: tuple[str, bytes, str], subtype: str = "mixed", headers: dict[str, str] | None = None) -> bytes:
    chunks = []
    for content_type, body, extra in parts:
        chunks.append(f"--XYZ\r\nContent-Type: {content_type}\r\n{extra}\r\n".encode() + body + b"\r\n")
    return mail(b"".join(chunks) + b"--XYZ--\r\n", content_type=f'multipart/{subtype}; boundary="XYZ"', headers=headers)


def test_the_plain_part_wins_over_html_and_attachments_are_only_noted() -> None:
    raw = multipart(
        ("text/plain; charset=utf-8", "Bitte prüfen".encode(), ""),
        ("text/html; charset=utf-8", b"<p>HTML version</p>", ""),
        (
            "application/pdf",
            base64.encodebytes(b"%PDF-1.4" * 100),
            'Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename="Plan.pdf"\r\n',
        ),
        (
            "text/plain; charset=utf-8",
            b"attached text, not the body",
            'Content-Disposition: attachment; filename="notes.txt"\r\n',
        ),
        ("message/rfc822", mail("forwarded body, not ours"), ""),
    )
    message = parsed(raw)
    assert message.text == "Bitte prüfen" and message.kind == "text"
    attachments = message.payload["attachments"]
    assert [(a["filename"], a["content_type"]) for a in attachments] == [
        ("Plan.pdf", "application/pdf"),
        ("notes.txt", "text/plain"),
        ("", "message/rfc822"),
    ]
    assert attachments[0]["size"] > 800


def test_html_only_mail_is_converted_to_text_without_the_quote() -> None:
    html = (
        "<html><head><style>p{color:red}</style><title>t</title></head><body>"
        "<div>Sehr geehrte Damen &amp; Herren,</div><div>der Baum ist morsch.<br>Danke!</div>"
        "<ul><li>eins</li><li>zwei</li></ul><script>alert(1)</script>"
        '<div class="gmail_quote"><div>Am Di., 1. Dez. 2026 um 09:00 Uhr schrieb Stadt A '
        "&lt;news@stadt-a.example&gt;:</div><blockquote><p>Feinstaubalarm ab morgen</p></blockquote></div>"
        "</body></html>"
    )
    message = parsed(mail(html.encode(), content_type="text/html; charset=utf-8"))
    assert message.text == "Sehr geehrte Damen & Herren,\nder Baum ist morsch.\nDanke!\n- eins\n- zwei"
    assert message.payload["html_only"] is True
    assert "color" not in message.text and "alert" not in message.text


def test_html_to_text_survives_broken_markup() -> None:
    for html in [
        "<p>offen",
        "</div></blockquote>text",
        "<![if !supportLists]>x<![endif]>",
        "<a href='",
        "&#xZZ; &bogus;",
    ]:
        assert isinstance(html_to_text(html), str)


def test_caps_on_text_and_parts() -> None:
    long = ("Satz. " * 10_000).encode()
    message = parsed(mail(long), limits=Limits(part_bytes=1000, text_chars=200, parts=50))
    assert len(message.text) == 200 and message.payload["truncated"] is True
    many = multipart(
        *[("image/png", b"x", f'Content-Disposition: attachment; filename="{i}.png"\r\n') for i in range(80)]
    )
    capped = parsed(many, limits=Limits(parts=10))
    assert len(capped.payload["attachments"]) < 10


def test_a_message_without_body_takes_its_subject() -> None:
    assert parsed(mail("", headers={"Subject": "AW: Re: STOP"})).text == "STOP"
    only_attachment = multipart(("image/jpeg", b"\xff\xd8", 'Content-Disposition: attachment; filename="baum.jpg"\r\n'))
    message = parsed(only_attachment)
    assert message.kind == "text" and message.text == "Feinstaubalarm"  # the subject, after "Re:"


def test_attachment_only_without_subject_is_a_document() -> None:
    raw = multipart(
        ("image/jpeg", b"\xff\xd8", 'Content-Disposition: attachment; filename="baum.jpg"\r\n'),
        headers={"Subject": ""},
    )
    message = parsed(raw)
    assert message.kind == "document" and message.text == ""


# --------------------------------------------------------------------------------------------
# The quoted message and the signature
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        # Thunderbird, German
        (
            "Danke für die Info!\n\nAm 01.12.2026 um 09:00 schrieb Stadt A:\n> Feinstaubalarm\n> ab morgen\n",
            "Danke für die Info!",
        ),
        # Gmail, German, attribution wrapped over two lines
        (
            "Gilt das auch für Vaihingen?\n\nAm Di., 1. Dez. 2026 um 09:00 Uhr schrieb Stadt A <\nnews@stadt-a.example>:\n\n> Alarm\n",
            "Gilt das auch für Vaihingen?",
        ),
        # Gmail, English, wrapped
        ("Thanks!\n\nOn Tue, Dec 1, 2026 at 9:00 AM Stadt A <news@stadt-a.example>\nwrote:\n\n> Alarm\n", "Thanks!"),
        # Apple Mail, English
        (
            "Is the S-Bahn affected?\n\n> On 1 Dec 2026, at 09:00, Stadt A <news@stadt-a.example> wrote:\n>\n> Alarm\n",
            "Is the S-Bahn affected?",
        ),
        # Outlook, German header block after an underscore line
        (
            "Wir kümmern uns darum.\n\nMit freundlichen Grüßen\nAmt für Umweltschutz\n\n________________________________\nVon: Stadt A <news@stadt-a.example>\nGesendet: Dienstag, 1. Dezember 2026 09:00\nAn: umwelt@stadt-a.example\nBetreff: [A-00001] Frage\n\nDer Baum ist morsch.\n",
            "Wir kümmern uns darum.\n\nMit freundlichen Grüßen\nAmt für Umweltschutz",
        ),
        # Outlook, English, bold labels as in HTML converted
        (
            "Fixed tomorrow.\n\nFrom: Stadt A <news@stadt-a.example>\nSent: Tuesday, December 1, 2026 9:00 AM\nTo: env@stadt-a.example\nSubject: Question\n\nold\n",
            "Fixed tomorrow.",
        ),
        ("Erledigt.\n\n-----Original Message-----\nFrom: x\nold\n", "Erledigt."),
        ("Erledigt.\n\n-----Ursprüngliche Nachricht-----\nVon: x\nalt\n", "Erledigt."),
        # signature delimiter (with and without its trailing space) and a phone's signature
        ("Ja, ab 18 Uhr.\n-- \nErika Muster\nTel. 0711 123456\n", "Ja, ab 18 Uhr."),
        ("Ja.\n--\nErika\n", "Ja."),
        ("Kommt morgen.\n\nVon meinem iPhone gesendet\n", "Kommt morgen."),
        ("Kommt morgen.\n\nSent from my iPhone\n", "Kommt morgen."),
        # bottom posting and interleaved answers keep what the person wrote
        (
            "On Tue, Dec 1 Stadt A wrote:\n> Frage 1?\n\nAntwort 1\n\n> Frage 2?\n\nAntwort 2\n",
            "Antwort 1\n\nAntwort 2",
        ),
        # no quote at all, and sentences that merely look like it
        (
            "Am Montag war die Luft schlecht.\nVon: mir\nWer schrieb das?",
            "Am Montag war die Luft schlecht.\nVon: mir\nWer schrieb das?",
        ),
        ("STOP", "STOP"),
    ],
)
def test_strip_reply(reply: str, expected: str) -> None:
    assert strip_reply(reply) == expected
    assert strip_reply(reply.replace("\n", "\r\n")) == expected


def test_a_reply_that_is_only_a_quote_keeps_the_whole_text_and_says_so() -> None:
    message = parsed(mail("> Feinstaubalarm ab morgen\n"))
    assert message.text == "> Feinstaubalarm ab morgen" and message.payload["quote_only"] is True


# --------------------------------------------------------------------------------------------
# Signature and the adapter
# --------------------------------------------------------------------------------------------
SECRET = "mail-secret-1"


def adapter(secret: str = SECRET) -> EmailAdapter:
    config = ConnectionConfig(
        provider=Provider.EMAIL,
        credentials={"inbound_secret": secret} if secret else {},
        external_id="news@stadt-a.example",
    )
    return EmailAdapter(config)


def request(body: bytes, signature: str | None) -> WebhookRequest:
    headers = {"x-mail-signature": signature} if signature is not None else {}
    return WebhookRequest(method="POST", url="https://x/webhooks/email/r/", headers=headers, body=body)


def test_signature_over_the_raw_body() -> None:
    body = mail("Hallo")
    good = mail_signature(SECRET, body)
    assert good == "sha256=" + __import__("hmac").new(SECRET.encode(), body, "sha256").hexdigest()
    assert verify_mail_signature(SECRET, good, body) and verify_mail_signature(
        SECRET, good.upper().replace("SHA256", "sha256"), body
    )
    assert adapter().verify_webhook(request(body, good))
    for bad in (None, "", "sha256=", good[:-1], mail_signature("other", body), good.replace("sha256", "sha1")):
        assert not adapter().verify_webhook(request(body, bad)), bad
    assert not adapter().verify_webhook(request(body + b" ", good))  # tampered body
    assert not adapter(secret="").verify_webhook(request(body, mail_signature("", body)))  # no secret: closed
    event = adapter().parse_webhook(request(body, good))[0]
    assert isinstance(event, InboundMessage) and event.text == "Hallo"
    assert adapter().parse_webhook(request(mail("x", headers={"Auto-Submitted": "auto-replied"}), good)) == []


FUZZ = settings(
    max_examples=400,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FUZZ
@given(raw=mail_messages)
@example(raw=b'From: a@b.de\nContent-Type: text/plain; charset="x\x00y"\n\n\xe4')  # once found by CI
def test_arbitrary_messages_never_raise_anything_but_a_parse_error(raw: bytes) -> None:
    try:
        message = parse_message(raw, now=NOW, limits=Limits(part_bytes=300, text_chars=100, parts=20))
    except WebhookParseError:
        return
    if message is not None:
        assert "@" in message.sender and message.sender == message.sender.lower()
        assert 0 < len(message.provider_message_id) <= 200 and len(message.text) <= 100
        assert "\x00" not in message.text


@FUZZ
@given(
    raw=st.binary(max_size=600),
    prefix=st.sampled_from(
        [b"", b"From: a@b.c\r\n", b"From: a@b.c\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n"]
    ),
)
def test_arbitrary_bytes_never_raise_anything_but_a_parse_error(raw: bytes, prefix: bytes) -> None:
    try:
        parse_message(prefix + raw, now=NOW)
    except WebhookParseError:
        pass


@FUZZ
@given(text=st.text(max_size=300))
def test_strip_reply_and_html_to_text_take_any_text(text: str) -> None:
    assert len(strip_reply(text)) <= len(text.replace("\r\n", "\n")) + 1
    html_to_text(text)


def test_outlook_html_reply_loses_its_header_block() -> None:
    html = (
        '<html><body><div>Wir prüfen das bis Freitag.</div><div><br></div><hr style="display:inline-block">'
        '<div id="divRplyFwdMsg"><font><b>Von:</b> Stadt A &lt;news@stadt-a.example&gt;<br>'
        "<b>Gesendet:</b> Dienstag, 1. Dezember 2026 09:00<br><b>An:</b> Umweltamt<br>"
        "<b>Betreff:</b> [A-00001] Frage</font><div>&nbsp;</div></div><div>Der Baum ist morsch.</div></body></html>"
    )
    message = parsed(mail(html.encode(), content_type="text/html; charset=utf-8"))
    assert message.text == "Wir prüfen das bis Freitag."
