"""Single messages (keyword confirmations, tests, inbox replies): message_queue + message_send
through every adapter against its fake over loopback, provider ids recorded, permanent errors
recorded (unreachable people blocked), retries of passing failures, and the send pacing
arithmetic of messengers.ratelimit."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.test import Client, override_settings

from messengers import ratelimit, services
from messengers.adapters.base import Button, Media, TemplateRef
from messengers.models import Connection, Contact, OutboundMessage, SandboxMessage
from tenants.models import Tenant
from tests.fakes.common import RecordingServer
from tests.fakes.fixtures import SMTP_PASSWORD, SMTP_USER, TW_NUMBER
from tests.fakes.smtp import FakeSMTP
from tests.fakes.telegram import FakeTelegram
from tests.fakes.twilio import FakeTwilio
from tests.fakes.whatsapp import FakeWhatsApp
from tests.messengers.support import (
    apply_all,
    replay,
    route_path,
    telegram_connection,
    twilio_connection,
    whatsapp_connection,
)

pytestmark = pytest.mark.usefixtures("tenant")

WA_TO = "+491701234567"


def send(conn: Connection, to: str, capture: Any, **kwargs: Any) -> OutboundMessage:
    """Queue a single message and let the queued task run (inline, as the worker would)."""
    contact = services.contact_get_or_create(connection=conn, address=to)
    with capture(execute=True):
        outbound = services.message_queue(connection=conn, to=to, contact=contact, **kwargs)
    outbound.refresh_from_db()
    return outbound


def contact_of(outbound: OutboundMessage) -> Contact:
    assert outbound.contact is not None
    return Contact.objects.get(pk=outbound.contact.pk)


def contact_status(outbound: OutboundMessage) -> str:
    return contact_of(outbound).status


# --------------------------------------------------------------------------------------------
# One successful send per adapter
# --------------------------------------------------------------------------------------------
def test_whatsapp_text_with_reply_buttons(wa_fake: FakeWhatsApp, django_capture_on_commit_callbacks: Any) -> None:
    conn = whatsapp_connection(api_base=wa_fake.url)
    wa_fake.open_window(WA_TO)
    outbound = send(
        conn,
        WA_TO,
        django_capture_on_commit_callbacks,
        text="Möchten Sie Verkehrsmeldungen?",
        buttons=[Button(title="Ja", payload="sub:traffic"), Button(title="Nein", payload="no")],
    )
    (sent,) = wa_fake.sent_messages()
    assert (outbound.status, outbound.provider_message_id) == ("sent", sent["id"])
    assert outbound.sent_at is not None
    assert sent["reference"] == f"o{outbound.pk}"  # comes back in every status webhook
    assert sent["body"]["interactive"]["action"]["buttons"][0]["reply"] == {"id": "sub:traffic", "title": "Ja"}


def test_whatsapp_template_outside_the_window(wa_fake: FakeWhatsApp, django_capture_on_commit_callbacks: Any) -> None:
    conn = whatsapp_connection(api_base=wa_fake.url)
    outbound = send(
        conn,
        WA_TO,
        django_capture_on_commit_callbacks,
        template=TemplateRef(name="newsletter_update", language="de", body_params=("Stuttgart", "Neue Linie")),
    )
    (sent,) = wa_fake.sent_messages()
    assert outbound.status == "sent" and outbound.provider_message_id == sent["id"]
    assert sent["type"] == "template" and sent["async_error"] is None
    assert sent["body"]["template"]["components"] == [
        {"type": "body", "parameters": [{"type": "text", "text": "Stuttgart"}, {"type": "text", "text": "Neue Linie"}]}
    ]


def test_telegram_photo_with_a_link_button(tg_fake: FakeTelegram, django_capture_on_commit_callbacks: Any) -> None:
    conn = telegram_connection(api_base=tg_fake.url)
    tg_fake.add_chat(5550002)
    outbound = send(
        conn,
        "5550002",
        django_capture_on_commit_callbacks,
        text="Baustelle",
        media=Media(url="https://example.org/map.png"),
        buttons=[Button(title="Details", url="https://example.org/d")],
    )
    (sent,) = tg_fake.sent_messages()
    assert sent["method"] == "sendphoto"
    assert outbound.provider_message_id == f"5550002:{sent['message_id']}"
    assert outbound.status == "sent"


def test_sms_with_status_callbacks_back_through_our_endpoint(
    client_public: Client,
    tw_fake: FakeTwilio,
    sink: RecordingServer,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with override_settings(PUBLIC_URL=sink.url):
        conn = twilio_connection(api_base=tw_fake.url)
        outbound = send(conn, "+491709990001", django_capture_on_commit_callbacks, text="Ihr Code: 4711")
    (sent,) = [r for r in tw_fake.requests() if r["kind"] == "send"]
    assert outbound.status == "sent" and outbound.provider_message_id.startswith("SM")
    callback = dict(sent["body"])["StatusCallback"]
    assert callback == f"{sink.url}{route_path(conn)}?ref=o{outbound.pk}"
    assert tw_fake.wait_idle(20)
    received = sink.wait_for(2, timeout=20)  # sent, delivered
    assert len(received) == 2
    host = f"{sink.host}:{sink.port}"
    for item in received:
        assert replay(client_public, item, f"{route_path(conn)}?ref=o{outbound.pk}", host=host).status_code == 200
    apply_all()
    outbound.refresh_from_db()
    assert outbound.status == "delivered" and outbound.delivered_at is not None


def test_email_through_the_smtp_sink(smtp_fake: FakeSMTP, django_capture_on_commit_callbacks: Any) -> None:
    conn = services.connection_create(
        provider="email",
        name="Mail",
        external_id="newsletter@stadt.example",
        credentials={
            "host": smtp_fake.host,
            "port": str(smtp_fake.smtp_port),
            "username": SMTP_USER,
            "password": SMTP_PASSWORD,
        },
        by_operator=True,  # the fake SMTP server on loopback
    )
    outbound = send(
        conn, "erika@example.org", django_capture_on_commit_callbacks, text="Willkommen!", subject="Ihre Anmeldung"
    )
    (mail,) = smtp_fake.wait_for(1)
    assert outbound.status == "sent"
    assert mail.header("Subject") == "Ihre Anmeldung"
    assert outbound.provider_message_id == f"<o{outbound.pk}@stadt.example>" == mail.header("Message-ID")
    assert mail.rcpt_tos == ["erika@example.org"] and mail.authenticated_as == SMTP_USER
    assert "Willkommen!" in mail.text


def test_sandbox_bubble_and_statuses(django_capture_on_commit_callbacks: Any) -> None:
    conn = Connection.objects.get(provider="sandbox")
    person = services.sandbox_person_create(connection=conn, name="Erika")
    outbound = send(conn, person.address, django_capture_on_commit_callbacks, text="Hallo Erika")
    bubble = SandboxMessage.objects.get(direction="out")
    assert (bubble.address, bubble.text, bubble.provider_message_id) == (
        person.address,
        "Hallo Erika",
        outbound.provider_message_id,
    )
    apply_all()  # the sandbox reports sent + delivered through the webhook pipeline
    outbound.refresh_from_db()
    assert outbound.status == "delivered"


def test_a_message_is_sent_once_however_often_the_task_runs(
    wa_fake: FakeWhatsApp, django_capture_on_commit_callbacks: Any
) -> None:
    conn = whatsapp_connection(api_base=wa_fake.url)
    wa_fake.open_window(WA_TO)
    outbound = send(conn, WA_TO, django_capture_on_commit_callbacks, text="einmal")
    for _ in range(2):
        services.message_send(outbound_id=outbound.pk)
    assert len(wa_fake.sent_messages()) == 1


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------
def test_whatsapp_not_on_whatsapp_blocks_the_contact(
    wa_fake: FakeWhatsApp, django_capture_on_commit_callbacks: Any
) -> None:
    conn = whatsapp_connection(api_base=wa_fake.url)
    wa_fake.fail_recipient(WA_TO, "error", code=131026)
    outbound = send(conn, WA_TO, django_capture_on_commit_callbacks, text="Hallo")
    assert (outbound.status, outbound.error_code, outbound.provider_message_id) == ("failed", "131026", "")
    assert contact_status(outbound) == Contact.Status.BLOCKED
    assert "not_on_messenger" in contact_of(outbound).status_reason


def test_whatsapp_asynchronous_failures_arrive_by_webhook(
    client_public: Client, wa_fake: FakeWhatsApp, sink: RecordingServer, django_capture_on_commit_callbacks: Any
) -> None:
    """Free-form outside the window is accepted, then fails (131047: send a template; the
    person is reachable); 131026 arrives the same way and means unreachable."""
    conn = whatsapp_connection(api_base=wa_fake.url)
    closed = send(conn, WA_TO, django_capture_on_commit_callbacks, text="ohne Fenster")
    wa_fake.open_window("+491705550000")
    wa_fake.fail_recipient("+491705550000", "async_fail", code=131026)
    gone = send(conn, "+491705550000", django_capture_on_commit_callbacks, text="weg")
    assert closed.status == gone.status == "sent"
    assert wa_fake.wait_idle(20)
    for item in sink.wait_for(2, timeout=20):
        assert replay(client_public, item, "/webhooks/whatsapp/").status_code == 200
    apply_all()
    closed.refresh_from_db()
    gone.refresh_from_db()
    assert (closed.status, closed.error_code, contact_status(closed)) == ("failed", "131047", "active")
    assert (gone.status, gone.error_code, contact_status(gone)) == ("failed", "131026", "blocked")


@pytest.mark.parametrize(
    ("case", "code", "blocked"),
    [("unknown-template", "132001", False), ("bad-token", "190", False), ("paused-template", "132015", False)],
)
def test_whatsapp_permanent_errors_that_do_not_block_the_person(
    wa_fake: FakeWhatsApp, django_capture_on_commit_callbacks: Any, case: str, code: str, blocked: bool
) -> None:
    token = "EAAG-revoked" if case == "bad-token" else "EAAG-test-access-token"
    conn = whatsapp_connection(api_base=wa_fake.url, access_token=token)
    name = {"unknown-template": "no_such_template", "paused-template": "paused_promo"}.get(case, "hello_world")
    language = "en_US" if name == "hello_world" else "de"
    outbound = send(conn, WA_TO, django_capture_on_commit_callbacks, template=TemplateRef(name=name, language=language))
    assert (outbound.status, outbound.error_code) == ("failed", code)
    assert outbound.error_detail
    assert (contact_status(outbound) == Contact.Status.BLOCKED) is blocked


def test_telegram_blocked_bot_blocks_the_contact(
    tg_fake: FakeTelegram, django_capture_on_commit_callbacks: Any
) -> None:
    conn = telegram_connection(api_base=tg_fake.url)
    tg_fake.add_chat(5550003, blocked=True)
    outbound = send(conn, "5550003", django_capture_on_commit_callbacks, text="Hallo")
    assert (outbound.status, outbound.error_code) == ("failed", "403")
    assert "blocked" in outbound.error_detail
    assert contact_status(outbound) == Contact.Status.BLOCKED


def test_sms_to_an_opted_out_number_blocks_the_contact(
    tw_fake: FakeTwilio, django_capture_on_commit_callbacks: Any
) -> None:
    conn = twilio_connection(api_base=tw_fake.url)
    tw_fake.opt_out("+491709990002", sender=TW_NUMBER)
    outbound = send(conn, "+491709990002", django_capture_on_commit_callbacks, text="Hallo")
    assert (outbound.status, outbound.error_code, contact_status(outbound)) == ("failed", "21610", "blocked")


def test_email_recipient_refused_blocks_the_contact(
    smtp_fake: FakeSMTP, django_capture_on_commit_callbacks: Any
) -> None:
    conn = services.connection_create(
        provider="email",
        name="Mail",
        external_id="newsletter@stadt.example",
        credentials={
            "host": smtp_fake.host,
            "port": str(smtp_fake.smtp_port),
            "username": SMTP_USER,
            "password": SMTP_PASSWORD,
        },
        by_operator=True,  # the fake SMTP server on loopback
    )
    smtp_fake.reject_recipient("gone@example.org", 550)
    outbound = send(conn, "gone@example.org", django_capture_on_commit_callbacks, text="Hallo")
    assert (outbound.status, outbound.error_code, contact_status(outbound)) == ("failed", "550", "blocked")
    assert not smtp_fake.messages()


def test_sandbox_person_who_blocked_us(django_capture_on_commit_callbacks: Any) -> None:
    conn = Connection.objects.get(provider="sandbox")
    person = services.sandbox_person_create(connection=conn, name="Nein")
    services.contact_set_status(contact=person, status=Contact.Status.BLOCKED, reason="test")
    outbound = send(conn, person.address, django_capture_on_commit_callbacks, text="Hallo")
    assert (outbound.status, outbound.error_code) == ("failed", "403")
    assert not SandboxMessage.objects.exists()


def test_a_paused_connection_sends_nothing(wa_fake: FakeWhatsApp, django_capture_on_commit_callbacks: Any) -> None:
    conn = whatsapp_connection(api_base=wa_fake.url)
    services.connection_set_status(connection=conn, status=Connection.Status.PAUSED, detail="test")
    outbound = send(conn, WA_TO, django_capture_on_commit_callbacks, text="Hallo")
    assert (outbound.status, outbound.error_code) == ("failed", "connection_paused")
    assert wa_fake.sent_messages() == [] and wa_fake.requests() == []


def test_passing_failures_are_retried(wa_fake: FakeWhatsApp, django_capture_on_commit_callbacks: Any) -> None:
    conn = whatsapp_connection(api_base=wa_fake.url)
    wa_fake.open_window(WA_TO)
    wa_fake.fail_next(1, "5xx")
    wa_fake.fail_next(1, "rate_limit", retry_after=0.1)
    outbound = send(conn, WA_TO, django_capture_on_commit_callbacks, text="trotzdem")
    assert outbound.status == "sent"
    assert len(wa_fake.requests(kind="send")) == 3 and len(wa_fake.sent_messages()) == 1


def test_passing_failures_that_persist_are_recorded(
    wa_fake: FakeWhatsApp, django_capture_on_commit_callbacks: Any
) -> None:
    conn = whatsapp_connection(api_base=wa_fake.url)
    wa_fake.open_window(WA_TO)
    wa_fake.fail_next(10, "5xx")
    outbound = send(conn, WA_TO, django_capture_on_commit_callbacks, text="nie")
    assert (outbound.status, outbound.error_code) == ("failed", "131000")
    assert len(wa_fake.requests(kind="send")) == services.SINGLE_SEND_ATTEMPTS
    assert contact_status(outbound) == Contact.Status.ACTIVE


# --------------------------------------------------------------------------------------------
# Pacing: a reservation of N slots spaced 1/rate apart (the arithmetic, not the wall clock)
# --------------------------------------------------------------------------------------------
def bucket_tat(conn: Connection) -> float:
    """The end of the connection's reserved slots on the limiter's clock (PostgreSQL or Redis)."""
    value = ratelimit.next_slot_at(conn.pk)
    assert value is not None
    return value


def test_reservations_are_spaced_one_slot_apart(tenant: Tenant) -> None:
    conn = whatsapp_connection()
    rate = 10.0
    interval = 1 / (rate * ratelimit.PACING_FACTOR)
    first = ratelimit.reserve(conn.pk, rate, 1000)  # a long run: the next slot is ~103 s away
    assert first.count == 1000 and first.interval == pytest.approx(interval)
    assert first.delay == pytest.approx(0.0, abs=0.5)
    assert [first.offset(i) - first.delay for i in (0, 1, 999)] == pytest.approx([0.0, interval, 999 * interval])
    tat_after_first = bucket_tat(conn)
    second = ratelimit.reserve(conn.pk, rate, 3)
    # the second run starts where the first ends: the clock moved on by exactly 3 slots
    assert bucket_tat(conn) - tat_after_first == pytest.approx(3 * interval, abs=1e-5)
    assert 1000 * interval - 60 < second.delay <= 1000 * interval + 1e-3
    assert second.offset(2) - second.offset(0) == pytest.approx(2 * interval)


def test_pacing_is_per_connection_and_penalties_push_everyone_back(tenant: Tenant) -> None:
    one = whatsapp_connection()
    two = whatsapp_connection(pnid="888000888", name="Zwei")
    ratelimit.reserve(one.pk, 5, 500)  # ~103 s of slots on `one`
    assert ratelimit.reserve(two.pk, 5, 1).delay == pytest.approx(0.0, abs=0.5)  # `two` is free
    before = bucket_tat(two)
    ratelimit.penalize(two.pk, 120)  # the provider said "too fast"
    pushed = bucket_tat(two)
    assert pushed - before > 100
    assert 60 < ratelimit.backlog(two.pk) <= 120
    # a smaller penalty never pulls the clock forward
    ratelimit.penalize(two.pk, 1)
    assert bucket_tat(two) == pushed
    assert ratelimit.reserve(two.pk, 5, 1).delay > 60


def test_effective_rate_stays_under_the_limit() -> None:
    assert ratelimit.effective_rate(80) == pytest.approx(80 * ratelimit.PACING_FACTOR)
    assert 0.9 * 80 < ratelimit.effective_rate(80) < 80
    assert ratelimit.effective_rate(0) == 0.1  # never divide by zero
    assert ratelimit.Reservation(delay=2.0, interval=0.5, count=4).offset(3) == 3.5


def test_single_messages_take_slots_at_the_connection_rate(
    wa_fake: FakeWhatsApp, django_capture_on_commit_callbacks: Any
) -> None:
    conn = whatsapp_connection(api_base=wa_fake.url)
    Connection.objects.filter(pk=conn.pk).update(rate_limit_per_second=Decimal("50"))
    wa_fake.open_window(WA_TO)
    send(conn, WA_TO, django_capture_on_commit_callbacks, text="eins")
    first = bucket_tat(conn)
    send(conn, WA_TO, django_capture_on_commit_callbacks, text="zwei")
    step = bucket_tat(conn) - first
    assert step >= 1 / (50 * ratelimit.PACING_FACTOR) - 1e-5
