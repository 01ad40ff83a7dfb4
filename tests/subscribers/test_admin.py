"""The tenant admin for subscribers and channels: constant query counts, search, filters,
posters, districts, the read-only ledger."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from accounts import roles
from channels.models import Channel
from messengers.models import Connection, Contact
from subscribers.models import ConsentEvent, District, Poster, Source, Subscriber, Subscription
from subscribers.services import district_create, subscription_start
from tenants.models import Tenant
from tests.channels.factories import make_channel
from tests.factories import make_user
from tests.helpers import enrol_totp, query_count, signed_in_admin
from tests.subscribers.factories import make_people, sandbox

LIST = "/admin/subscribers/subscriber/"


@pytest.fixture
def admin_client(tenant: Tenant, client_a: Client) -> Client:
    return signed_in_admin(client_a)


@pytest.mark.parametrize(
    "query", ["", "?channel={dust}", "?messenger=sandbox&language=de", "?q=Person", "?source=import"]
)
def test_the_subscriber_list_costs_the_same_number_of_queries_for_3_or_60_people(
    admin_client: Client, query: str
) -> None:
    dust, traffic = make_channel(), make_channel("Verkehr", ["VERKEHR"])
    mitte = district_create(name="Mitte")
    make_people(3, [dust, traffic], district=mitte)
    url = LIST + query.format(dust=dust.pk)
    small, html = query_count(admin_client, url)
    assert "Person" in html and "Feinstaubalarm, Verkehr" in html and "Sandbox +49157" in html
    make_people(57, [dust, traffic], district=mitte)
    large, html = query_count(admin_client, url)
    assert html.count('class="action-select"') == 50  # a full page
    assert large == small, f"{small} queries for 3 people, {large} for 60"


def test_the_channel_list_shows_subscriber_counts_at_constant_cost(admin_client: Client) -> None:
    dust = make_channel(is_alarm=True)
    make_people(4, [dust])
    small, html = query_count(admin_client, "/admin/channels/channel/")
    assert '<td class="field-subscribers">4</td>' in html
    for i in range(10):
        make_people(2, [make_channel(f"Kanal {i}", [f"KANAL{i}"])])
    large, html = query_count(admin_client, "/admin/channels/channel/")
    assert large == small


def test_search_by_number_in_any_spelling_email_name_or_id(admin_client: Client) -> None:
    email = Connection.objects.create(provider="email", name="Newsletter", external_id="n@stadt-a.example")
    dust = make_channel(connections=[sandbox(), email])
    erika, max_ = make_people(2, [dust])
    Subscriber.objects.filter(pk=erika.pk).update(name="Erika Müller")
    Contact.objects.create(connection=email, address="max@example.org", subscriber=max_)
    number = Contact.objects.get(subscriber=erika).address  # +49157…
    national = "0" + number[3:]
    for term, expected in ((number, erika), (f"{number[:3]} {number[3:7]} {number[7:]}", erika), (national, erika),
                           ("MAX@example.org", max_), ("müller", erika), (f"#{max_.pk}", max_)):  # fmt: skip
        html = admin_client.get(LIST, {"q": term}).content.decode()
        assert f"/{expected.pk}/change/" in html, term
        other = max_ if expected is erika else erika
        assert f"/{other.pk}/change/" not in html, term


def test_filters(admin_client: Client) -> None:
    dust, traffic = make_channel(), make_channel("Verkehr", ["VERKEHR"])
    south = district_create(name="Süd")
    a = make_people(1, [dust], language="en")[0]
    b = make_people(1, [traffic], district=south)[0]
    Subscription.objects.filter(subscriber=b).update(source=Source.QR)

    def shown(query: dict[str, Any]) -> set[int]:
        html = admin_client.get(LIST, query).content.decode()
        return {p.pk for p in (a, b) if f"/{p.pk}/change/" in html}

    assert shown({"channel": dust.pk}) == {a.pk}
    assert shown({"language": "en"}) == {a.pk}
    assert shown({"district__id__exact": south.pk}) == {b.pk}
    assert shown({"source": "qr"}) == {b.pk}
    assert shown({"messenger": "sandbox"}) == {a.pk, b.pk}
    assert shown({"messenger": "whatsapp"}) == set()
    assert shown({"status__exact": "active"}) == {a.pk, b.pk}


def test_staff_can_correct_a_persons_details(admin_client: Client) -> None:
    person = make_people(1, [make_channel()])[0]
    mitte = district_create(name="Mitte")
    response = admin_client.post(
        f"{LIST}{person.pk}/change/",
        {
            "name": "Erika Neu",
            "language": "en",
            "district": mitte.pk,
            "tags_text": "Rad, ÖPNV",
            "subscriptions-TOTAL_FORMS": 0,
            "subscriptions-INITIAL_FORMS": 0,
            "consent_events-TOTAL_FORMS": 0,
            "consent_events-INITIAL_FORMS": 0,
        },  # fmt: skip
    )
    assert response.status_code == 302, response.context and response.context.get("errors")
    person.refresh_from_db()
    assert (person.name, person.language, person.district, person.tags) == ("Erika Neu", "en", mitte, ["Rad", "ÖPNV"])


def test_the_consent_ledger_is_read_only(admin_client: Client) -> None:
    person = make_people(1, [])[0]
    subscription_start(subscriber=person, channels=[make_channel()], source=Source.KEYWORD, evidence="sbx-1")
    html = admin_client.get("/admin/subscribers/consentevent/").content.decode()
    assert "sbx-1" in html and "Opt-in" in html
    event = ConsentEvent.objects.get()
    assert admin_client.get("/admin/subscribers/consentevent/add/").status_code == 403
    page = admin_client.post(f"/admin/subscribers/consentevent/{event.pk}/change/", {"evidence": "changed"})
    assert page.status_code in (200, 403)
    event.refresh_from_db()
    assert event.evidence == "sbx-1"


def test_posters_are_created_with_a_code_and_link_to_their_print_page(admin_client: Client) -> None:
    dust = make_channel()
    response = admin_client.post(
        "/admin/subscribers/poster/add/", {"channel": dust.pk, "provider": "web", "label": "Rathaus"}
    )
    assert response.status_code == 302
    poster = Poster.objects.get()
    assert len(poster.code) == 6 and poster.label == "Rathaus"
    html = admin_client.get("/admin/subscribers/poster/").content.decode()
    assert f"/subscribe/poster/{poster.code}/" in html


def test_districts_are_created_with_normalised_aliases(admin_client: Client) -> None:
    response = admin_client.post(
        "/admin/subscribers/district/add/", {"name": "Bad Cannstatt", "slug": "", "position": 1,
                                              "aliases_text": "Cannstatt, Bad-Cannstatt"},
    )  # fmt: skip
    assert response.status_code == 302
    district = District.objects.get()
    assert (district.slug, district.aliases) == ("bad-cannstatt", ["CANNSTATT", "BAD CANNSTATT"])
    clash = admin_client.post(
        "/admin/subscribers/district/add/", {"name": "Cannstatt", "position": 2, "aliases_text": ""}
    )
    assert clash.status_code == 302 and District.objects.count() == 1


def test_alarm_state_from_the_admin_and_who_may_change_it(tenant: Tenant, client_a: Client) -> None:
    channel = make_channel(is_alarm=True)
    editor = make_user(roles.EDITOR)
    client_a.force_login(editor)
    response = client_a.post(
        f"/admin/channels/channel/{channel.pk}/alarm/", {"state": "announced", "note": "Prognose: Inversion"}
    )
    assert response.status_code == 302
    channel.refresh_from_db()
    assert channel.alarm_state == "announced"
    assert "Prognose: Inversion" in client_a.get(f"/admin/channels/channel/{channel.pk}/alarm/").content.decode()
    client_a.post("/admin/channels/channel/", {"action": "alarm_activate", "_selected_action": [channel.pk]})
    channel.refresh_from_db()
    assert channel.alarm_state == "active"
    approver = make_user(roles.APPROVER)
    enrol_totp(approver)
    client_a.force_login(approver)
    assert client_a.post(f"/admin/channels/channel/{channel.pk}/alarm/", {"state": "inactive"}).status_code == 403
    channel.refresh_from_db()
    assert channel.alarm_state == "active"


def test_channels_are_created_in_the_admin_with_checked_keywords(admin_client: Client) -> None:
    make_channel("Verkehr", ["VERKEHR"])
    data = {"name": "Feinstaub", "slug": "", "keywords_text": "feinstaub!, Feinstaubalarm", "color": "#1f4e8c",
            "is_public": "on", "is_active": "on", "default_priority": "normal", "position": 0,
            "connections": [sandbox().pk], "alarm_history-TOTAL_FORMS": 0, "alarm_history-INITIAL_FORMS": 0}  # fmt: skip
    response = admin_client.post("/admin/channels/channel/add/", data)
    assert response.status_code == 302, response.context and response.context.get("errors")
    channel = Channel.objects.get(name="Feinstaub")
    assert channel.keywords == ["FEINSTAUB", "FEINSTAUBALARM"] and list(channel.connections.all()) == [sandbox()]
    taken = admin_client.post("/admin/channels/channel/add/", {**data, "name": "Stau", "keywords_text": "verkehr"})
    assert taken.status_code == 200 and "already used by the channel" in taken.content.decode()


@pytest.mark.parametrize("digits", ["²", "٣", "１２"])  # digits to str.isdigit(), not (all) to int()
def test_search_and_filters_take_non_ascii_digits_without_failing(admin_client: Client, digits: str) -> None:
    make_people(1, [make_channel()])
    assert admin_client.get(LIST, {"q": f"#{digits}"}).status_code == 200
    assert admin_client.get(LIST, {"channel": digits}).status_code == 200
