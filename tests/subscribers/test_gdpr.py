"""GDPR: a person's data as JSON, and erasure (service, keyword, admin action)."""

from __future__ import annotations

import base64
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
from tests.channels.factories import make_channel
from tests.factories import make_user
from tests.helpers import enrol_totp
from tests.subscribers.factories import phone, replies, say


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


# --------------------------------------------------------------------------------------------
# Provider message ids, deliveries, late statuses, the admin log
# --------------------------------------------------------------------------------------------
WAMID_OF_ERIKA = "wamid." + base64.b64encode(b"491701234567_A1B2C3000000000001").decode()


def _broadcast_to(person: Subscriber, whatsapp: Connection, **fields: Any) -> Any:
    from broadcasts.models import Broadcast, Delivery

    broadcast = Broadcast.objects.create(title="Alarm", status=Broadcast.Status.SENT, **fields)
    return Delivery.objects.create(
        broadcast=broadcast, subscriber=person, contact=Contact.objects.get(subscriber=person, connection=whatsapp),
        connection=whatsapp, language="de", status="failed", next_attempt_at=timezone.now(),
        provider_message_id=WAMID_OF_ERIKA, error_code="131026",
        error_detail="Message undeliverable to +491701234567",
    )  # fmt: skip


def _status_event(whatsapp: Connection, wamid: str, state: str, recipient: str = "") -> WebhookEvent:
    return WebhookEvent.objects.create(
        connection=whatsapp, dedupe_key=f"status:{wamid}:{state}", kind="status", state=state,
        payload={"type": "status", "provider_message_id": wamid, "status": "read", "recipient": recipient,
                 "at": timezone.now().isoformat()},
        raw={"statuses": [{"id": wamid}]},
    )  # fmt: skip


def test_erasure_blanks_the_provider_ids_that_encode_the_person(person: Subscriber, whatsapp: Connection) -> None:
    from broadcasts.models import Delivery

    assert "491701234567" in base64.b64decode(WAMID_OF_ERIKA.removeprefix("wamid.")).decode()
    OutboundMessage.objects.update(provider_message_id="wamid.OUT1", error_detail="+491701234567 is not on WhatsApp")
    mine = _broadcast_to(person, whatsapp)
    other = Subscriber.objects.create(name="Max")
    max_wa = contact_get_or_create(connection=whatsapp, address="491709999999")
    Contact.objects.filter(pk=max_wa.pk).update(subscriber=other)
    theirs = Delivery.objects.create(
        broadcast=mine.broadcast, subscriber=other, contact=max_wa, connection=whatsapp, language="de",
        status="read", next_attempt_at=timezone.now(), provider_message_id="wamid.MAX", error_detail="kept",
    )  # fmt: skip
    reply_to_max = OutboundMessage.objects.create(
        connection=whatsapp, contact=max_wa, to=max_wa.address, text="Hallo Max", provider_message_id="wamid.MAX2"
    )

    subscriber_erase(subscriber=person, source=Source.ADMIN)

    mine.refresh_from_db()
    assert (mine.provider_message_id, mine.error_detail, mine.contact, mine.subscriber) == ("", "", None, person)
    assert (mine.status, mine.error_code) == ("failed", "131026")  # the broadcast's counts stay right
    outbound = OutboundMessage.objects.get(connection=whatsapp, contact__isnull=True)
    assert (outbound.provider_message_id, outbound.error_detail, outbound.to) == ("", "", "")
    # other people keep theirs
    theirs.refresh_from_db()
    reply_to_max.refresh_from_db()
    assert (theirs.provider_message_id, theirs.error_detail, theirs.contact) == ("wamid.MAX", "kept", max_wa)
    assert (reply_to_max.provider_message_id, reply_to_max.to) == ("wamid.MAX2", max_wa.address)


@pytest.mark.parametrize("state", ["pending", "deferred", "failed", "applied"])
def test_erasure_deletes_status_events_of_their_messages_in_every_state(
    person: Subscriber, whatsapp: Connection, state: str
) -> None:
    OutboundMessage.objects.update(provider_message_id="wamid.OUT1")
    _broadcast_to(person, whatsapp)
    # some providers leave the recipient out; the id alone names the person
    _status_event(whatsapp, WAMID_OF_ERIKA, state)
    _status_event(whatsapp, "wamid.OUT1", state)
    _status_event(whatsapp, "wamid.SOMEONE_ELSE", state, recipient="491709999999")
    subscriber_erase(subscriber=person, source=Source.ADMIN)
    assert set(WebhookEvent.objects.filter(kind="status").values_list("dedupe_key", flat=True)) == {
        f"status:wamid.SOMEONE_ELSE:{state}"
    }


def test_a_late_status_for_an_erased_message_matches_nothing_and_waits_to_be_purged(
    person: Subscriber, whatsapp: Connection
) -> None:
    from messengers.services import webhook_events_apply

    delivery = _broadcast_to(person, whatsapp)
    subscriber_erase(subscriber=person, source=Source.ADMIN)
    late = _status_event(whatsapp, WAMID_OF_ERIKA, "pending", recipient="491701234567")
    webhook_events_apply()
    late.refresh_from_db()
    assert late.state == "deferred"
    delivery.refresh_from_db()
    assert (delivery.status, delivery.provider_message_id) == ("failed", "")


def test_erasing_a_number_without_a_person_leaves_other_deliveries_alone(tenant: Tenant, whatsapp: Connection) -> None:
    """Deliveries whose person was erased long ago have no subscriber either: erasing some other
    number must not touch them (nor anyone's)."""
    from broadcasts.models import Broadcast, Delivery

    broadcast = Broadcast.objects.create(title="Alt", status=Broadcast.Status.SENT)
    orphan = Delivery.objects.create(
        broadcast=broadcast, subscriber=None, connection=whatsapp, language="de", status="sent",
        next_attempt_at=timezone.now(), provider_message_id="wamid.ORPHAN",
    )  # fmt: skip
    stranger = contact_get_or_create(connection=whatsapp, address="491705555555")
    subscriber_erase(subscriber=None, source=Source.KEYWORD, extra_contacts=[stranger])
    orphan.refresh_from_db()
    assert orphan.provider_message_id == "wamid.ORPHAN"


def test_a_send_in_flight_during_the_erasure_is_blanked_by_the_periodic_clean_up(
    person: Subscriber, whatsapp: Connection
) -> None:
    from broadcasts.models import Broadcast, Delivery
    from subscribers.services import erasure_late_scrub

    now = timezone.now()
    sending = _broadcast_to(person, whatsapp, send_finished_at=None)
    Delivery.objects.filter(pk=sending.pk).update(status="sending", provider_message_id="", error_detail="")
    done_before = _broadcast_to(person, whatsapp, send_finished_at=now - timedelta(hours=2))
    subscriber_erase(subscriber=person, source=Source.ADMIN)
    # the sender's request comes back after the erasure and records the provider's id
    Delivery.objects.filter(pk=sending.pk).update(status="sent", provider_message_id=WAMID_OF_ERIKA)
    _status_event(whatsapp, WAMID_OF_ERIKA, "applied", recipient="491701234567")
    assert erasure_late_scrub() == 1
    assert not Delivery.objects.exclude(provider_message_id="").exists()
    assert not WebhookEvent.objects.filter(kind="status").exists()
    assert Delivery.objects.get(pk=done_before.pk).status == "failed"
    # a day later it stops looking
    Subscriber.objects.filter(pk=person.pk).update(erased_at=now - timedelta(days=1, minutes=1))
    Delivery.objects.filter(pk=sending.pk).update(provider_message_id="wamid.LATER")
    assert erasure_late_scrub() == 0
    assert Broadcast.objects.count() == 2


def test_erasure_takes_the_name_out_of_the_admin_log(person: Subscriber, client_a: Client) -> None:
    from django.contrib.admin.models import LogEntry

    _admin_client(client_a)
    changed = client_a.post(
        f"/admin/subscribers/subscriber/{person.pk}/change/",
        {"name": "Erika Muster-Neu", "language": "de", "district": "", "tags_text": "",
         "subscriptions-TOTAL_FORMS": 0, "subscriptions-INITIAL_FORMS": 0,
         "consent_events-TOTAL_FORMS": 0, "consent_events-INITIAL_FORMS": 0},
    )  # fmt: skip
    assert changed.status_code == 302
    entry = LogEntry.objects.get(object_id=str(person.pk))
    assert "Erika" in entry.object_repr
    unrelated = LogEntry.objects.create(
        user_id=entry.user_id, content_type_id=entry.content_type_id, object_id="999999", object_repr="Max Muster",
        action_flag=2,
    )  # fmt: skip
    subscriber_erase(subscriber=person, source=Source.ADMIN)
    entry.refresh_from_db()
    unrelated.refresh_from_db()
    assert entry.object_repr == f"#{person.pk}" and "Erika" not in entry.get_change_message()
    assert unrelated.object_repr == "Max Muster"


def test_the_erasure_confirmation_loses_its_provider_id_once_sent(tenant: Tenant, whatsapp: Connection) -> None:
    confirmation = OutboundMessage.objects.create(
        connection=whatsapp, to="491701234567", text="Ihre Daten wurden gelöscht.", purpose="erasure",
        status="sent", provider_message_id=WAMID_OF_ERIKA, error_detail="",
    )  # fmt: skip
    queued = OutboundMessage.objects.create(
        connection=whatsapp, to="491708888888", text="Ihre Daten wurden gelöscht.", purpose="erasure"
    )
    _status_event(whatsapp, WAMID_OF_ERIKA, "applied", recipient="491701234567")
    assert outbound_scrub() == 1
    confirmation.refresh_from_db()
    assert (confirmation.to, confirmation.provider_message_id) == ("", "")
    assert not WebhookEvent.objects.exists()
    queued.refresh_from_db()
    assert queued.to == "491708888888"  # still to be sent
    assert outbound_scrub() == 0


def test_erasure_in_one_tenant_leaves_the_same_number_in_another_alone(
    person: Subscriber, whatsapp: Connection, tenant_b: Tenant
) -> None:
    """Citizens subscribe to their city and to its transit operator with the same number: erasing
    them at one leaves the other's data whole."""
    from django.contrib.admin.models import LogEntry
    from django.contrib.contenttypes.models import ContentType

    from broadcasts.models import Delivery
    from tests.conftest import in_tenant

    _broadcast_to(person, whatsapp)
    with in_tenant(tenant_b):
        wa_b = connection_create(
            provider="whatsapp", name="WhatsApp B", external_id="gdpr-test-number-b",
            credentials={"access_token": "t", "app_secret": "s"},
        )  # fmt: skip
        contact_b = contact_get_or_create(connection=wa_b, address="+491701234567", display_name="Erika Muster")
        erika_b = subscriber_for_contact(contact=contact_b)
        assert erika_b is not None
        delivery_b = _broadcast_to(erika_b, wa_b)
        event_b = _status_event(wa_b, WAMID_OF_ERIKA, "applied", recipient="+491701234567")
        reply_b = OutboundMessage.objects.create(
            connection=wa_b, contact=contact_b, to=contact_b.address, text="Hallo", provider_message_id=WAMID_OF_ERIKA
        )
        log_b = LogEntry.objects.create(
            user_id=make_user(roles.ADMIN).pk, content_type_id=ContentType.objects.get_for_model(Subscriber).pk,
            object_id=str(erika_b.pk), object_repr="Erika Muster", action_flag=2,
        )  # fmt: skip

    subscriber_erase(subscriber=person, source=Source.ADMIN)
    from subscribers.services import erasure_late_scrub

    erasure_late_scrub()

    with in_tenant(tenant_b):
        assert Subscriber.objects.get(pk=erika_b.pk).name == "Erika Muster"
        assert Contact.objects.filter(pk=contact_b.pk).exists()
        assert Delivery.objects.get(pk=delivery_b.pk).provider_message_id == WAMID_OF_ERIKA
        assert WebhookEvent.objects.filter(pk=event_b.pk).exists()
        assert OutboundMessage.objects.get(pk=reply_b.pk).provider_message_id == WAMID_OF_ERIKA
        assert LogEntry.objects.get(pk=log_b.pk).object_repr == "Erika Muster"


def test_a_provider_replaying_old_webhooks_after_an_erasure_does_not_bring_the_person_back(
    tenant: Tenant, whatsapp: Connection
) -> None:
    """Meta re-delivers a webhook for up to seven days when our 200 got lost. Erasure removes the
    stored events (they name the person), so their dedupe keys would be gone and an old START
    would subscribe the person again. Erasure leaves a hashed tombstone of each key instead."""
    from messengers.adapters.base import InboundMessage as Inbound
    from messengers.services import webhook_events_apply, webhook_events_store

    make_channel("Feinstaubalarm", ["FEINSTAUB"], connections=[whatsapp])
    number, at = "+491709998877", timezone.now() - timedelta(minutes=3)
    start = Inbound(provider_message_id="wamid.REPLAY-START", sender=number, at=at, kind="text", text="START FEINSTAUB")
    erase = Inbound(
        provider_message_id="wamid.REPLAY-ERASE", sender=number, at=at + timedelta(minutes=1), kind="text",
        text="ALLE DATEN LÖSCHEN",
    )  # fmt: skip
    webhook_events_store(connection=whatsapp, events=[start])
    webhook_events_apply()
    assert Subscription.objects.filter(subscriber__contacts__address=number, status="active").exists()
    webhook_events_store(connection=whatsapp, events=[erase])
    webhook_events_apply()
    assert not Contact.objects.filter(address=number).exists()

    for _ in range(2):  # both replayed, twice: stored again (the request path checks nothing), then dropped
        webhook_events_store(connection=whatsapp, events=[start, erase])
        webhook_events_apply()
    assert not Contact.objects.filter(address=number).exists()
    assert not InboundMessage.objects.filter(provider_message_id__startswith="wamid.REPLAY").exists()
    stored = list(WebhookEvent.objects.values_list("dedupe_key", "payload", "raw"))
    assert stored and all("REPLAY" not in key and payload == {} and raw is None for key, payload, raw in stored)
