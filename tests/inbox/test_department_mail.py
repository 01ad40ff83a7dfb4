"""A department answers a forwarded question by replying to the e-mail, end to end over real SMTP
(the sink in tests/fakes/smtp.py) and the signed e-mail webhook: the forward's Reply-To and
Message-ID carry a signed tag; the reply becomes the conversation's draft through forward_answer
(once, not after expiry, only in its own tenant); department mail never becomes a contact, a
keyword command or a citizen's conversation. And citizens' own e-mail: it opens conversations,
and agents' answers go back as e-mail threaded under it."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import timedelta
from email.utils import getaddresses
from typing import Any

import pytest
from django.core import mail as django_mail
from django.test import Client, override_settings
from django.utils import timezone
from django_tenants.utils import schema_context

from accounts import roles
from inbox import services
from inbox.models import Conversation, Department, Entry, Forward, InboxSettings
from messengers import services as messenger_services
from messengers.adapters.email_inbound import mail_signature
from messengers.models import Connection, Contact, InboundMessage, SandboxMessage, WebhookEvent
from tenants.models import Tenant
from tests.factories import make_user
from tests.fakes.fixtures import SMTP_PASSWORD, SMTP_USER, smtp_fake, smtp_server  # noqa: F401
from tests.fakes.smtp import FakeSMTP, StoredMail
from tests.messengers.support import KeepTenant, apply_all, forget_caches, route_path

pytestmark = pytest.mark.usefixtures("tenant")

SECRET_A = "inbound-secret-a"
SECRET_B = "inbound-secret-b"
QUESTION = "Der Baum vor Nr. 5 ist morsch."


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    forget_caches()
    yield
    forget_caches()


def email_connection(fake: FakeSMTP, *, secret: str = SECRET_A, address: str = "news@stadt-a.example") -> Connection:
    credentials = {
        "host": fake.host,
        "port": str(fake.smtp_port),
        "username": SMTP_USER,
        "password": SMTP_PASSWORD,
        "use_tls": "false",
    }
    if secret:
        credentials["inbound_secret"] = secret
    return messenger_services.connection_create(
        provider="email", name="Newsletter", credentials=credentials, external_id=address, by_operator=True
    )


def platform_mail_to(fake: FakeSMTP) -> Any:
    """Django's own mail (forwards to departments) through the SMTP sink."""
    return override_settings(
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST=fake.host,
        EMAIL_PORT=fake.smtp_port,
        EMAIL_HOST_USER=SMTP_USER,
        EMAIL_HOST_PASSWORD=SMTP_PASSWORD,
        EMAIL_USE_TLS=False,
    )


@pytest.fixture
def asked() -> Conversation:
    sandbox = Connection.objects.get(provider="sandbox")
    person = messenger_services.sandbox_person_create(connection=sandbox, name="Erika Muster")
    messenger_services.sandbox_receive(connection=sandbox, address=person.address, text=QUESTION)
    apply_all()
    return Conversation.objects.get(contact=person)


@pytest.fixture
def amt() -> Department:
    return Department.objects.create(name="Amt für Umweltschutz", email="Umwelt@Stadt-A.example")


def forward_by_mail(
    fake: FakeSMTP, conversation: Conversation, amt: Department, capture: Any, **kwargs: Any
) -> tuple[Forward, StoredMail]:
    agent = make_user(roles.INBOX_AGENT, username=f"agent{Forward.objects.count()}")
    before = len(fake.messages())
    with platform_mail_to(fake), capture(execute=True):
        sent = services.conversation_forward(
            conversation=conversation, actor=agent, department=amt, question=conversation.preview, **kwargs
        )
    mails = fake.wait_for(before + 1)
    assert len(mails) == before + 1
    sent.refresh_from_db()
    return sent, mails[-1]


def reply_to(original: StoredMail, text: str, *, sender: str = "umwelt@stadt-a.example", message_id: str = "") -> bytes:
    """What a department's mail program sends back: to the Reply-To, In-Reply-To the original,
    the original quoted below (German client)."""
    to = original.header("Reply-To") or original.header("From")
    quoted = "\r\n".join("> " + line for line in original.text.splitlines())
    headers = {
        "From": f"Amt <{sender}>",
        "To": to,
        "Subject": "AW: " + original.header("Subject"),
        "Message-ID": message_id or f"<reply-{abs(hash(text))}@stadt-a.example>",
        "In-Reply-To": original.header("Message-ID"),
        "References": original.header("Message-ID"),
        "Content-Type": "text/plain; charset=utf-8",
        "Content-Transfer-Encoding": "8bit",
    }
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items() if v)
    body = (
        f"{text}\r\n\r\nAm 01.12.2026 um 10:00 schrieb Stadt A:\r\n{quoted}\r\n"
        "-- \r\nAmt für Umweltschutz, Tel. 0711 216-0\r\n"
    )
    return head.encode() + b"\r\n" + body.encode()


def post(client: Client, conn: Connection, body: bytes, secret: str = SECRET_A) -> int:
    with KeepTenant():
        response = client.post(
            route_path(conn),
            data=body,
            content_type="message/rfc822",
            HTTP_X_MAIL_SIGNATURE=mail_signature(secret, body),
        )
    return response.status_code


def department_drafts(conversation: Conversation) -> list[Entry]:
    return list(conversation.entries.filter(kind=Entry.Kind.DEPARTMENT))


def no_trace_of(address: str) -> bool:
    return (
        not Contact.objects.filter(address__iexact=address).exists()
        and not InboundMessage.objects.filter(contact__address__iexact=address).exists()
    )


# --------------------------------------------------------------------------------------------
# The department answers by replying
# --------------------------------------------------------------------------------------------
def test_the_department_answers_by_replying_and_never_sees_the_number(
    smtp_fake: FakeSMTP,  # noqa: F811
    asked: Conversation,
    amt: Department,
    client_public: Client,
    django_capture_on_commit_callbacks: Any,
) -> None:
    conn = email_connection(smtp_fake)
    sent, original = forward_by_mail(smtp_fake, asked, amt, django_capture_on_commit_callbacks)
    # the forward e-mail: reply address and Message-ID carry the forward's signed tag
    tag = services.forward_mail_tag(sent)
    assert re.fullmatch(r"fwd-\d+-[0-9a-f]{24}", tag)
    assert [a for _, a in getaddresses([original.header("Reply-To")])] == [f"news+{tag}@stadt-a.example"]
    assert original.header("Message-ID") == sent.message_id == f"<{tag}@stadt-a.example>"
    assert original.rcpt_tos == ["Umwelt@Stadt-A.example"]
    # in the tenant's language (German): "just reply to this e-mail, or use the link"
    assert "antworten Sie einfach auf diese E-Mail" in original.text and QUESTION in original.text
    phone = asked.contact.address
    for secret in (phone, phone[1:], "Erika", "Muster"):
        assert secret not in original.raw.decode("utf-8", "replace")

    assert post(client_public, conn, reply_to(original, "Wir schicken morgen jemanden.")) == 200
    apply_all()
    drafts = department_drafts(asked)
    assert [(d.text, d.details["via"], d.outbound_id) for d in drafts] == [
        ("Wir schicken morgen jemanden.", "email", None)
    ]
    assert not SandboxMessage.objects.filter(direction="out").exists()  # a draft: nothing sent yet
    asked.refresh_from_db()
    assert asked.status == "open" and asked.waiting_since is not None
    sent.refresh_from_db()
    assert sent.answered_at is not None
    # no contact, no inbound message, no conversation for the department's address
    assert no_trace_of("umwelt@stadt-a.example")
    assert Conversation.objects.count() == 1
    assert WebhookEvent.objects.get(connection=conn).state == "applied"


def test_an_answer_works_once_and_not_after_expiry(
    smtp_fake: FakeSMTP,  # noqa: F811
    asked: Conversation,
    amt: Department,
    client_public: Client,
    client_a: Client,
    django_capture_on_commit_callbacks: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    conn = email_connection(smtp_fake)
    sent, original = forward_by_mail(smtp_fake, asked, amt, django_capture_on_commit_callbacks)
    assert post(client_public, conn, reply_to(original, "Erste Antwort")) == 200
    assert post(client_public, conn, reply_to(original, "Zweite Antwort")) == 200  # another Message-ID
    with caplog.at_level(logging.WARNING, logger="inbox.services"):
        apply_all()
    assert [d.text for d in department_drafts(asked)] == ["Erste Antwort"]
    assert "already been answered" in caplog.text and sent.reference in caplog.text
    # and the link says so too: one answer per forward, whichever way it came
    token = services.forward_token(sent)
    page = client_a.get(f"/inbox/answer/{token}/").content.decode()
    assert "Zweite Antwort" not in page and "Erste Antwort" not in page
    assert Forward.objects.get(pk=sent.pk).answered_at is not None

    # a forward older than the link's lifetime takes no answer by mail either
    later, mail2 = forward_by_mail(smtp_fake, asked, amt, django_capture_on_commit_callbacks)
    Forward.objects.filter(pk=later.pk).update(created_at=timezone.now() - timedelta(days=31))
    caplog.clear()
    assert post(client_public, conn, reply_to(mail2, "Zu spät")) == 200
    with caplog.at_level(logging.WARNING, logger="inbox.services"):
        apply_all()
    assert "Zu spät" not in [d.text for d in department_drafts(asked)]
    assert "too long ago" in caplog.text
    assert Forward.objects.get(pk=later.pk).answered_at is None
    assert no_trace_of("umwelt@stadt-a.example")


def test_in_reply_to_alone_finds_the_forward_and_a_forged_tag_finds_nothing(
    smtp_fake: FakeSMTP,  # noqa: F811
    asked: Conversation,
    amt: Department,
    client_public: Client,
    django_capture_on_commit_callbacks: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    conn = email_connection(smtp_fake)
    sent, original = forward_by_mail(smtp_fake, asked, amt, django_capture_on_commit_callbacks)
    tag = services.forward_mail_tag(sent)
    forged = tag[:-4] + ("0000" if not tag.endswith("0000") else "1111")
    other = f"fwd-{sent.pk + 1}-{tag.rsplit('-', 1)[1]}"  # a real signature on another id
    for bad in (forged, other):
        body = reply_to(original, "Gefälscht", sender="jemand@example.org").replace(tag.encode(), bad.encode())
        assert post(client_public, conn, body) == 200
    with caplog.at_level(logging.WARNING, logger="inbox.services"):
        apply_all()
    assert department_drafts(asked) == [] and "no valid forward tag" in caplog.text
    assert no_trace_of("jemand@example.org") and Conversation.objects.count() == 1

    # a reply to the plain address (the plus-tag lost on the way) still names the forward's Message-ID
    body = reply_to(original, "Über In-Reply-To").replace(f"news+{tag}@".encode(), b"news@")
    assert f"+{tag}".encode() not in body.split(b"\r\n\r\n")[0].split(b"In-Reply-To")[0]
    assert post(client_public, conn, body) == 200
    apply_all()
    assert [d.text for d in department_drafts(asked)] == ["Über In-Reply-To"]


def test_mail_from_a_department_address_without_a_tag_is_no_citizen(
    smtp_fake: FakeSMTP,  # noqa: F811
    amt: Department,
    client_public: Client,
    caplog: pytest.LogCaptureFixture,
) -> None:
    conn = email_connection(smtp_fake)
    body = (
        b"From: Amt <UMWELT@stadt-a.example>\r\nTo: news@stadt-a.example\r\nSubject: STOP\r\n"
        b"Message-ID: <d1@stadt-a.example>\r\n\r\nSTOP\r\n"
    )
    assert post(client_public, conn, body) == 200
    with caplog.at_level(logging.WARNING, logger="inbox.services"):
        apply_all()
    assert "department address without a forward tag" in caplog.text
    assert no_trace_of("umwelt@stadt-a.example") and not Conversation.objects.exists()
    assert not smtp_fake.messages()  # no keyword reply either


def test_directly_sent_answers_go_to_the_citizen(
    smtp_fake: FakeSMTP,  # noqa: F811
    asked: Conversation,
    amt: Department,
    client_public: Client,
    django_capture_on_commit_callbacks: Any,
) -> None:
    InboxSettings.objects.update_or_create(key="inbox", defaults={"send_department_answers": True})
    conn = email_connection(smtp_fake)
    _sent, original = forward_by_mail(smtp_fake, asked, amt, django_capture_on_commit_callbacks)
    assert post(client_public, conn, reply_to(original, "Erledigt.")) == 200
    with django_capture_on_commit_callbacks(execute=True):
        apply_all()
    assert SandboxMessage.objects.filter(address=asked.contact.address, direction="out", text="Erledigt.").exists()


def test_without_inbound_mail_the_forward_says_only_the_link_works(
    smtp_fake: FakeSMTP,  # noqa: F811
    asked: Conversation,
    amt: Department,
    django_capture_on_commit_callbacks: Any,
) -> None:
    email_connection(smtp_fake, secret="")  # sends mail, receives none
    sent, original = forward_by_mail(smtp_fake, asked, amt, django_capture_on_commit_callbacks)
    assert original.header("Reply-To") == ""
    assert "Antworten auf diese E-Mail erreichen uns nicht" in original.text and "/inbox/answer/" in original.text
    assert sent.message_id and "fwd-" not in sent.message_id


def test_a_reply_with_tenant_as_tag_posted_to_tenant_bs_route_does_nothing(
    smtp_fake: FakeSMTP,  # noqa: F811
    asked: Conversation,
    amt: Department,
    client_public: Client,
    tenant_b: Tenant,
    django_capture_on_commit_callbacks: Any,
) -> None:
    email_connection(smtp_fake)
    sent, original = forward_by_mail(smtp_fake, asked, amt, django_capture_on_commit_callbacks)
    with KeepTenant(), schema_context(tenant_b.schema_name):
        conn_b = email_connection(smtp_fake, secret=SECRET_B, address="news@stadt-b.example")
        sandbox_b = Connection.objects.get(provider="sandbox")
        person_b = messenger_services.sandbox_person_create(connection=sandbox_b, name="B")
        messenger_services.sandbox_receive(connection=sandbox_b, address=person_b.address, text="Frage B")
        apply_all()
        conversation_b = Conversation.objects.get()
        amt_b = Department.objects.create(name="Amt B", email="amt@stadt-b.example")
        for _ in range(sent.pk + 1):  # make B hold a forward with the same id as A's
            if Forward.objects.filter(pk=sent.pk).exists():
                break
            Forward.objects.create(conversation=conversation_b, department=amt_b, question="q")
    assert post(client_public, conn_b, reply_to(original, "Antwort an den falschen Mandanten"), secret=SECRET_B) == 200
    with KeepTenant(), schema_context(tenant_b.schema_name):
        apply_all()
        assert not Entry.objects.filter(kind=Entry.Kind.DEPARTMENT).exists()
        assert Forward.objects.filter(answered_at__isnull=False).count() == 0
        assert not Contact.objects.filter(address__iexact="umwelt@stadt-a.example").exists()
        assert Conversation.objects.count() == 1
    apply_all()
    assert department_drafts(asked) == [] and Forward.objects.get(pk=sent.pk).answered_at is None


# --------------------------------------------------------------------------------------------
# Citizens' own e-mail: conversations and threaded answers; keyword commands still first
# --------------------------------------------------------------------------------------------
def citizen_mail(
    text: str,
    *,
    message_id: str = "<c1@example.org>",
    subject: str = "Re: Feinstaubalarm",
    in_reply_to: str = "<d7@stadt-a.example>",
) -> bytes:
    return (
        f"From: Erika Muster <Erika@Example.org>\r\nTo: news@stadt-a.example\r\nSubject: {subject}\r\n"
        f"Message-ID: {message_id}\r\nIn-Reply-To: {in_reply_to}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        f"{text}\r\n\r\nAm 01.12.2026 um 08:00 schrieb Stadt A:\r\n> Feinstaubalarm ab morgen\r\n"
    ).encode()


def test_a_citizens_mail_opens_a_conversation_and_the_answer_goes_back_threaded(
    smtp_fake: FakeSMTP,  # noqa: F811
    client_public: Client,
    django_capture_on_commit_callbacks: Any,
) -> None:
    from broadcasts.models import Broadcast, Delivery
    from messengers.adapters import get_adapter
    from messengers.selectors import connection_config
    from subscribers.models import Subscriber

    conn = email_connection(smtp_fake)
    # the broadcast e-mail she answers: its Message-ID is what the adapter made from the delivery
    now = timezone.now()
    broadcast = Broadcast.objects.create(title="Feinstaubalarm", status="sent", send_started_at=now)
    delivery = Delivery.objects.create(
        broadcast=broadcast, subscriber=Subscriber.objects.create(name="Erika"), connection=conn, language="de",
        status="sent", next_attempt_at=now, sent_at=now,
    )  # fmt: skip
    sent_id = get_adapter(connection_config(conn)).message_id(f"d{delivery.pk}")  # type: ignore[attr-defined]
    Delivery.objects.filter(pk=delivery.pk).update(provider_message_id=sent_id)
    assert post(client_public, conn, citizen_mail("Gilt das auch für Vaihingen?", in_reply_to=sent_id)) == 200
    apply_all()
    conversation = Conversation.objects.get()
    assert conversation.connection_id == conn.pk and conversation.contact.address == "erika@example.org"
    assert conversation.answers_broadcast_id == broadcast.pk
    assert conversation.preview == "Gilt das auch für Vaihingen?"  # the quote is gone
    agent = make_user(roles.INBOX_AGENT, username="agent_mail")
    with django_capture_on_commit_callbacks(execute=True):
        entry = services.conversation_reply(conversation=conversation, author=agent, text="Ja, ganz Stuttgart.")
    answer = smtp_fake.wait_for(1)[-1]
    assert answer.rcpt_tos == ["erika@example.org"]
    assert answer.header("Subject") == "Re: Feinstaubalarm"
    assert answer.header("In-Reply-To") == answer.header("References") == "<c1@example.org>"
    assert answer.text.strip() == "Ja, ganz Stuttgart."
    outbound = entry.outbound
    assert outbound is not None
    outbound.refresh_from_db()
    assert outbound.status == "sent" and outbound.provider_message_id == answer.header("Message-ID")


def test_stop_by_mail_is_a_keyword_command_not_a_conversation(
    smtp_fake: FakeSMTP,  # noqa: F811
    client_public: Client,
    django_capture_on_commit_callbacks: Any,
) -> None:
    conn = email_connection(smtp_fake)
    assert post(client_public, conn, citizen_mail("STOP", subject="Abmelden")) == 200
    with django_capture_on_commit_callbacks(execute=True):
        apply_all()
    assert InboundMessage.objects.get().handled_by == "keyword"
    assert not Conversation.objects.exists()
    contact = Contact.objects.get(connection=conn)
    assert contact.status == "unsubscribed"
    assert django_mail.outbox == []  # the confirmation went through the connection, not Django's mail
    confirmation = smtp_fake.wait_for(1)[-1]
    assert confirmation.rcpt_tos == ["erika@example.org"] and confirmation.header("Subject") == "Re: Abmelden"
    assert confirmation.header("In-Reply-To") == "<c1@example.org>"
