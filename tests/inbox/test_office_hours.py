"""Office hours as people write them (parser, property tests), the automatic answer outside them
(once per conversation, in the person's language), and the settings page."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.test import Client
from django.utils import translation
from hypothesis import given
from hypothesis import strategies as st

from accounts import roles
from inbox import selectors, services
from inbox.hours import HoursError, is_open, next_opening, parse_holidays, parse_hours
from inbox.models import Conversation, Entry, InboxSettings
from messengers import services as messenger_services
from messengers.models import Connection, Contact, SandboxMessage
from subscribers.models import Subscriber
from tests.factories import make_user
from tests.helpers import signed_in_admin
from tests.messengers.support import apply_all

BERLIN = ZoneInfo("Europe/Berlin")


def test_hours_in_german_and_english() -> None:
    hours = parse_hours("Mo-Do 08:00-16:00\nFr 8-12 Uhr\nSa, So geschlossen")
    assert hours.days[0] == ((time(8), time(16)),)
    assert hours.days[4] == ((time(8), time(12)),)
    assert hours.days[5] == () and hours.days[6] == ()
    assert parse_hours("Mon, Wed 9:30-12:00, 13:00-17:00").days[2] == ((time(9, 30), time(12)), (time(13), time(17)))
    assert parse_hours("Fr-Mo 10-11").days[6] == ((time(10), time(11)),)  # a range over the weekend
    assert parse_hours("Mo 8-12\nMo 11-14").days[0] == ((time(8), time(14)),)  # overlaps merge
    assert parse_hours("").always_open


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("Montag bis Freitag", "Line 1"),
        ("Xy 08:00-16:00", "Xy"),
        ("Mo 16:00-08:00", "not after its start"),
        ("Mo 25:00-26:00", "not a time of day"),
        ("Mo 08:00 bis", "not a time range"),
    ],
)
def test_hours_errors_name_the_line(text: str, fragment: str) -> None:
    with translation.override("en"), pytest.raises(HoursError, match=fragment):
        parse_hours(text)
    with translation.override("de"), pytest.raises(HoursError, match="Zeile 1"):
        parse_hours(text)


def test_holidays() -> None:
    assert parse_holidays("24.12.2026\n2026-12-31, 01.01.27") == [
        date(2026, 12, 24),
        date(2026, 12, 31),
        date(2027, 1, 1),
    ]
    with translation.override("en"), pytest.raises(HoursError, match="Line 2"):
        parse_holidays("24.12.2026\nHeiligabend")


@given(st.text(max_size=200))
def test_any_text_parses_or_fails_with_a_message(text: str) -> None:
    try:
        hours = parse_hours(text)
    except HoursError as exc:
        assert exc.message
        return
    for intervals in hours.days:
        assert all(start < end for start, end in intervals)
        assert all(a[1] < b[0] for a, b in zip(intervals, intervals[1:], strict=False))


@given(
    st.lists(st.tuples(st.integers(0, 6), st.integers(0, 22), st.integers(1, 12)), min_size=1, max_size=6),
    st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 1, 1)),
)
def test_next_opening_is_open_and_nothing_earlier_is(rules: list[tuple[int, int, int]], naive: datetime) -> None:
    names = ["Mo", "Di", "Mi", "Do", "Fr", "Sa", "So"]
    text = "\n".join(f"{names[d]} {h:02d}:00-{min(24, h + length):02d}:00" for d, h, length in rules)
    hours = parse_hours(text)
    at = naive.replace(tzinfo=BERLIN)
    opening = next_opening(hours, set(), at)
    assert opening is not None and opening > at
    assert is_open(hours, set(), opening)
    assert not is_open(hours, set(), opening - timedelta(minutes=1)) or opening - timedelta(minutes=1) <= at


@pytest.mark.usefixtures("tenant")
def test_outside_office_hours_one_automatic_answer_per_conversation_in_the_persons_language(
    django_capture_on_commit_callbacks: Any,
) -> None:
    sandbox = Connection.objects.get(provider="sandbox")
    InboxSettings.objects.update_or_create(
        key="inbox", defaults={"office_hours": "Mo 00:00-00:01"}
    )  # closed nearly always
    anna = messenger_services.sandbox_person_create(connection=sandbox, name="Anna")
    english = Subscriber.objects.create(name="Ben", language="en")
    ben = messenger_services.sandbox_person_create(connection=sandbox, name="Ben")
    Contact.objects.filter(pk=ben.pk).update(subscriber=english)
    with django_capture_on_commit_callbacks(execute=True):
        for person in (anna, anna, ben):
            messenger_services.sandbox_receive(connection=sandbox, address=person.address, text="Hallo?")
            apply_all()
    answers = list(SandboxMessage.objects.filter(direction="out").values_list("address", "text"))
    assert len(answers) == 2
    by_person = dict(answers)
    assert by_person[anna.address].startswith("Vielen Dank") and "Montag" in by_person[anna.address]
    assert by_person[ben.address].startswith("Thank you") and "Monday" in by_person[ben.address]
    conversation = Conversation.objects.get(contact=anna)
    assert conversation.auto_replied_at is not None
    assert conversation.entries.filter(kind=Entry.Kind.AUTO_REPLY).count() == 1
    assert conversation.status == "open" and conversation.first_response_at is None  # a person still owes an answer


@pytest.mark.usefixtures("tenant")
def test_inside_office_hours_or_without_hours_nobody_gets_an_automatic_answer() -> None:
    sandbox = Connection.objects.get(provider="sandbox")
    row, _new = InboxSettings.objects.get_or_create(key="inbox")
    cara = messenger_services.sandbox_person_create(connection=sandbox, name="Cara")
    messenger_services.sandbox_receive(connection=sandbox, address=cara.address, text="Hallo?")
    apply_all()
    conversation = Conversation.objects.get(contact=cara)
    assert selectors.auto_reply_text(conversation) == ""
    row.office_hours = "Mo-So 00:00-24:00"
    row.save()
    assert selectors.auto_reply_text(conversation) == ""
    row.office_hours = "Mo-So 00:00-24:00"
    row.holidays = "\n".join(
        (datetime.now(BERLIN).date() + timedelta(days=offset)).isoformat() for offset in range(-1, 2)
    )
    row.save()
    assert selectors.auto_reply_text(conversation).startswith("Vielen Dank")  # a holiday today


@pytest.mark.usefixtures("tenant")
def test_the_settings_page_checks_hours_and_only_admins_may_change_them(client_a: Client) -> None:
    agent = make_user(roles.INBOX_AGENT, username="agent_s")
    client_a.force_login(agent)
    row = services.inbox_settings_ensure()
    url = f"/admin/inbox/inboxsettings/{row.pk}/change/"
    assert client_a.post(url, {"office_hours": "Mo 8-16"}).status_code == 403
    admin = signed_in_admin(client_a)
    assert admin.get("/admin/inbox/inboxsettings/")["Location"] == url
    page = admin.post(
        url,
        {
            "office_hours": "Mo 16-8",
            "holidays": "",
            "auto_reply_de": "",
            "auto_reply_en": "",
            "answer_window_hours": "24",
        },
    )
    assert page.status_code == 200 and "not after its start" in page.content.decode()
    done = admin.post(
        url,
        {
            "office_hours": "Mo-Fr 8-16",
            "holidays": "24.12.2026",
            "auto_reply_de": "",
            "auto_reply_en": "",
            "answer_window_hours": "24",
        },
    )
    assert done.status_code == 302
    row.refresh_from_db()
    assert (row.office_hours, row.holidays) == ("Mo-Fr 8-16", "24.12.2026")
