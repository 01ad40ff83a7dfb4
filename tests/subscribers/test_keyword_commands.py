"""Keyword commands end to end on the sandbox: the person writes, the messenger pipeline stores
and applies the message, our handler acts, and the reply arrives on the simulated phone."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from messengers.models import Connection, Contact, InboundMessage
from messengers.services import contact_get_or_create, contact_set_status
from subscribers import links
from subscribers.models import ConsentEvent, ConsentText, District, Source, Subscriber, Subscription
from subscribers.services import district_create, poster_create
from tenants.models import Tenant
from tests.channels.factories import make_channel
from tests.subscribers.factories import last_reply, phone, replies, say

pytestmark = pytest.mark.django_db


@pytest.fixture
def channels(tenant: Tenant) -> dict[str, Any]:
    return {
        "dust": make_channel(
            "Feinstaubalarm", ["FEINSTAUB", "FEINSTAUBALARM"], is_alarm=True,
            welcome_text_de="Willkommen beim Feinstaubalarm!", welcome_text_en="Welcome to the dust alarm!",
        ),
        "traffic": make_channel("Verkehr", ["VERKEHR"]),
        "internal": make_channel("Krisenstab", ["KRISENSTAB"], is_public=False),
        "elsewhere": make_channel("Nur Telegram", ["TELEGRAMNEWS"], connections=[]),
    }  # fmt: skip


@pytest.fixture
def capture(django_capture_on_commit_callbacks: Any) -> Any:
    return django_capture_on_commit_callbacks


def active(contact: Contact) -> set[str]:
    return set(
        Subscription.objects.filter(subscriber__contacts=contact, status=Subscription.Status.ACTIVE).values_list(
            "channel__slug", flat=True
        )
    )


def handled(contact: Contact) -> str:
    return InboundMessage.objects.filter(contact=contact).order_by("-pk").values_list("handled_by", flat=True)[0]


# ------------------------------------------------------------------------------------ START
def test_start_with_a_keyword_subscribes_records_consent_and_welcomes(channels: dict[str, Any], capture: Any) -> None:
    person = phone(name="Erika Muster")
    say(capture, person, "start feinstaub!")
    assert active(person) == {"feinstaubalarm"}
    subscription = Subscription.objects.get()
    assert (subscription.source, subscription.confirmed_at is not None) == (Source.KEYWORD, True)
    event = ConsentEvent.objects.get()
    message = InboundMessage.objects.get(contact=person)
    assert (event.kind, event.source, event.channel, event.explicit) == ("opt_in", "keyword", channels["dust"], False)
    assert message.provider_message_id in event.evidence
    assert event.connection == person.connection and event.consent_text is not None
    reply = last_reply(person)
    assert "Willkommen beim Feinstaubalarm!" in reply and "STOP FEINSTAUB" in reply
    assert handled(person) == "keyword"
    assert Subscriber.objects.get().name == "Erika Muster"


def test_start_alone_subscribes_to_every_public_channel_of_this_messenger(
    channels: dict[str, Any], capture: Any
) -> None:
    person = phone()
    say(capture, person, "ANMELDEN")
    assert active(person) == {"feinstaubalarm", "verkehr"}  # not internal, not carried elsewhere
    assert ConsentEvent.objects.filter(kind="opt_in").count() == 2


def test_start_with_an_unknown_or_internal_keyword_subscribes_nothing(channels: dict[str, Any], capture: Any) -> None:
    person = phone()
    say(capture, person, "START KRISENSTAB")
    say(capture, person, "START TELEGRAMNEWS")
    say(capture, person, "START KUCHEN")
    assert active(person) == set()
    assert not ConsentEvent.objects.exists()
    assert replies(person)[-1].startswith("Das Thema „KUCHEN“ gibt es hier nicht.")
    assert "Feinstaubalarm (FEINSTAUB)" in replies(person)[-1] and "Krisenstab" not in replies(person)[-1]


def test_start_twice_says_already_subscribed_and_records_nothing_new(channels: dict[str, Any], capture: Any) -> None:
    person = phone()
    say(capture, person, "START FEINSTAUB")
    say(capture, person, "start Feinstaubalarm")
    assert "bereits für „Feinstaubalarm“ angemeldet" in last_reply(person)
    assert ConsentEvent.objects.count() == 1


def test_start_with_a_poster_code_is_attributed_to_the_poster(channels: dict[str, Any], capture: Any) -> None:
    poster = poster_create(channel=channels["dust"], provider="web", label="Hbf")
    first, second = phone(), phone()
    say(capture, first, f"START FEINSTAUB {poster.code.lower()}")
    say(capture, second, f"START {poster.code}")
    for person in (first, second):
        subscription = Subscription.objects.get(subscriber__contacts=person)
        assert (subscription.channel, subscription.source, subscription.source_detail) == (
            channels["dust"], Source.QR, poster.code,
        )  # fmt: skip
    assert set(ConsentEvent.objects.values_list("source", "source_detail")) == {(Source.QR, poster.code)}


def test_start_reactivates_a_contact_that_had_stopped_or_was_marked_unreachable(
    channels: dict[str, Any], capture: Any
) -> None:
    person = phone()
    say(capture, person, "START VERKEHR")
    say(capture, person, "STOP")
    person.refresh_from_db()
    assert person.status == Contact.Status.UNSUBSCRIBED
    say(capture, person, "START VERKEHR")
    person.refresh_from_db()
    assert person.status == Contact.Status.ACTIVE and active(person) == {"verkehr"}
    contact_set_status(contact=person, status=Contact.Status.BLOCKED, reason="provider: unreachable")
    say(capture, person, "START FEINSTAUB")  # writing to us proves the person is reachable
    person.refresh_from_db()
    assert person.status == Contact.Status.ACTIVE


# ------------------------------------------------------------------------------------- STOP
def test_stop_alone_ends_everything_and_marks_the_contact_unsubscribed(channels: dict[str, Any], capture: Any) -> None:
    person = phone()
    say(capture, person, "START")
    say(capture, person, "stopp")
    person.refresh_from_db()
    assert active(person) == set() and person.status == Contact.Status.UNSUBSCRIBED
    assert Subscription.objects.filter(status="unsubscribed", unsubscribed_at__isnull=False).count() == 2
    opt_out = ConsentEvent.objects.get(kind="opt_out")
    assert opt_out.channel is None and opt_out.source == Source.KEYWORD
    assert "von allen Themen abgemeldet" in last_reply(person)


def test_stop_with_a_channel_ends_only_that_subscription(channels: dict[str, Any], capture: Any) -> None:
    person = phone()
    say(capture, person, "START")
    say(capture, person, "Abmelden Feinstaub")
    person.refresh_from_db()
    assert active(person) == {"verkehr"} and person.status == Contact.Status.ACTIVE
    assert ConsentEvent.objects.get(kind="opt_out").channel == channels["dust"]
    assert "von „Feinstaubalarm“ abgemeldet" in last_reply(person)
    say(capture, person, "STOP FEINSTAUB")
    assert "nicht angemeldet" in last_reply(person)


def test_stop_with_filler_words_stops_everything_but_prose_goes_to_a_person(
    channels: dict[str, Any], capture: Any
) -> None:
    person = phone()
    say(capture, person, "START VERKEHR")
    say(capture, person, "Stopp an der Haltestelle Rathaus fehlt ein Schild")
    assert handled(person) == "inbox" and active(person) == {"verkehr"}
    say(capture, person, "Stop bitte!")
    assert handled(person) == "keyword" and active(person) == set()


def test_stop_from_someone_unknown_still_stops_the_number(channels: dict[str, Any], capture: Any) -> None:
    person = phone()
    say(capture, person, "STOP")
    person.refresh_from_db()
    assert person.status == Contact.Status.UNSUBSCRIBED
    assert not Subscriber.objects.exists() and "abgemeldet" in last_reply(person)


def test_a_button_tap_with_a_command_payload_is_a_command(channels: dict[str, Any], capture: Any) -> None:
    person = phone()
    say(capture, person, "START")
    say(capture, person, "Abbestellen", kind="button", payload={"payload": "STOP VERKEHR"})
    assert active(person) == {"feinstaubalarm"} and handled(person) == "keyword"
    say(capture, person, "Mehr Infos", kind="button", payload={"payload": "broadcast-42-more"})
    assert handled(person) == "inbox"


# ----------------------------------------------------------------- Telegram deep links, blocks
def test_deep_links_subscribe_by_slug_and_by_poster(channels: dict[str, Any], capture: Any) -> None:
    bot = Connection.objects.create(provider="telegram", name="Bot", public_address="@stadt_a_bot", external_id="77")
    channels["traffic"].connections.add(bot)  # a Telegram poster needs the channel on a bot
    poster = poster_create(channel=channels["traffic"], provider="telegram")
    first, second, third = phone(), phone(), phone()
    say(capture, first, "feinstaubalarm", kind="start")
    say(capture, second, f"qr_{poster.code}", kind="start")
    say(capture, third, "", kind="start")
    assert active(first) == {"feinstaubalarm"} and active(second) == {"verkehr"}
    assert active(third) == {"feinstaubalarm", "verkehr"}
    assert Subscription.objects.get(subscriber__contacts=first).source == Source.DEEP_LINK
    assert Subscription.objects.get(subscriber__contacts=second).source_detail == poster.code
    fourth = phone()
    say(capture, fourth, "no-such-channel", kind="start")
    assert active(fourth) == set() and "gibt es hier nicht" in last_reply(fourth)


def test_a_block_withdraws_every_subscription_when_it_was_the_only_way_to_reach_the_person(
    channels: dict[str, Any], capture: Any
) -> None:
    person = phone()
    say(capture, person, "START")
    sent = len(replies(person))
    say(capture, person, kind="block")
    person.refresh_from_db()
    assert person.status == Contact.Status.BLOCKED and active(person) == set()
    opt_out = ConsentEvent.objects.get(kind="opt_out")
    assert (opt_out.source, opt_out.channel) == (Source.MESSENGER, None)
    assert len(replies(person)) == sent  # nothing can be sent to someone who blocked us


def test_a_block_on_one_messenger_keeps_subscriptions_received_elsewhere(
    channels: dict[str, Any], capture: Any
) -> None:
    from messengers.models import Connection

    person = phone()
    say(capture, person, "START VERKEHR")
    email = Connection.objects.create(provider="email", name="Newsletter", external_id="news@stadt-a.example")
    other = contact_get_or_create(connection=email, address="erika@example.org")
    Contact.objects.filter(pk=other.pk).update(subscriber=Subscriber.objects.get())
    say(capture, person, kind="block")
    assert active(person) == {"verkehr"}
    assert not ConsentEvent.objects.filter(kind="opt_out").exists()


# ------------------------------------------------------------------------- information
def test_help_lists_commands_and_topics_in_the_persons_language(channels: dict[str, Any], capture: Any) -> None:
    district_create(name="Mitte")
    german, english = phone(), phone()
    say(capture, german, "Hilfe")
    say(capture, english, "help")
    assert "START <Thema>" in last_reply(german) and "BEZIRK" in last_reply(german)
    assert "Feinstaubalarm (FEINSTAUB)" in last_reply(german) and "Krisenstab" not in last_reply(german)
    assert "START <topic>" in last_reply(english)


def test_status_lists_subscriptions_language_and_district(channels: dict[str, Any], capture: Any) -> None:
    district_create(name="Bad Cannstatt", aliases=["Cannstatt"])
    person = phone()
    say(capture, person, "STATUS")
    assert "für kein Thema angemeldet" in last_reply(person)
    say(capture, person, "START FEINSTAUB")
    say(capture, person, "Bezirk Cannstatt")
    say(capture, person, "status")
    assert last_reply(person) == "Ihre Themen: Feinstaubalarm\nSprache: Deutsch\nBezirk: Bad Cannstatt"


def test_status_with_a_channel_word_says_whether_the_person_gets_it(channels: dict[str, Any], capture: Any) -> None:
    person = phone()
    say(capture, person, "STATUS FEINSTAUB")
    assert last_reply(person).startswith("Sie sind für „Feinstaubalarm“ nicht angemeldet. Anmelden: START FEINSTAUB")
    say(capture, person, "START VERKEHR")
    say(capture, person, "Status Verkehr?")
    assert last_reply(person) == "Sie sind für „Verkehr“ angemeldet. Abmelden: STOP VERKEHR"
    assert handled(person) == "keyword"
    say(capture, person, "STOP")
    say(capture, person, "status verkehr")
    assert last_reply(person) == "Sie sind für „Verkehr“ nicht angemeldet. Anmelden: START VERKEHR"


@pytest.mark.parametrize(
    "text",
    ["STATUS FEINSTAUB", "status feinstaub!", "Status: Feinstaubalarm", "STATUS feinstäub", "  status FEINSTAUBALARM."],
)
def test_status_of_a_channel_ignores_case_accents_and_punctuation(
    channels: dict[str, Any], capture: Any, text: str
) -> None:
    person = phone()
    say(capture, person, "START FEINSTAUB")
    say(capture, person, text)
    assert last_reply(person).startswith("Sie sind für „Feinstaubalarm“ angemeldet."), text


def test_status_of_an_alarm_channel_tells_its_current_state(channels: dict[str, Any], capture: Any) -> None:
    from datetime import datetime

    from django.utils import timezone

    from channels.models import Channel

    person = phone()
    say(capture, person, "STATUS FEINSTAUB")
    assert last_reply(person).endswith("Aktueller Stand: Kein Alarm")
    since = timezone.make_aware(datetime(2026, 3, 12, 8, 15))
    Channel.objects.filter(pk=channels["dust"].pk).update(alarm_state="active", alarm_state_changed_at=since)
    say(capture, person, "SPRACHE EN")
    say(capture, person, "START FEINSTAUB")
    say(capture, person, "status feinstaub")
    reply = last_reply(person)
    assert reply.startswith("You are subscribed to “Feinstaubalarm”. Unsubscribe: STOP FEINSTAUB"), reply
    assert "Current state: Alarm active (since March 12, 2026" in reply, reply
    say(capture, person, "STATUS VERKEHR")
    assert "state" not in last_reply(person)  # not an alarm channel


def test_status_with_an_unknown_or_hidden_channel_lists_the_channels(channels: dict[str, Any], capture: Any) -> None:
    person = phone()
    for word in ("KUCHEN", "KRISENSTAB", "TELEGRAMNEWS"):
        say(capture, person, f"STATUS {word}")
        reply = last_reply(person)
        assert reply.startswith(f"Das Thema „{word}“ gibt es hier nicht."), reply
        assert "Feinstaubalarm (FEINSTAUB)" in reply and "Verkehr (VERKEHR)" in reply and "Krisenstab" not in reply
    english = phone()
    say(capture, english, "SPRACHE EN")
    say(capture, english, "status cake")
    assert last_reply(english).startswith("There is no topic “CAKE” here. Available: Feinstaubalarm (FEINSTAUB)")
    assert not Subscription.objects.exists()


def test_status_of_an_internal_channel_the_person_was_given(channels: dict[str, Any], capture: Any) -> None:
    from subscribers.services import subscription_start

    person = phone()
    say(capture, person, "START VERKEHR")
    subscription_start(subscriber=Subscriber.objects.get(), channels=[channels["internal"]], source=Source.ADMIN)
    say(capture, person, "STATUS KRISENSTAB")
    assert last_reply(person).startswith("Sie sind für „Krisenstab“ angemeldet.")


def test_a_question_that_starts_with_status_still_reaches_a_person(channels: dict[str, Any], capture: Any) -> None:
    person = phone()
    say(capture, person, "Status der U3 bitte?")
    assert handled(person) == "inbox" and replies(person) == []


def test_language_changes_the_replies(channels: dict[str, Any], capture: Any) -> None:
    person = phone()
    say(capture, person, "Sprache EN")
    assert last_reply(person) == "Your language is now English."
    assert Subscriber.objects.get().language == "en"
    say(capture, person, "START FEINSTAUB")
    assert "Welcome to the dust alarm!" in last_reply(person)
    say(capture, person, "sprache deutsch")
    assert last_reply(person) == "Ihre Sprache ist jetzt Deutsch."
    say(capture, person, "SPRACHE KLINGONISCH")
    assert "SPRACHE DE" in last_reply(person) and Subscriber.objects.get().language == "de"


def test_district_by_name_alias_or_without_umlauts(channels: dict[str, Any], capture: Any) -> None:
    south = district_create(name="Süd")
    cannstatt = district_create(name="Bad Cannstatt", aliases=["Cannstatt"])
    person = phone()
    for text, expected in (("Bezirk süd", south), ("BEZIRK SUED", south), ("bezirk sud", south),
                           ("Bezirk Bad-Cannstatt", cannstatt), ("bezirk cannstatt", cannstatt)):  # fmt: skip
        say(capture, person, text)
        assert Subscriber.objects.get().district == expected, text
    say(capture, person, "BEZIRK Atlantis")
    assert "„ATLANTIS“ kenne ich nicht" in last_reply(person) and "Bad Cannstatt" in last_reply(person)
    say(capture, person, "Bezirk")
    assert "zum Beispiel BEZIRK" in last_reply(person)
    say(capture, person, "Bezirk keiner")
    assert Subscriber.objects.get().district is None


def test_district_without_districts(channels: dict[str, Any], capture: Any) -> None:
    assert not District.objects.exists()
    person = phone()
    say(capture, person, "BEZIRK Mitte")
    assert last_reply(person) == "Hier gibt es keine Bezirke zur Auswahl."


def test_settings_sends_a_working_personal_link(channels: dict[str, Any], capture: Any, client_a: Any) -> None:
    person = phone()
    say(capture, person, "EINSTELLUNGEN")
    reply = last_reply(person)
    url = next(word for word in reply.split() if word.startswith("http"))
    assert url == links.preferences_url(Subscriber.objects.get())
    assert url.startswith("http://tenant-a.localhost:8000/preferences/")
    assert client_a.get(url.removeprefix("http://tenant-a.localhost:8000")).status_code == 200


def test_anything_else_goes_on_to_the_inbox(channels: dict[str, Any], capture: Any) -> None:
    person = phone()
    say(capture, person, "Wann kommt der nächste Bus?")
    say(capture, person, "", kind="image", payload={"id": "media-1"})
    assert handled(person) == "inbox" and replies(person) == []
    assert not Subscriber.objects.exists()


# ------------------------------------------------------------------------- erasure, parties
def test_delete_my_data_erases_and_confirms_on_the_phone(channels: dict[str, Any], capture: Any) -> None:
    person = phone(name="Erika Muster")
    say(capture, person, "START FEINSTAUB")
    say(capture, person, "Alle Daten löschen!")
    subscriber = Subscriber.objects.get()
    assert subscriber.status == Subscriber.Status.ERASED and subscriber.name == ""
    assert replies(person) == ["Ihre Daten wurden gelöscht. Sie erhalten keine Nachrichten mehr. "
                               "Wenn Sie wieder Nachrichten möchten, schreiben Sie START."]  # fmt: skip
    assert not InboundMessage.objects.filter(contact=person).exists()
    assert ConsentEvent.objects.filter(kind="erasure", subscriber__isnull=True).count() == 1


@pytest.fixture
def party(tenant: Tenant) -> Iterator[Tenant]:
    tenant.kind = Tenant.Kind.PARTY
    tenant.save(update_fields=["kind"])
    try:
        yield tenant
    finally:
        tenant.kind = Tenant.Kind.CITY


def test_a_party_records_explicit_consent_and_says_so(party: Tenant, capture: Any) -> None:
    make_channel("Koalitionsverhandlungen", ["KOALITION"])
    person = phone()
    say(capture, person, "START KOALITION")
    event = ConsentEvent.objects.get()
    assert event.explicit is True
    assert "politische Meinung" in event.consent_text.text  # type: ignore[union-attr]
    assert "ausdrücklich eingewilligt" in last_reply(person)
    say(capture, person, "STOP")
    assert ConsentEvent.objects.get(kind="opt_out").explicit is False
    assert ConsentText.objects.count() == 1
