"""Citizens' messages that are no keyword command become conversations (the inbox services),
through the real pipeline: sandbox phone → stored webhook event → keyword commands → inbox."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context
from hypothesis import given
from hypothesis import strategies as st

from accounts import roles
from broadcasts.models import Broadcast, Delivery
from broadcasts.selectors import broadcast_answered_by
from core.errors import ApplicationError
from inbox import selectors, services
from inbox.models import CannedReply, Conversation, Entry
from messengers import services as messenger_services
from messengers.models import Connection, Contact, InboundMessage, OutboundMessage, SandboxMessage
from messengers.services import contact_get_or_create
from subscribers.models import Subscriber
from tenants.models import Tenant
from tests.factories import make_user
from tests.messengers.support import apply_all

pytestmark = pytest.mark.usefixtures("tenant")


@pytest.fixture
def sandbox() -> Connection:
    return Connection.objects.get(provider="sandbox")


def write(sandbox: Connection, person: Contact, text: str, kind: str = "text") -> None:
    messenger_services.sandbox_receive(connection=sandbox, address=person.address, text=text, kind=kind)
    apply_all()


def test_a_question_opens_a_conversation_and_a_second_continues_it(sandbox: Connection) -> None:
    anna = messenger_services.sandbox_person_create(connection=sandbox, name="Anna")
    write(sandbox, anna, "Gilt der Feinstaubalarm morgen noch?")
    conversation = Conversation.objects.get(contact=anna)
    assert (conversation.status, conversation.unread_count) == ("open", 1)
    assert conversation.preview == "Gilt der Feinstaubalarm morgen noch?"
    assert conversation.waiting_since is not None
    assert InboundMessage.objects.get(contact=anna).handled_by == "inbox"

    write(sandbox, anna, "Und übermorgen?")
    assert Conversation.objects.filter(contact=anna).count() == 1
    conversation.refresh_from_db()
    assert conversation.unread_count == 2 and conversation.preview == "Und übermorgen?"
    assert list(conversation.entries.values_list("kind", "text")) == [
        ("inbound", "Gilt der Feinstaubalarm morgen noch?"),
        ("inbound", "Und übermorgen?"),
    ]


@pytest.mark.parametrize("text", ["START", "STOP", "HILFE", "SPRACHE EN", "ALLE DATEN LÖSCHEN"])
def test_keyword_commands_never_open_conversations(sandbox: Connection, text: str) -> None:
    bert = messenger_services.sandbox_person_create(connection=sandbox, name="Bert")
    write(sandbox, bert, text)
    assert not Conversation.objects.exists()
    assert not Entry.objects.exists()


def test_a_block_or_a_lone_reaction_opens_nothing_but_a_reaction_joins_an_open_conversation(
    sandbox: Connection,
) -> None:
    carla = messenger_services.sandbox_person_create(connection=sandbox, name="Carla")
    write(sandbox, carla, "👍", kind="reaction")
    write(sandbox, carla, "", kind="block")
    assert not Conversation.objects.exists()
    write(sandbox, carla, "Hallo?")
    write(sandbox, carla, "👍", kind="reaction")
    assert list(Entry.objects.values_list("text", flat=True)) == ["Hallo?", "👍"]


@pytest.mark.parametrize("kind", ["image", "audio", "document", "location", "sticker", "contacts", "unknown"])
def test_messages_without_text_and_unknown_kinds_are_kept(sandbox: Connection, kind: str) -> None:
    dora = messenger_services.sandbox_person_create(connection=sandbox, name="Dora")
    write(sandbox, dora, "", kind=kind)
    conversation = Conversation.objects.get(contact=dora)
    assert conversation.preview == f"[{kind}]"
    inbound = conversation.entries.get().inbound
    assert inbound is not None and inbound.kind == kind


def test_an_answer_reaches_the_phone_and_the_conversation_waits(
    sandbox: Connection, django_capture_on_commit_callbacks: Any
) -> None:
    agent = make_user(roles.INBOX_AGENT, username="agentin")
    emil = messenger_services.sandbox_person_create(connection=sandbox, name="Emil")
    write(sandbox, emil, "Wo finde ich die Messwerte?")
    conversation = Conversation.objects.get(contact=emil)
    with django_capture_on_commit_callbacks(execute=True):
        entry = services.conversation_reply(conversation=conversation, author=agent, text="Auf stuttgart.de/luft")
    outbound = entry.outbound
    assert outbound is not None
    outbound.refresh_from_db()
    assert (outbound.purpose, outbound.status, outbound.to) == ("inbox", "sent", emil.address)
    assert SandboxMessage.objects.filter(address=emil.address, direction="out", text="Auf stuttgart.de/luft").exists()
    conversation.refresh_from_db()
    assert (conversation.status, conversation.unread_count, conversation.waiting_since) == ("waiting", 0, None)
    assert conversation.first_response_at is not None
    first = conversation.first_response_at

    write(sandbox, emil, "Danke!")
    conversation.refresh_from_db()
    assert conversation.status == "open" and conversation.waiting_since is not None
    with django_capture_on_commit_callbacks(execute=True):
        services.conversation_reply(conversation=conversation, author=agent, text="Gern!")
    conversation.refresh_from_db()
    assert conversation.first_response_at == first  # the first response stays the first


def test_after_closing_the_next_message_starts_a_new_conversation(sandbox: Connection) -> None:
    agent = make_user(roles.INBOX_AGENT, username="agent2")
    fritz = messenger_services.sandbox_person_create(connection=sandbox, name="Fritz")
    write(sandbox, fritz, "Frage 1")
    first = Conversation.objects.get(contact=fritz)
    services.conversation_set_status(conversation=first, actor=agent, status="closed")
    assert first.closed_at is not None
    write(sandbox, fritz, "Frage 2")
    second = Conversation.objects.get(contact=fritz, status="open")
    assert second.pk != first.pk
    assert list(second.entries.values_list("text", flat=True)) == ["Frage 2"]
    first.refresh_from_db()
    assert first.status == "closed" and list(first.entries.filter(kind="inbound").values_list("text", flat=True)) == [
        "Frage 1"
    ]
    with pytest.raises(ApplicationError, match="another open conversation"):
        services.conversation_set_status(conversation=first, actor=agent, status="open")
    first.refresh_from_db()
    assert first.status == "closed"


def test_who_may_do_what() -> None:
    contact = contact_get_or_create(connection=Connection.objects.get(provider="sandbox"), address="+4915500000001")
    conversation = Conversation.objects.create(
        contact=contact, connection=contact.connection, last_activity_at=timezone.now(), changed_at=timezone.now()
    )
    approver = make_user(roles.APPROVER, username="ob")
    agent = make_user(roles.INBOX_AGENT, username="agent3")
    editor = make_user(roles.EDITOR, username="red")
    for not_allowed in (
        lambda: services.conversation_reply(conversation=conversation, author=approver, text="x"),
        lambda: services.conversation_assign(conversation=conversation, actor=approver, assignee=agent),
        lambda: services.conversation_set_status(conversation=conversation, actor=approver, status="closed"),
        lambda: services.conversation_add_note(conversation=conversation, author=approver, text="x"),
        lambda: services.conversation_assign(conversation=conversation, actor=agent, assignee=approver),
    ):
        with pytest.raises(ApplicationError):
            not_allowed()
    services.conversation_assign(conversation=conversation, actor=editor, assignee=agent)
    services.conversation_add_note(conversation=conversation, author=agent, text="Fachamt fragen")
    services.conversation_set_labels(conversation=conversation, actor=agent, labels=[" Lob ", "lob", "Frage"])
    conversation.refresh_from_db()
    assert conversation.assignee_id == agent.pk and conversation.labels == ["Frage", "Lob"]
    assert list(conversation.entries.values_list("kind", "event")) == [
        ("event", "assigned"),
        ("note", ""),
        ("event", "labels"),
    ]
    assert not OutboundMessage.objects.exists()  # a note is never sent


def test_whatsapp_needs_a_template_after_24_hours(tenant: Tenant) -> None:
    whatsapp = Connection.objects.create(provider="whatsapp", name="WA")
    contact = contact_get_or_create(connection=whatsapp, address="+4917100000001")
    conversation = Conversation.objects.create(
        contact=contact, connection=whatsapp, last_activity_at=timezone.now(), changed_at=timezone.now()
    )
    agent = make_user(roles.INBOX_AGENT, username="agent4")
    Contact.objects.filter(pk=contact.pk).update(last_inbound_at=timezone.now() - timedelta(hours=25))
    conversation.refresh_from_db()
    assert selectors.reply_needs_template(conversation)
    with pytest.raises(ApplicationError, match="24 hours"):
        services.conversation_reply(conversation=conversation, author=agent, text="Hallo")
    assert not OutboundMessage.objects.exists()
    Contact.objects.filter(pk=contact.pk).update(last_inbound_at=timezone.now() - timedelta(hours=23))
    conversation.refresh_from_db()
    assert not selectors.reply_needs_template(conversation)
    services.conversation_reply(conversation=conversation, author=agent, text="Hallo")
    assert OutboundMessage.objects.get().text == "Hallo"


def test_the_answered_broadcast_is_the_quoted_one_else_the_last_delivered_within_the_window() -> None:
    sandbox = Connection.objects.get(provider="sandbox")
    now = timezone.now()
    person = Subscriber.objects.create(name="Gerd")
    other = Subscriber.objects.create(name="Hanna")

    def sent(title: str, hours_ago: float, subscriber: Subscriber, provider_id: str) -> Broadcast:
        at = now - timedelta(hours=hours_ago)
        broadcast = Broadcast.objects.create(title=title, status="sent", send_started_at=at, send_finished_at=at)
        Delivery.objects.create(
            broadcast=broadcast,
            subscriber=subscriber,
            connection=sandbox,
            language="de",
            status="delivered",
            next_attempt_at=at,
            sent_at=at,
            provider_message_id=provider_id,
        )
        return broadcast

    old = sent("alt", 30, person, "p-old")
    recent = sent("neu", 3, person, "p-new")
    sent("fremd", 1, other, "p-other")

    def answered(quoted: str = "", subscriber: Subscriber | None = person) -> int | None:
        return broadcast_answered_by(
            connection_id=sandbox.pk,
            reply_to_provider_id=quoted,
            subscriber_id=subscriber.pk if subscriber else None,
            at=now,
            window=timedelta(hours=24),
        )

    assert answered() == recent.pk
    assert answered("p-old") == old.pk  # the quoted message wins, even outside the window
    assert answered("no-such-id") == recent.pk
    assert answered(subscriber=None) is None
    Broadcast.objects.filter(pk=recent.pk).delete()
    assert answered() is None  # 30 h ago is outside the window


def test_search_uses_german_word_forms(sandbox: Connection) -> None:
    for name, text in [("Ida", "Gilt der Feinstaubalarm auch für Busse?"), ("Jan", "Danke für die Info")]:
        person = messenger_services.sandbox_person_create(connection=sandbox, name=name)
        write(sandbox, person, text)

    def found(query: str) -> list[str]:
        return [c.contact.display_name for c in selectors.conversation_list(selectors.ListFilters(query=query))]

    assert found("Feinstaubalarms") == ["Ida"]
    assert found("Bussen") == ["Ida"]
    assert found("danke") == ["Jan"]
    assert found("'; DROP TABLE inbox_entry; --") == []
    assert sorted(found("\x00")) == ["Ida", "Jan"]  # nothing left to search for: no filter


def test_the_list_filters_and_puts_the_longest_waiting_first(sandbox: Connection) -> None:
    agent = make_user(roles.INBOX_AGENT, username="agent5")
    people = [messenger_services.sandbox_person_create(connection=sandbox, name=n) for n in ("Kai", "Lea", "Max")]
    for person in people:
        write(sandbox, person, f"Frage von {person.display_name}")
    kai, lea, max_ = (Conversation.objects.get(contact=p) for p in people)
    Conversation.objects.filter(pk=max_.pk).update(waiting_since=timezone.now() - timedelta(hours=5))
    services.conversation_assign(conversation=lea, actor=agent, assignee=agent)
    services.conversation_set_status(conversation=kai, actor=agent, status="closed")

    def names(**filters: Any) -> list[str]:
        return [c.contact.display_name for c in selectors.conversation_list(selectors.ListFilters(**filters))]

    assert names() == ["Max", "Lea"]
    assert names(mine_of=agent.pk) == ["Lea"]
    assert names(unassigned=True) == ["Max"]
    assert names(status="closed") == ["Kai"]
    assert names(provider="whatsapp") == []
    assert selectors.unanswered_count() == 2


def test_canned_replies_fill_name_and_channel_and_leave_everything_else_alone() -> None:
    sandbox = Connection.objects.get(provider="sandbox")
    subscriber = Subscriber.objects.create(name="Nora")
    contact = contact_get_or_create(connection=sandbox, address="+4915500000002")
    Contact.objects.filter(pk=contact.pk).update(subscriber=subscriber)
    conversation = Conversation.objects.create(
        contact=Contact.objects.get(pk=contact.pk),
        connection=sandbox,
        last_activity_at=timezone.now(),
        changed_at=timezone.now(),
    )
    canned = CannedReply.objects.create(title="Danke", body="Hallo {{ name }}, danke! {{name}} {{ unknown }} {% if %}")
    assert services.canned_reply_render(canned=canned, conversation=conversation) == (
        "Hallo Nora, danke! Nora {{ unknown }} {% if %}"
    )


@given(st.text(alphabet="+0123456789 -", min_size=0, max_size=24))
def test_a_masked_number_hides_all_but_prefix_and_last_two_digits(address: str) -> None:
    masked = selectors.mask_address(address)
    digits = [c for c in address if c.isdigit()]
    shown = [c for c in masked if c.isdigit()]
    assert "•" in masked
    assert len(shown) <= 7  # country code, network prefix, last two digits
    if len(digits) >= 8:
        assert len(digits) - len(shown) >= min(3, len(digits) - 7)


@given(st.emails())
def test_a_masked_email_keeps_only_the_first_letter_and_the_domain(address: str) -> None:
    local, _, domain = address.rpartition("@")
    masked = selectors.mask_address(address)
    assert masked.endswith("@" + address.partition("@")[2])
    assert masked.startswith(local[:1]) and local[1:] not in masked.removesuffix(domain)[1:] or len(local) <= 1


def test_masking_example() -> None:
    assert selectors.mask_address("+4917112345612") == "+49 171 ••• ••12"
    assert selectors.mask_address("+49 171 123-456 12") == "+49 171 ••• ••12"
    assert selectors.mask_address("anna@example.org") == "a•••@example.org"


def test_an_agent_of_another_tenant_never_sees_the_conversation(sandbox: Connection, tenant_b: Tenant) -> None:
    olga = messenger_services.sandbox_person_create(connection=sandbox, name="Olga")
    write(sandbox, olga, "Geheim")
    assert selectors.conversation_list(selectors.ListFilters()).count() == 1
    with schema_context(tenant_b.schema_name):
        assert selectors.conversation_list(selectors.ListFilters()).count() == 0
        assert selectors.unanswered_count() == 0
        assert not Entry.objects.filter(text="Geheim").exists()


def test_alle_daten_loeschen_erases_the_thread_and_the_export_contains_it(
    sandbox: Connection, django_capture_on_commit_callbacks: Any
) -> None:
    from inbox.erasure import conversation_list_for_subscriber

    rita = messenger_services.sandbox_person_create(connection=sandbox, name="Rita")
    subscriber = Subscriber.objects.create(name="Rita")
    Contact.objects.filter(pk=rita.pk).update(subscriber=subscriber)
    with django_capture_on_commit_callbacks(execute=True):
        write(sandbox, rita, "Meine Adresse ist Hauptstraße 5, bitte melden")
    exported = conversation_list_for_subscriber(subscriber.pk)
    assert [e["text"] for e in exported[0]["thread"]] == ["Meine Adresse ist Hauptstraße 5, bitte melden"]

    with django_capture_on_commit_callbacks(execute=True):
        write(sandbox, rita, "ALLE DATEN LÖSCHEN")
    assert not Conversation.objects.exists()
    assert not Entry.objects.filter(text__contains="Hauptstraße").exists()


def test_the_channel_filter_and_the_tenants_answer_window(sandbox: Connection) -> None:
    from channels.models import Channel
    from inbox.models import InboxSettings
    from subscribers.models import Subscription
    from tests.channels.factories import make_channel

    verkehr = make_channel("Verkehr", ["VERKEHR"], connections=[sandbox])
    other = Channel.objects.exclude(pk=verkehr.pk).first() or make_channel("Kultur", ["KULTUR"], connections=[sandbox])
    now = timezone.now()
    subscriber = Subscriber.objects.create(name="Uwe")
    Subscription.objects.create(
        subscriber=subscriber, channel=verkehr, status="active", source="keyword", subscribed_at=now
    )
    Subscription.objects.create(
        subscriber=subscriber, channel=other, status="unsubscribed", source="keyword", subscribed_at=now
    )
    uwe = messenger_services.sandbox_person_create(connection=sandbox, name="Uwe")
    Contact.objects.filter(pk=uwe.pk).update(subscriber=subscriber)
    vera = messenger_services.sandbox_person_create(connection=sandbox, name="Vera")
    broadcast = Broadcast.objects.create(title="Sperrung", status="sent", send_started_at=now - timedelta(hours=3))
    Delivery.objects.create(
        broadcast=broadcast, subscriber=subscriber, connection=sandbox, language="de", status="delivered",
        next_attempt_at=now, sent_at=now - timedelta(hours=3),
    )  # fmt: skip
    InboxSettings.objects.update_or_create(key="inbox", defaults={"answer_window_hours": 2})
    write(sandbox, uwe, "Wie lange noch?")
    write(sandbox, vera, "Hallo")
    assert Conversation.objects.get(contact=uwe).answers_broadcast_id is None  # 3 h ago, window 2 h

    def names(channel_id: int) -> list[str]:
        rows = selectors.conversation_list(selectors.ListFilters(channel_id=channel_id))
        return [c.contact.display_name for c in rows]

    assert names(verkehr.pk) == ["Uwe"]
    assert names(other.pk) == []  # unsubscribed there

    InboxSettings.objects.filter(key="inbox").update(answer_window_hours=4)
    services.conversation_set_status(
        conversation=Conversation.objects.get(contact=uwe),
        actor=make_user(roles.INBOX_AGENT, username="agent_w"),
        status="closed",
    )
    write(sandbox, uwe, "Noch eine Frage")
    assert Conversation.objects.get(contact=uwe, status="open").answers_broadcast_id == broadcast.pk
