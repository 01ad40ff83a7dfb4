"""The demo's subscribe page shows what citizens really get (issue 10, item 7): sandbox connections
that look like WhatsApp, Telegram and e-mail give buttons, QR codes and the e-mail form, clearly
marked as demo and leading to the phone simulator; every message still goes to the simulated
phones. Without settings.DEMO_MODE no connection ever poses as another messenger."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote_plus

import pytest
from django.core import mail
from django.core.cache import cache
from django.test import Client, override_settings

from accounts import roles
from channels.models import Channel
from messengers import selectors as messenger_selectors
from messengers.models import Connection, Contact, SandboxMessage
from messengers.services import sandbox_demo_lookalikes_ensure, webhook_events_apply
from subscribers import qr, selectors
from subscribers.models import Subscription
from tenants.models import Tenant
from tests.channels.factories import make_channel
from tests.factories import make_user
from tests.helpers import enrol_totp
from tests.subscribers.factories import last_reply

pytestmark = pytest.mark.usefixtures("tenant")

SIMULATOR = "http://tenant-a.localhost:8000/admin/messengers/connection/{pk}/phones/?text={text}"


@pytest.fixture
def looks(tenant: Tenant) -> dict[str, Connection]:
    cache.clear()  # the e-mail form's per-address allowance
    found = {c.demo_presents_as: c for c in sandbox_demo_lookalikes_ensure()}
    assert [c.pk for c in sandbox_demo_lookalikes_ensure()] == [found[k].pk for k in ("whatsapp", "telegram", "email")]
    return found


@pytest.fixture
def channel(looks: dict[str, Connection]) -> Channel:
    return make_channel(
        "Feinstaubalarm", ["FEINSTAUB"], connections=list(looks.values()), welcome_text_en="Welcome, dust fans!",
        welcome_text_de="Willkommen beim Feinstaubalarm!",
    )  # fmt: skip


def offers_html(client: Client) -> str:
    response = client.get("/subscribe/")
    assert response.status_code == 200
    return response.content.decode()


@override_settings(DEMO_MODE=True)
def test_the_demo_page_shows_whatsapp_and_telegram_buttons_qr_codes_and_the_email_form(
    client_a: Client, looks: dict[str, Connection], channel: Channel
) -> None:
    html = offers_html(client_a)
    for look, label in (("whatsapp", "WhatsApp"), ("telegram", "Telegram")):
        target = SIMULATOR.format(pk=looks[look].pk, text=quote_plus("START FEINSTAUB"))
        assert f'<a class="button" href="{target}" rel="noopener">Subscribe on {label}</a>' in html
        assert f'class="messenger messenger-{look}"' in html
        assert f"Demo: this button and the QR code open the phone simulator instead of {label}." in html
        assert f'src="/subscribe/qr/feinstaubalarm/{look}.svg"' in html
        svg = client_a.get(f"/subscribe/qr/feinstaubalarm/{look}.svg")
        assert svg.status_code == 200 and svg["Content-Type"] == "image/svg+xml"
        assert qr.qr_payload(channel=channel, provider=look) == target  # the code opens the simulator
    assert "wa.me" not in html and "t.me/" not in html  # never a real messenger's address
    assert 'id="email-form"' in html and "It appears in the phone simulator" in html
    assert "messenger-sandbox" not in html  # the look-alikes are shown as what they imitate


@override_settings(DEMO_MODE=True)
def test_a_poster_code_travels_into_the_demo_link(
    client_a: Client, looks: dict[str, Connection], channel: Channel
) -> None:
    link = qr.qr_payload(channel=channel, provider="telegram", poster_code="ABC234")
    assert link == SIMULATOR.format(pk=looks["telegram"].pk, text=quote_plus("START FEINSTAUB ABC234"))


def test_without_demo_mode_no_connection_poses_as_another_messenger(
    client_a: Client, looks: dict[str, Connection], channel: Channel
) -> None:
    html = offers_html(client_a)
    assert "messenger-whatsapp" not in html and "messenger-telegram" not in html
    assert "Subscribe on" not in html and "Demo" not in html and 'id="email-form"' not in html
    assert html.count('class="messenger messenger-sandbox"') == 3  # plain sandboxes, as they are
    for look in ("whatsapp", "telegram"):
        assert client_a.get(f"/subscribe/qr/feinstaubalarm/{look}.svg").status_code == 404
        assert qr.qr_payload(channel=channel, provider=look) == ""
    assert selectors.email_connection_for([channel.pk]) is None
    posted = client_a.post(
        "/subscribe/email/",
        {"email": "a@example.org", "channels": [str(channel.pk)], "language": "de", "consent": "on"},
    )
    assert posted.status_code == 404 and not Contact.objects.filter(address="a@example.org").exists()
    for connection in Connection.objects.all():
        assert messenger_selectors.connection_shown_provider(connection) == connection.provider


@override_settings(DEMO_MODE=True)
def test_only_a_sandbox_can_pose_and_only_as_a_known_look(client_a: Client, tenant: Tenant) -> None:
    real = Connection.objects.create(provider="telegram", name="Bot", public_address="@stadt_a_bot")
    odd = Connection.objects.create(provider="sandbox", name="Odd")
    Connection.objects.filter(pk=real.pk).update(demo_presents_as="whatsapp")
    Connection.objects.filter(pk=odd.pk).update(demo_presents_as="sms")
    make_channel("Verkehr", ["VERKEHR"], connections=[real, odd])
    html = offers_html(client_a)
    assert "https://t.me/stadt_a_bot?start=verkehr" in html and "messenger-whatsapp" not in html
    assert "messenger-sms" not in html and "Demo" not in html
    real.refresh_from_db()
    odd.refresh_from_db()
    assert messenger_selectors.connection_shown_provider(real) == "telegram"
    assert messenger_selectors.connection_shown_provider(odd) == "sandbox"


@override_settings(DEMO_MODE=True)
def test_a_real_email_connection_wins_over_the_lookalike(looks: dict[str, Connection], tenant: Tenant) -> None:
    real = Connection.objects.create(provider="email", name="Newsletter", external_id="news@stadt-a.example")
    channel = make_channel("Verkehr", ["VERKEHR"], connections=[looks["email"], real])
    assert selectors.email_connection_for([channel.pk]) == real
    (offer,) = selectors.channel_offers()
    assert (offer.email_connection_id, offer.email_demo) == (real.pk, False)


@override_settings(DEMO_MODE=True)
def test_the_demo_delivers_to_the_simulator_whatsapp_keyword_and_email_form(
    client_a: Client, looks: dict[str, Connection], channel: Channel, django_capture_on_commit_callbacks: Any
) -> None:
    # the "WhatsApp" button leads a signed-in demo user to a new phone with START FEINSTAUB typed in
    user = make_user(roles.EDITOR, username="demo-redaktion")
    enrol_totp(user)
    client_a.force_login(user)
    whatsapp = looks["whatsapp"]
    form = client_a.get(f"/admin/messengers/connection/{whatsapp.pk}/phones/", {"text": "START FEINSTAUB"})
    assert 'value="START FEINSTAUB"' in form.content.decode() and "looks-" not in form.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        client_a.post(
            f"/admin/messengers/connection/{whatsapp.pk}/phones/", {"name": "Erika", "text": "START FEINSTAUB"}
        )
    person = Contact.objects.get(connection=whatsapp, display_name="Erika")
    with django_capture_on_commit_callbacks(execute=True):
        webhook_events_apply()  # what the worker does with the stored message
    assert "Feinstaubalarm" in last_reply(person)  # the welcome, as a bubble on the simulated phone
    assert Subscription.objects.filter(subscriber__contacts=person, status="active").count() == 1
    chat = client_a.get(f"/admin/messengers/connection/{whatsapp.pk}/phones/{person.pk}/").content.decode()
    assert 'class="phone looks-whatsapp"' in chat

    # the e-mail form: the confirmation arrives in the simulator, not in a mailbox
    client_a.logout()
    with django_capture_on_commit_callbacks(execute=True):
        sent = client_a.post(
            "/subscribe/email/",
            {"email": "Erika@Example.org", "channels": [str(channel.pk)], "language": "en", "consent": "on"},
            REMOTE_ADDR="192.0.2.7",
        )
    assert sent.status_code == 302 and not mail.outbox
    (bubble,) = SandboxMessage.objects.filter(connection=looks["email"], address="erika@example.org")
    link = re.search(r"http://tenant-a\.localhost:8000(/subscribe/confirm/[^/\s]+/)", bubble.text)
    assert link, bubble.text
    assert client_a.post(link.group(1)).status_code == 200
    mailbox = Contact.objects.get(connection=looks["email"], address="erika@example.org")
    assert Subscription.objects.filter(subscriber__contacts=mailbox, status="active").count() == 1
