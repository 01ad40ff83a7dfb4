"""The preference page (signed link) and one-click unsubscribe (RFC 8058), and that personal
links of one tenant are useless on another tenant's domain."""

from __future__ import annotations

import pytest
from django.test import Client
from django.test.client import MULTIPART_CONTENT

from channels.models import Channel
from messengers.models import Contact
from subscribers import links
from subscribers.models import ConsentEvent, Source, Subscriber, Subscription
from subscribers.selectors import preferences_url, unsubscribe_url
from subscribers.services import district_create, subscriber_erase, subscriber_for_contact, subscription_start
from tenants.models import Tenant
from tests.channels.factories import make_channel
from tests.conftest import in_tenant
from tests.subscribers.factories import phone

BASE = "http://tenant-a.localhost:8000"


@pytest.fixture
def person(tenant: Tenant) -> Subscriber:
    dust = make_channel("Feinstaubalarm", ["FEINSTAUB"])
    make_channel("Verkehr", ["VERKEHR"])
    make_channel("Intern", ["INTERN"], is_public=False)
    subscriber = subscriber_for_contact(contact=phone())
    assert subscriber is not None
    subscription_start(subscriber=subscriber, channels=[dust], source=Source.KEYWORD)
    return subscriber


def path_of(url: str) -> str:
    assert url.startswith(BASE), url
    return url.removeprefix(BASE)


def channels_of(subscriber: Subscriber) -> set[str]:
    return set(
        Subscription.objects.filter(subscriber=subscriber, status="active").values_list("channel__slug", flat=True)
    )


def test_links_are_absolute_on_the_tenants_domain(person: Subscriber) -> None:
    assert preferences_url(person).startswith(f"{BASE}/preferences/")
    assert unsubscribe_url(person).startswith(f"{BASE}/unsubscribe/")
    assert links.subscriber_from_token(path_of(preferences_url(person)).split("/")[2], links.PREFERENCES) == person


def test_the_preference_page_changes_channels_district_and_language(person: Subscriber, client_a: Client) -> None:
    mitte = district_create(name="Mitte")
    url = path_of(preferences_url(person))
    page = client_a.get(url)
    html = page.content.decode()
    assert page.status_code == 200 and "Feinstaubalarm" in html and "Verkehr" in html and "Intern" not in html
    assert "+49 … " in html  # the number is shown masked
    traffic = Channel.objects.get(slug="verkehr")
    response = client_a.post(url, {"channels": [str(traffic.pk)], "district": str(mitte.pk), "language": "en"})
    assert response.status_code == 302
    person.refresh_from_db()
    assert channels_of(person) == {"verkehr"} and person.district == mitte and person.language == "en"
    kinds = set(ConsentEvent.objects.values_list("kind", "channel__slug", "source", "source_detail"))
    assert ("opt_in", "verkehr", "web_form", "preference page") in kinds
    assert ("opt_out", "feinstaubalarm", "web_form", "preference page") in kinds


def test_unsubscribing_from_everything_and_coming_back(person: Subscriber, client_a: Client) -> None:
    url = path_of(preferences_url(person))
    response = client_a.post(url, {"unsubscribe_all": "1"})
    assert response.status_code == 200 and "You are unsubscribed" in response.content.decode()
    assert channels_of(person) == set()
    contact = Contact.objects.get(subscriber=person)
    assert contact.status == Contact.Status.UNSUBSCRIBED
    dust = person.subscriptions.get().channel
    client_a.post(url, {"channels": [str(dust.pk)], "language": "de"})
    contact.refresh_from_db()
    assert channels_of(person) == {"feinstaubalarm"} and contact.status == Contact.Status.ACTIVE


def test_bad_links_show_a_helpful_page(person: Subscriber, client_a: Client) -> None:
    good = path_of(preferences_url(person))
    for url in (good[:-3] + "xx/", "/preferences/zz.abc/", "/preferences/nothing/",
                path_of(unsubscribe_url(person)).replace("/unsubscribe/", "/preferences/")):  # fmt: skip
        response = client_a.get(url)
        assert response.status_code == 404 and "EINSTELLUNGEN" in response.content.decode(), url


def test_a_new_link_secret_revokes_every_old_link(person: Subscriber, client_a: Client) -> None:
    old = path_of(preferences_url(person))
    Subscriber.objects.filter(pk=person.pk).update(link_secret="rotated")
    assert client_a.get(old).status_code == 404


def test_one_click_unsubscribe_per_rfc_8058(person: Subscriber) -> None:
    client = Client(HTTP_HOST="tenant-a.localhost", enforce_csrf_checks=True)  # no cookies, no CSRF token
    url = path_of(unsubscribe_url(person))
    response = client.post(url, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200  # never a redirect
    assert channels_of(person) == set()
    event = ConsentEvent.objects.get(kind="opt_out")
    assert event.source == Source.WEB_FORM and "RFC 8058" in event.source_detail
    again = client.post(url, {"List-Unsubscribe": "One-Click"}, content_type=MULTIPART_CONTENT)
    assert again.status_code == 200
    assert ConsentEvent.objects.filter(kind="opt_out").count() == 1  # repeating changes nothing


def test_a_get_on_the_unsubscribe_link_only_asks(person: Subscriber, client_a: Client) -> None:
    response = client_a.get(path_of(unsubscribe_url(person)))
    assert response.status_code == 200 and 'method="post"' in response.content.decode()
    assert channels_of(person) == {"feinstaubalarm"}
    assert client_a.post(path_of(unsubscribe_url(person))).status_code == 200  # the page's button
    assert channels_of(person) == set()


def test_a_forged_one_click_request_is_refused(person: Subscriber) -> None:
    client = Client(HTTP_HOST="tenant-a.localhost")
    response = client.post(f"/unsubscribe/{links.subscriber_token(person, links.PREFERENCES)}/",
                           {"List-Unsubscribe": "One-Click"})  # fmt: skip
    assert response.status_code == 404
    assert channels_of(person) == {"feinstaubalarm"}


def test_personal_links_of_one_tenant_are_useless_on_another(
    person: Subscriber, tenant: Tenant, tenant_b: Tenant, client_b: Client
) -> None:
    preferences, unsubscribe = path_of(preferences_url(person)), path_of(unsubscribe_url(person))
    with in_tenant(tenant_b):
        dust_b = make_channel("Feinstaubalarm", ["FEINSTAUB"])
        # the same id in B, to be sure only the signature stands between the two
        twin = Subscriber.objects.create(pk=person.pk, name="Zwilling", link_secret=person.link_secret)
        subscription_start(subscriber=twin, channels=[dust_b], source=Source.KEYWORD)
    assert client_b.get(preferences).status_code == 404
    assert client_b.post(preferences, {"unsubscribe_all": "1"}).status_code == 404
    assert client_b.post(unsubscribe, {"List-Unsubscribe": "One-Click"}).status_code == 404
    with in_tenant(tenant_b):
        assert channels_of(twin) == {"feinstaubalarm"}
    with in_tenant(tenant):
        assert channels_of(person) == {"feinstaubalarm"}


def test_erased_people_have_no_preference_page(person: Subscriber, client_a: Client) -> None:
    url = path_of(preferences_url(person))
    subscriber_erase(subscriber=person, source=Source.ADMIN)
    assert client_a.get(url).status_code == 404
