"""QR posters: the admin pages (list, add, change, right after saving) for posters of every kind,
and the rule that a poster for a messenger needs an active connection of that messenger carrying
the channel (service and admin form, in English and German)."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts import roles
from channels.models import Channel
from core.errors import ApplicationError
from messengers.models import Connection
from subscribers.models import Poster
from subscribers.services import poster_create
from tenants.models import Tenant
from tests.channels.factories import make_channel
from tests.conftest import in_tenant
from tests.factories import make_user
from tests.helpers import enrol_totp
from tests.subscribers.factories import sandbox

LIST = "/admin/subscribers/poster/"
MESSENGERS = ("whatsapp", "telegram", "sms")
KINDS = (*MESSENGERS, "web")


@pytest.fixture
def admin_client(tenant: Tenant, client_a: Client) -> Client:
    user = make_user(roles.ADMIN)
    enrol_totp(user)
    client_a.force_login(user)
    return client_a


def connections() -> dict[str, Connection]:
    """One connection of each messenger, with the public address a QR code needs."""
    return {
        "whatsapp": Connection.objects.create(
            provider="whatsapp", name="WA", public_address="+49 711 216-0", external_id="wa-poster"
        ),
        "telegram": Connection.objects.create(
            provider="telegram", name="Bot", public_address="@stadt_a_bot", external_id="4242"
        ),
        "sms": Connection.objects.create(
            provider="sms", name="SMS", public_address="+49 170 9999999", external_id="+4917099"
        ),
    }


@pytest.fixture
def everywhere(tenant: Tenant) -> Channel:
    """A channel on every messenger (and the sandbox)."""
    return make_channel("Feinstaubalarm", ["FEINSTAUB"], connections=[*connections().values(), sandbox()])


@pytest.fixture
def sandbox_only(tenant: Tenant) -> Channel:
    return make_channel("Verkehr", ["VERKEHR"])


# --------------------------------------------------------------------------------------------
# The admin pages
# --------------------------------------------------------------------------------------------
def test_the_list_and_the_add_page_open(admin_client: Client, everywhere: Channel) -> None:
    assert admin_client.get(LIST).status_code == 200
    add = admin_client.get(LIST + "add/")
    assert add.status_code == 200 and 'name="provider"' in add.content.decode()


def test_every_kind_of_poster_shows_in_the_list_and_opens(admin_client: Client, everywhere: Channel) -> None:
    posters = {kind: poster_create(channel=everywhere, provider=kind, label=f"Hbf {kind}") for kind in KINDS}
    listing = admin_client.get(LIST)
    assert listing.status_code == 200
    html = listing.content.decode()
    for kind, poster in posters.items():
        assert f"/subscribe/poster/{poster.code}/" in html, kind
        assert f"/subscribe/qr/feinstaubalarm/{kind}.svg?poster={poster.code}" in html, kind
    for kind, poster in posters.items():
        page = admin_client.get(f"{LIST}{poster.pk}/change/")
        assert page.status_code == 200, kind
        assert poster.code in page.content.decode() and f"Hbf {kind}" in page.content.decode()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("button", ["_save", "_continue", "_addanother"])
def test_the_page_after_saving_a_poster_opens(
    admin_client: Client, everywhere: Channel, kind: str, button: str
) -> None:
    response = admin_client.post(
        LIST + "add/", {"channel": everywhere.pk, "provider": kind, "label": "Rathaus", button: "1"}, follow=True
    )
    assert response.status_code == 200
    poster = Poster.objects.get()
    assert (poster.provider, poster.channel, poster.label) == (kind, everywhere, "Rathaus")
    assert response.redirect_chain, "saving redirects"
    if button == "_continue":
        assert response.redirect_chain[-1][0].endswith(f"/{poster.pk}/change/")
        assert poster.code in response.content.decode()


def test_a_poster_cannot_be_changed_through_a_post(admin_client: Client, everywhere: Channel) -> None:
    poster = poster_create(channel=everywhere, provider="web", label="Rathaus")
    other = make_channel("Verkehr", ["VERKEHR"])
    response = admin_client.post(
        f"{LIST}{poster.pk}/change/", {"channel": other.pk, "provider": "sms", "label": "Anders"}
    )
    assert response.status_code in (200, 302, 403)
    poster.refresh_from_db()
    assert (poster.channel, poster.provider, poster.label) == (everywhere, "web", "Rathaus")


def test_editors_see_posters_of_their_tenant_only(tenant: Tenant, tenant_b: Tenant, everywhere: Channel,
                                                   client_b: Client) -> None:  # fmt: skip
    poster = poster_create(channel=everywhere, provider="whatsapp", label="Hbf")
    with in_tenant(tenant_b):
        admin_b = make_user(roles.ADMIN)
        enrol_totp(admin_b)
        client_b.force_login(admin_b)
        assert poster.code not in client_b.get(LIST).content.decode()
        assert client_b.get(f"{LIST}{poster.pk}/change/").status_code in (302, 404)


# --------------------------------------------------------------------------------------------
# A poster's messenger must carry its channel
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", MESSENGERS)
def test_a_messenger_poster_needs_a_connection_of_that_messenger(sandbox_only: Channel, kind: str) -> None:
    with pytest.raises(ApplicationError) as error:
        poster_create(channel=sandbox_only, provider=kind)
    assert "Verkehr" in error.value.message and "subscribe page" in error.value.message
    assert not Poster.objects.exists()


@pytest.mark.parametrize("kind", MESSENGERS)
def test_a_connection_that_does_not_carry_the_channel_does_not_count(sandbox_only: Channel, kind: str) -> None:
    connections()  # they exist, but the channel is not on them
    with pytest.raises(ApplicationError):
        poster_create(channel=sandbox_only, provider=kind)


@pytest.mark.parametrize("kind", MESSENGERS)
@pytest.mark.parametrize("status", ["paused", "disabled"])
def test_a_paused_or_disabled_connection_does_not_count(tenant: Tenant, kind: str, status: str) -> None:
    connection = connections()[kind]
    channel = make_channel("Verkehr", ["VERKEHR"], connections=[connection])
    Connection.objects.filter(pk=connection.pk).update(status=status)
    with pytest.raises(ApplicationError):
        poster_create(channel=channel, provider=kind)


@pytest.mark.parametrize("kind", MESSENGERS)
def test_a_connection_without_a_public_address_cannot_have_posters(tenant: Tenant, kind: str) -> None:
    connection = connections()[kind]
    Connection.objects.filter(pk=connection.pk).update(public_address="")
    channel = make_channel("Verkehr", ["VERKEHR"], connections=[connection])
    with pytest.raises(ApplicationError) as error:
        poster_create(channel=channel, provider=kind)
    assert "public address" in error.value.message


@pytest.mark.parametrize("kind", KINDS)
def test_with_a_connection_every_kind_works(everywhere: Channel, kind: str) -> None:
    poster = poster_create(channel=everywhere, provider=kind)
    assert poster.provider == kind


def test_a_web_poster_needs_no_messenger(sandbox_only: Channel) -> None:
    assert poster_create(channel=sandbox_only, provider="web").provider == "web"


@pytest.mark.parametrize("kind", ["sandbox", "email", "", "WHATSAPP", "whatsapp "])
def test_unknown_messengers_are_refused(everywhere: Channel, kind: str) -> None:
    with pytest.raises(ApplicationError):
        poster_create(channel=everywhere, provider=kind)


@pytest.mark.parametrize("field", ["is_public", "is_active"])
def test_posters_are_for_public_active_channels(everywhere: Channel, field: str) -> None:
    Channel.objects.filter(pk=everywhere.pk).update(**{field: False})
    everywhere.refresh_from_db()
    with pytest.raises(ApplicationError):
        poster_create(channel=everywhere, provider="web")


@pytest.mark.parametrize("kind", MESSENGERS)
@pytest.mark.parametrize(
    ("language", "expected"),
    [("en", "has no active"), ("de", "hat keine aktive")],
)
def test_the_admin_form_says_what_to_do_in_english_and_german(
    admin_client: Client, sandbox_only: Channel, kind: str, language: str, expected: str
) -> None:
    response = admin_client.post(
        LIST + "add/", {"channel": sandbox_only.pk, "provider": kind, "label": "Rathaus"},
        HTTP_ACCEPT_LANGUAGE=language,
    )  # fmt: skip
    assert response.status_code == 200
    html = response.content.decode()
    assert expected in html and "Verkehr" in html
    assert ("subscribe page" if language == "en" else "Anmeldeseite") in html
    assert not Poster.objects.exists()


def test_the_admin_form_accepts_a_web_poster_for_any_channel(admin_client: Client, sandbox_only: Channel) -> None:
    response = admin_client.post(LIST + "add/", {"channel": sandbox_only.pk, "provider": "web", "label": ""})
    assert response.status_code == 302 and Poster.objects.get().provider == "web"


def test_existing_posters_whose_connection_went_away_still_open_in_the_admin(
    admin_client: Client, everywhere: Channel
) -> None:
    posters = [poster_create(channel=everywhere, provider=kind) for kind in MESSENGERS]
    Connection.objects.exclude(provider="sandbox").update(status="disabled")
    assert admin_client.get(LIST).status_code == 200
    for poster in posters:
        assert admin_client.get(f"{LIST}{poster.pk}/change/").status_code == 200


def test_a_connection_paused_between_the_check_and_the_save_is_refused_with_a_message(
    admin_client: Client, everywhere: Channel
) -> None:
    """The form checked an active connection; by the time the admin saves, it is paused: the
    service refuses, and the admin says so instead of failing with a server error."""
    from types import SimpleNamespace

    from django.contrib.messages import get_messages
    from django.contrib.messages.storage.fallback import FallbackStorage
    from django.test import RequestFactory
    from django.utils import translation

    from core.admin_sites import tenant_site
    from subscribers.admin.catalogue import _SaveRefusedError

    Connection.objects.filter(provider="whatsapp").update(status="paused")
    request = RequestFactory().post(LIST + "add/")
    request.user = make_user(roles.ADMIN, username="racer")
    request.session = {}  # type: ignore[assignment]
    request._messages = FallbackStorage(request)  # type: ignore[attr-defined]
    form = SimpleNamespace(cleaned_data={"channel": everywhere, "provider": "whatsapp", "label": ""})
    with translation.override("en"), pytest.raises(_SaveRefusedError):
        tenant_site._registry[Poster].save_model(request, Poster(), form, change=False)
    assert "has no active WhatsApp connection" in " ".join(str(m) for m in get_messages(request))
    assert not Poster.objects.exists()
