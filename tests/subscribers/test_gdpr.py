"""GDPR: a person's data as JSON, and erasure (service, keyword, admin action)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from accounts import roles
from accounts.models import AuditEvent
from messengers.models import Connection, Contact, InboundMessage, OutboundMessage, SandboxMessage, WebhookEvent
from messengers.services import connection_create, contact_get_or_create
from subscribers import links
from subscribers.models import ConsentEvent, Source, Subscriber, Subscription
from subscribers.services import (
    district_create,
    outbound_scrub,
    subscriber_erase,
    subscriber_export_personal_data,
    subscriber_for_contact,
    subscription_start,
)
from tenants.models import Tenant
from tests.factories import make_user
from tests.helpers import enrol_totp
from tests.subscribers.factories import make_channel, phone, replies, say


@pytest.fixture
def whatsapp(tenant: Tenant) -> Connection:
    return connection_create(
        provider="whatsapp", name="WhatsApp", external_id="gdpr-test-number",
        credentials={"access_token": "t", "app_secret": "s"}, public_address="+49 711 2160",
    )  # fmt: skip


@pytest.fixture
def person(tenant: Tenant, whatsapp: Connection) -> Subscriber:
    """Erika: on WhatsApp and on the sandbox, two channels, messages both ways."""
    dust = make_channel("Feinstaubalarm", ["FEINSTAUB"], connections=[whatsapp])
    traffic = make_channel("Verkehr", ["VERKEHR"], connections=[whatsapp])
    wa = contact_get_or_create(connection=whatsapp, address="+491701234567", display_name="Erika Muster")
    subscriber = subscriber_for_contact(contact=wa)
    assert subscriber is not None
    sandbox_phone = phone(name="Erika (Test)")
    Contact.objects.filter(pk=sandbox_phone.pk).update(subscriber=subscriber)
    Subscriber.objects.filter(pk=subscriber.pk).update(
        tags=["Radverkehr"], external_ref="crm-4711", district=district_create(name="Mitte")
    )
    subscriber.refresh_from_db()
    subscription_start(subscriber=subscriber, channels=[dust, traffic], source=Source.KEYWORD, evidence="wamid.X1")
    now = timezone.now()
    InboundMessage.objects.create(
        connection=whatsapp, contact=wa, provider_message_id="wamid.X1", kind="text", text="START FEINSTAUB",
        sent_at=now - timedelta(minutes=5),
    )  # fmt: skip
    OutboundMessage.objects.create(connection=whatsapp, contact=wa, to=wa.address, text="Willkommen!", status="sent")
    WebhookEvent.objects.create(
        connection=whatsapp, dedupe_key="msg:wamid.X1", kind="inbound", state="applied",
        payload={"type": "inbound", "sender": wa.address, "text": "START FEINSTAUB"},
    )  # fmt: skip
    SandboxMessage.objects.create(
        connection=sandbox_phone.connection, address=sandbox_phone.address, direction="in", text="Hallo",
        provider_message_id="sbx-in-gdpr",
    )  # fmt: skip
    return subscriber


def test_personal_data_export_contains_everything_and_is_audited(person: Subscriber) -> None:
    admin = make_user(roles.ADMIN)
    data = subscriber_export_personal_data(subscriber=person, actor=admin)
    json.dumps(data)  # JSON-safe
    assert data["subscriber"]["name"] == "Erika Muster" and data["subscriber"]["interests"] == ["Radverkehr"]
    assert {c["address"] for c in data["contacts"]} >= {"+491701234567"}
    assert {s["channel"] for s in data["subscriptions"]} == {"Feinstaubalarm", "Verkehr"}
    assert [e["kind"] for e in data["consent_events"]] == ["opt_in", "opt_in"]
    assert data["consent_events"][0]["consent_text"]
    assert data["messages_from_you"][0]["text"] == "START FEINSTAUB"
    assert data["messages_to_you"][0]["text"] == "Willkommen!"
    audit = AuditEvent.objects.get(action="subscriber.data_exported")
    assert audit.actor == admin and "Erika" not in audit.target_label


def test_export_lists_the_broadcasts_the_person_was_sent(person: Subscriber, whatsapp: Connection) -> None:
    from broadcasts.models import Broadcast, BroadcastVariant, Delivery, LinkClick, TrackedLink

    now = timezone.now()
    sent = Broadcast.objects.create(title="Feinstaub Alarm 12", status=Broadcast.Status.SENT)
    BroadcastVariant.objects.create(broadcast=sent, language="de", body="Feinstaubalarm ab morgen")
    BroadcastVariant.objects.create(broadcast=sent, language="en", body="Particulate alarm from tomorrow")
    mine = Delivery.objects.create(
        broadcast=sent, subscriber=person, connection=whatsapp, language="de", status="read",
        next_attempt_at=now, sent_at=now, read_at=now, provider_message_id="wamid.B1",
    )  # fmt: skip
    other = Subscriber.objects.create(name="Max")
    Delivery.objects.create(broadcast=sent, subscriber=other, connection=whatsapp, language="en", next_attempt_at=now)
    link = TrackedLink.objects.create(broadcast=sent, position=0, url="https://stuttgart.example/feinstaub")
    LinkClick.objects.create(link=link, delivery=mine)

    data = subscriber_export_personal_data(subscriber=person, actor=make_user(roles.ADMIN))
    json.dumps(data)
    (received,) = data["broadcasts_received"]  # only their own
    assert received["text"] == "Feinstaubalarm ab morgen" and received["status"] == "read"
    assert received["messenger"] == "whatsapp" and received["read_at"]
    assert received["links_opened"][0].endswith("https://stuttgart.example/feinstaub")


def test_erasure_removes_personal_data_and_keeps_the_counts(person: Subscriber) -> None:
    preferences = links.preferences_url(person)
    subscribed_at = set(Subscription.objects.filter(subscriber=person).values_list("subscribed_at", flat=True))
    subscriber_erase(subscriber=person, source=Source.ADMIN, actor=make_user(roles.ADMIN))

    person.refresh_from_db()
    assert person.status == Subscriber.Status.ERASED and person.erased_at is not None
    assert (person.name, person.tags, person.external_ref, person.district) == ("", [], "", None)
    # counts: the rows and their dates stay, every subscription has ended
    subscriptions = Subscription.objects.filter(subscriber=person)
    assert subscriptions.count() == 2 and set(subscriptions.values_list("subscribed_at", flat=True)) == subscribed_at
    assert set(subscriptions.values_list("status", flat=True)) == {"unsubscribed"}
    # personal data: addresses, messages, bubbles, stored webhook bodies
    assert not Contact.objects.filter(address="+491701234567").exists()
    assert not InboundMessage.objects.exists() and not WebhookEvent.objects.filter(dedupe_key="msg:wamid.X1").exists()
    outbound = OutboundMessage.objects.get()
    assert (outbound.to, outbound.text, outbound.contact) == ("", "", None)
    assert not SandboxMessage.objects.filter(provider_message_id="sbx-in-gdpr").exists()
    sandbox_phone = Contact.objects.get(connection__provider="sandbox")  # a simulated device stays, anonymous
    assert (sandbox_phone.subscriber, sandbox_phone.display_name) == (None, "")
    # the ledger: earlier entries lose their link and evidence, the erasure is recorded anonymously
    assert not ConsentEvent.objects.filter(subscriber=person).exists()
    assert set(ConsentEvent.objects.values_list("evidence", flat=True)) == {""}
    erasure = ConsentEvent.objects.get(kind="erasure")
    assert erasure.subscriber is None and erasure.source == Source.ADMIN
    # the audit entry names no one
    audit = AuditEvent.objects.get(action="subscriber.erased")
    text = json.dumps(audit.details) + audit.target_label
    assert "Erika" not in text and "4917" not in text and "crm-4711" not in text
    # old links are dead
    assert links.subscriber_from_token(preferences.rstrip("/").split("/")[-1], links.PREFERENCES) is None
    # and doing it again changes nothing
    subscriber_erase(subscriber=person, source=Source.ADMIN)
    assert ConsentEvent.objects.filter(kind="erasure").count() == 1


def test_erasure_by_keyword_confirms_and_then_forgets_the_recipient(
    tenant: Tenant, django_capture_on_commit_callbacks: Any
) -> None:
    make_channel("Verkehr", ["VERKEHR"])
    person = phone(name="Max")
    say(django_capture_on_commit_callbacks, person, "Subscribe Verkehr")  # English: a new person's language
    say(django_capture_on_commit_callbacks, person, "DELETE MY DATA")
    assert replies(person) == [
        "Your data has been deleted. You will not receive any more messages. If you want messages again, write START."
    ]
    confirmation = OutboundMessage.objects.get(purpose="erasure")
    assert confirmation.to == "" and confirmation.contact is None  # scrubbed once it had left
    assert not OutboundMessage.objects.exclude(purpose="erasure").exclude(to="").exists()
    assert Subscriber.objects.get().status == Subscriber.Status.ERASED
    assert outbound_scrub() == 0


def test_erasure_of_someone_who_never_subscribed(tenant: Tenant, django_capture_on_commit_callbacks: Any) -> None:
    person = phone()
    say(django_capture_on_commit_callbacks, person, "Hallo?")
    say(django_capture_on_commit_callbacks, person, "Alle Daten löschen")
    assert not InboundMessage.objects.filter(contact=person).exists()
    assert ConsentEvent.objects.get().kind == "erasure"
    assert "gelöscht" in replies(person)[-1]


def _admin_client(client: Client, role: str = roles.ADMIN) -> Any:
    user = make_user(role)
    if role in (roles.ADMIN, roles.APPROVER):
        enrol_totp(user)
    client.force_login(user)
    return user


def test_admin_actions_export_and_erase(person: Subscriber, client_a: Client) -> None:
    _admin_client(client_a)
    url = "/admin/subscribers/subscriber/"
    export = client_a.post(url, {"action": "export_personal_data", "_selected_action": [person.pk]})
    assert export.status_code == 200 and export["Content-Type"].startswith("application/json")
    assert json.loads(export.content)["subscriber"]["name"] == "Erika Muster"
    ask = client_a.post(url, {"action": "erase", "_selected_action": [person.pk]})
    assert ask.status_code == 200 and "cannot be undone" in ask.content.decode()
    assert Subscriber.objects.get(pk=person.pk).status == Subscriber.Status.ACTIVE
    done = client_a.post(url, {"action": "erase", "_selected_action": [person.pk], "confirm": "yes"})
    assert done.status_code == 302
    assert Subscriber.objects.get(pk=person.pk).status == Subscriber.Status.ERASED


def test_editors_may_not_export_or_erase(person: Subscriber, client_a: Client) -> None:
    _admin_client(client_a, roles.EDITOR)
    url = "/admin/subscribers/subscriber/"
    for action in ("export_personal_data", "erase"):
        response = client_a.post(url, {"action": action, "_selected_action": [person.pk], "confirm": "yes"})
        assert response.status_code in (302, 403)
    assert Subscriber.objects.get(pk=person.pk).status == Subscriber.Status.ACTIVE
    assert not AuditEvent.objects.filter(action="subscriber.data_exported").exists()
