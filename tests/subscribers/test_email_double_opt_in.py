"""E-mail subscription with double opt-in through the public form: consent counts only from the
click, the form never reveals whether an address is known, and it is rate-limited."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes
from email.message import Message
from typing import Any

import pytest
from django.core import mail
from django.core.cache import cache
from django.test import Client, override_settings
from django.utils import timezone

from messengers.models import Connection, Contact
from messengers.services import connection_create
from subscribers.models import ConsentEvent, EmailConfirmation, Source, Subscriber, Subscription
from subscribers.services import email_confirmations_purge_expired, email_subscription_request, poster_create
from subscribers.services.email import MAILS_PER_ADDRESS_PER_DAY
from subscribers.views import FORM_POSTS_PER_IP_PER_HOUR
from tenants.models import Tenant
from tests.channels.factories import make_channel
from tests.conftest import in_tenant
from tests.subscribers.factories import sandbox

CONFIRM_LINK = re.compile(r"http://tenant-a\.localhost:8000(/subscribe/confirm/[^/\s]+/)")


@pytest.fixture
def email_channel(tenant: Tenant) -> Any:
    cache.clear()
    connection = Connection.objects.create(provider="email", name="Newsletter", external_id="news@stadt-a.example")
    return make_channel("Verkehr", ["VERKEHR"], connections=[connection, sandbox()])


def submit(client: Client, capture: Any, channel: Any, email: str = "Erika@Example.org", **extra: Any) -> Any:
    data = {"email": email, "channels": [str(channel.pk)], "language": "de", "consent": "on", **extra}
    with capture(execute=True):
        return client.post("/subscribe/email/", data, REMOTE_ADDR=extra.pop("ip", "192.0.2.1"))


def confirm_path(message: Any) -> str:
    match = CONFIRM_LINK.search(message.body)
    assert match, message.body
    return match.group(1)


def test_the_click_not_the_form_is_the_consent(
    email_channel: Any, client_a: Client, django_capture_on_commit_callbacks: Any
) -> None:
    response = submit(client_a, django_capture_on_commit_callbacks, email_channel)
    assert (response.status_code, response["Location"]) == (302, "/subscribe/email/sent/")
    subscription = Subscription.objects.get()
    assert subscription.status == Subscription.Status.PENDING
    assert not ConsentEvent.objects.exists()
    assert Contact.objects.get(connection__provider="email").address == "erika@example.org"
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["erika@example.org"] and message.from_email == "news@stadt-a.example"
    assert "Verkehr" in message.body and "Stadt A" in message.subject
    path = confirm_path(message)

    assert "Yes, subscribe me" in client_a.get(path).content.decode()  # a mail scanner's GET changes nothing
    assert Subscription.objects.get().status == Subscription.Status.PENDING

    page = client_a.post(path)
    assert page.status_code == 200 and "/preferences/" in page.content.decode()
    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.ACTIVE and subscription.confirmed_at is not None
    opt_in, confirmation = ConsentEvent.objects.order_by("at", "pk")
    token_hash = EmailConfirmation.objects.get().token_sha256
    assert (opt_in.kind, confirmation.kind) == ("opt_in", "confirmation")
    assert opt_in.at < confirmation.at and token_hash in confirmation.evidence and token_hash in opt_in.evidence
    assert opt_in.source == confirmation.source == Source.WEB_FORM
    assert client_a.post(path).status_code == 200  # idempotent
    assert ConsentEvent.objects.count() == 2


def test_a_known_address_gets_the_same_answer_and_a_mail_saying_so(
    email_channel: Any, client_a: Client, django_capture_on_commit_callbacks: Any
) -> None:
    first = submit(client_a, django_capture_on_commit_callbacks, email_channel)
    client_a.post(confirm_path(mail.outbox[0]))
    mail.outbox.clear()
    again = submit(client_a, django_capture_on_commit_callbacks, email_channel, email="erika@example.org")
    stranger = submit(client_a, django_capture_on_commit_callbacks, email_channel, email="new@example.org")
    assert (again.status_code, again["Location"]) == (first.status_code, first["Location"]) == (
        stranger.status_code, stranger["Location"]
    )  # fmt: skip
    known, new = sorted(mail.outbox, key=lambda m: m.to[0])
    assert known.to == ["erika@example.org"] and "bereits angemeldet" in known.body and "/preferences/" in known.body
    assert "/subscribe/confirm/" in new.body
    assert EmailConfirmation.objects.count() == 2


def test_invalid_or_expired_confirmation_links(
    email_channel: Any, client_a: Client, django_capture_on_commit_callbacks: Any
) -> None:
    submit(client_a, django_capture_on_commit_callbacks, email_channel)
    path = confirm_path(mail.outbox[0])
    assert client_a.post("/subscribe/confirm/1.forged/").status_code == 404
    EmailConfirmation.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    response = client_a.post(path)
    assert response.status_code == 404 and "EINSTELLUNGEN" in response.content.decode()
    assert Subscription.objects.get().status == Subscription.Status.PENDING


def test_the_form_needs_consent_and_shows_errors_without_storing_anything(
    email_channel: Any, client_a: Client, django_capture_on_commit_callbacks: Any
) -> None:
    response = submit(client_a, django_capture_on_commit_callbacks, email_channel, consent="")
    assert response.status_code == 400
    assert "Please agree" in response.content.decode()
    response = submit(client_a, django_capture_on_commit_callbacks, email_channel, email="not-an-address")
    assert response.status_code == 400
    assert not Contact.objects.filter(connection__provider="email").exists() and not mail.outbox


def test_bots_filling_the_hidden_field_get_nothing(
    email_channel: Any, client_a: Client, django_capture_on_commit_callbacks: Any
) -> None:
    response = submit(client_a, django_capture_on_commit_callbacks, email_channel, website="http://spam.example")
    assert response.status_code == 302 and not mail.outbox and not Subscriber.objects.exists()


def test_the_form_is_rate_limited_per_address_of_the_client(
    email_channel: Any, client_a: Client, django_capture_on_commit_callbacks: Any
) -> None:
    for number in range(FORM_POSTS_PER_IP_PER_HOUR):
        assert (
            submit(
                client_a, django_capture_on_commit_callbacks, email_channel, email=f"p{number}@example.org"
            ).status_code
            == 302
        )
    blocked = submit(client_a, django_capture_on_commit_callbacks, email_channel, email="late@example.org")
    assert blocked.status_code == 429 and "Too many sign-ups" in blocked.content.decode()
    other_client = submit(
        client_a, django_capture_on_commit_callbacks, email_channel, email="x@example.org", ip="198.51.100.7"
    )
    assert other_client.status_code == 302
    assert not Contact.objects.filter(address="late@example.org").exists()


@override_settings(TRUSTED_PROXY_COUNT=1)
def test_behind_the_proxy_the_form_limit_counts_each_client_on_its_own(
    email_channel: Any, client_a: Client, django_capture_on_commit_callbacks: Any
) -> None:
    def post(email: str, forwarded: str) -> Any:
        data = {"email": email, "channels": [str(email_channel.pk)], "language": "de", "consent": "on"}
        with django_capture_on_commit_callbacks(execute=True):
            return client_a.post("/subscribe/email/", data, REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=forwarded)

    for number in range(FORM_POSTS_PER_IP_PER_HOUR):  # a client varying its own X-Forwarded-For entry
        assert post(f"p{number}@example.org", f"10.0.0.{number}, 198.51.100.7").status_code == 302
    assert post("late@example.org", "198.51.100.7").status_code == 429
    assert post("other@example.org", "203.0.113.9").status_code == 302  # another client, same proxy
    for number in range(FORM_POSTS_PER_IP_PER_HOUR):  # one IPv6 client, many addresses of its /64
        post(f"v{number}@example.org", f"2001:db8:5:6::{number + 1:x}")
    assert post("v-late@example.org", "2001:db8:5:6::ffff").status_code == 429


def test_one_address_gets_at_most_a_few_mails_a_day(
    email_channel: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(MAILS_PER_ADDRESS_PER_DAY + 2):
            email_subscription_request(email="victim@example.org", channel_ids=[email_channel.pk], language="de")
    assert len(mail.outbox) == MAILS_PER_ADDRESS_PER_DAY


@pytest.mark.parametrize(
    "spellings",
    [
        [
            "victim+1@example.org",
            "victim+2@example.org",
            "Victim+news@Example.org",
            "victim@EXAMPLE.ORG",
            "victim+@example.org",
        ],
        [
            "victim@gmail.com",
            "v.i.c.t.i.m@gmail.com",
            "Vic.tim+x@googlemail.com",
            "victim+y@GMAIL.com",
            "vi.ctim@gmail.com",
        ],
        ["victim@bücher.example", "victim+1@xn--bcher-kva.example", "VICTIM@BÜCHER.example", "victim+2@bücher.example"],
    ],
    ids=["plus-tags", "gmail-dots", "idn-domain"],
)
def test_the_daily_cap_counts_the_mailbox_not_its_spellings(
    email_channel: Any, django_capture_on_commit_callbacks: Any, spellings: list[str]
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        for spelling in spellings * 2:
            email_subscription_request(email=spelling, channel_ids=[email_channel.pk], language="de")
    assert len(mail.outbox) == MAILS_PER_ADDRESS_PER_DAY
    # the mails go to the address as typed (lower-cased), never to the normalised one
    assert [m.to[0] for m in mail.outbox] == [s.lower() for s in spellings[:MAILS_PER_ADDRESS_PER_DAY]]


def test_the_cap_does_not_join_different_mailboxes(email_channel: Any, django_capture_on_commit_callbacks: Any) -> None:
    """Dots count outside Gmail, tags need their +, and other domains are other mailboxes."""
    addresses = ["anna@example.org", "a.nna@example.org", "anna-x@example.org", "anna@example.net", "anna@gmail.com"]
    with django_capture_on_commit_callbacks(execute=True):
        for address in addresses:
            for _ in range(MAILS_PER_ADDRESS_PER_DAY):
                email_subscription_request(email=address, channel_ids=[email_channel.pk], language="de")
    assert len(mail.outbox) == len(addresses) * MAILS_PER_ADDRESS_PER_DAY


def test_a_poster_code_on_the_form_attributes_the_subscription(
    email_channel: Any, client_a: Client, django_capture_on_commit_callbacks: Any
) -> None:
    poster = poster_create(channel=email_channel, provider="web")
    assert (
        f"You came here from poster {poster.code}" in client_a.get(f"/subscribe/?poster={poster.code}").content.decode()
    )
    submit(client_a, django_capture_on_commit_callbacks, email_channel, poster=poster.code)
    client_a.post(confirm_path(mail.outbox[0]))
    subscription = Subscription.objects.get()
    assert (subscription.source, subscription.source_detail) == (Source.QR, poster.code)


def test_unconfirmed_requests_are_forgotten_when_they_expire(
    email_channel: Any, client_a: Client, django_capture_on_commit_callbacks: Any
) -> None:
    submit(client_a, django_capture_on_commit_callbacks, email_channel, email="gone@example.org")
    assert email_confirmations_purge_expired() == 0
    EmailConfirmation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert email_confirmations_purge_expired() == 1
    assert not Contact.objects.filter(address="gone@example.org").exists()
    assert not Subscriber.objects.exists() and not Subscription.objects.exists()


def test_the_form_is_offered_only_for_channels_carried_by_e_mail(tenant: Tenant, client_a: Client) -> None:
    make_channel("Verkehr", ["VERKEHR"])
    assert 'id="email-form"' not in client_a.get("/subscribe/").content.decode()
    assert client_a.post("/subscribe/email/", {"email": "a@example.org"}).status_code == 404


def test_a_request_on_one_tenant_is_invisible_to_another(
    email_channel: Any,
    tenant: Tenant,
    tenant_b: Tenant,
    client_a: Client,
    client_b: Client,
    django_capture_on_commit_callbacks: Any,
) -> None:
    submit(client_a, django_capture_on_commit_callbacks, email_channel)
    path = confirm_path(mail.outbox[0])
    assert client_b.post(path).status_code == 404  # B's domain does not know A's token
    with in_tenant(tenant_b):
        assert not Subscription.objects.exists() and not Contact.objects.filter(address="erika@example.org").exists()
    with in_tenant(tenant):
        assert Subscription.objects.get().status == Subscription.Status.PENDING


# ------------------------------------------------------------------ through the SMTP connection
class _Sink:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook name
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp_sink() -> Iterator[tuple[_Sink, int]]:
    from aiosmtpd.controller import Controller

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = _Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


def test_the_confirmation_goes_through_the_tenants_smtp_connection(
    tenant: Tenant, smtp_sink: tuple[_Sink, int], client_a: Client, django_capture_on_commit_callbacks: Any
) -> None:
    cache.clear()
    sink, port = smtp_sink
    connection = connection_create(
        provider="email", name="Rathaus-Newsletter", external_id="newsletter@stadt-a.example",
        credentials={"host": "127.0.0.1", "port": str(port)}, by_operator=True,
    )  # fmt: skip
    channel = make_channel("Verkehr", ["VERKEHR"], connections=[connection])
    submit(client_a, django_capture_on_commit_callbacks, channel, email="anna@example.org")
    assert not mail.outbox  # not Django's default backend
    assert len(sink.messages) == 1
    message = sink.messages[0]
    assert message["To"] == "anna@example.org" and message["From"] == "newsletter@stadt-a.example"
    body = message.get_payload(decode=True).decode()  # type: ignore[union-attr]
    match = CONFIRM_LINK.search(body)
    assert match
    client_a.post(match.group(1))
    assert Subscription.objects.get().status == Subscription.Status.ACTIVE
