"""A tenant's own wording of citizen texts (subscribers.texts, TextOverride): the built-in text
where there is none, the tenant's wording for every channel, a channel's own wording first;
refused when it does not fit its placeholders; edited in the admin; never seen by another
tenant."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.utils import translation

from accounts.models import AuditEvent
from core.errors import ApplicationError
from subscribers import texts
from subscribers.models import TextOverride
from subscribers.services import text_override_delete, text_override_save
from tenants.models import Tenant
from tests.channels.factories import make_channel
from tests.conftest import in_tenant
from tests.subscribers.factories import last_reply, phone, say
from tests.subscribers.import_helpers import sign_in_as_admin

pytestmark = pytest.mark.django_db


@pytest.fixture
def channels(tenant: Tenant) -> dict[str, Any]:
    return {"dust": make_channel("Feinstaubalarm", ["FEINSTAUB"]), "traffic": make_channel("Verkehr", ["VERKEHR"])}


def test_without_overrides_the_built_in_texts_are_sent_unchanged(channels: dict[str, Any]) -> None:
    assert texts.message("welcome_default", "de", channel="Verkehr", tenant="Stadt A") == (
        "Willkommen! Sie erhalten jetzt Nachrichten zu „Verkehr“ von Stadt A."
    )
    assert texts.message("stopped_all", "en", for_channel=channels["dust"].pk) == texts.TEXTS["en"]["stopped_all"]
    assert texts.message("help_district_line", "de-ls") == "BEZIRK <Name> – Ihr Stadtbezirk\n"


def test_a_channels_wording_comes_before_the_tenants_which_comes_before_the_built_in(
    channels: dict[str, Any],
) -> None:
    dust, traffic = channels["dust"], channels["traffic"]
    text_override_save(key="welcome_default", language="de", text="Hallo von {tenant}!")
    text_override_save(key="welcome_default", language="de", text="Feinstaub-Hallo: {channel}", channel=dust)

    def welcome(language: str, channel_id: int | None = None) -> str:
        return texts.message("welcome_default", language, for_channel=channel_id, channel="X", tenant="Stadt A")

    assert welcome("de", dust.pk) == "Feinstaub-Hallo: X"
    assert welcome("de", traffic.pk) == "Hallo von Stadt A!"
    assert welcome("de") == "Hallo von Stadt A!"
    assert welcome("de-ls") == "Hallo von Stadt A!"  # Leichte Sprache: the German texts
    assert welcome("en").startswith("Welcome! You will now receive")


def test_keyword_replies_use_the_wording_of_the_channel_they_are_about(
    channels: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    text_override_save(key="welcome_default", language="de", text="Schön, dass Sie dabei sind: {channel}!",
                       channel=channels["traffic"])  # fmt: skip
    text_override_save(key="help", language="de", text="Schreiben Sie uns einfach. Themen: {channels}")
    person = phone()
    say(django_capture_on_commit_callbacks, person, "START VERKEHR")
    assert last_reply(person).startswith("Schön, dass Sie dabei sind: Verkehr!")
    say(django_capture_on_commit_callbacks, person, "START FEINSTAUB")
    assert last_reply(person).startswith("Willkommen! Sie erhalten jetzt Nachrichten zu „Feinstaubalarm“")
    say(django_capture_on_commit_callbacks, person, "HILFE")
    assert last_reply(person).startswith("Schreiben Sie uns einfach. Themen: ")


@pytest.mark.parametrize(
    ("key", "text", "fragment"),
    [
        ("welcome_default", "Hallo {name}", "{name}"),
        ("welcome_default", "Hallo {channel", "curly brace"),
        ("consent_default", "Ich will.", "cannot be changed"),
        ("welcome_default", "   ", "Enter the wording"),
    ],
)
def test_a_wording_that_cannot_replace_the_text_is_refused(
    channels: dict[str, Any], key: str, text: str, fragment: str
) -> None:
    with translation.override("en"), pytest.raises(ApplicationError) as refused:
        text_override_save(key=key, language="en", text=text)
    assert fragment in refused.value.message
    assert not TextOverride.objects.exists()


def test_saving_and_deleting_are_audit_logged_and_deleting_restores_the_built_in(channels: dict[str, Any]) -> None:
    override = text_override_save(key="stopped_all", language="en", text="Bye!")
    assert texts.message("stopped_all", "en") == "Bye!"
    text_override_delete(override=override)
    assert texts.message("stopped_all", "en") == texts.TEXTS["en"]["stopped_all"]
    assert set(AuditEvent.objects.values_list("action", flat=True)) >= {
        "subscribers.text_overridden", "subscribers.text_override_deleted",
    }  # fmt: skip


def test_one_tenants_wording_never_shows_in_another_tenant(channels: dict[str, Any], tenant_b: Tenant) -> None:
    text_override_save(key="stopped_all", language="de", text="Tschüss aus Stadt A.")
    text_override_save(key="help", language="de", text="Hilfe von A", channel=channels["dust"])
    with in_tenant(tenant_b):
        other = make_channel("Feinstaubalarm", ["FEINSTAUB"])
        assert texts.message("stopped_all", "de") == texts.TEXTS["de"]["stopped_all"]
        assert not TextOverride.objects.exists()
        assert texts.message("help", "de", for_channel=other.pk, district_line="", channels="–").startswith(
            "So geht's:"
        )
    assert texts.message("stopped_all", "de") == "Tschüss aus Stadt A."


def test_a_refusal_speaks_german_to_german_staff(channels: dict[str, Any]) -> None:
    with translation.override("de"), pytest.raises(ApplicationError) as refused:
        text_override_save(key="welcome_default", language="de", text="Hallo {name}")
    assert refused.value.message == (
        "Der Wortlaut verwendet Platzhalter, die dieser Text nicht hat: {name}. Möglich: {channel}, {tenant}."
    )


def test_staff_edit_a_wording_in_the_admin(channels: dict[str, Any], client_a: Client) -> None:
    sign_in_as_admin(client_a)
    url = "/admin/subscribers/textoverride/add/"
    assert client_a.get(url).status_code == 200
    refused = client_a.post(url, {"key": "welcome_default", "language": "de", "channel": "", "text": "Hi {who}"})
    assert refused.status_code == 200 and "{who}" in refused.content.decode()
    response = client_a.post(
        url, {"key": "welcome_default", "language": "de", "channel": channels["dust"].pk, "text": "Hi {channel}"}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    override = TextOverride.objects.get()
    assert (override.channel, override.text) == (channels["dust"], "Hi {channel}")
    assert AuditEvent.objects.filter(action="subscribers.text_overridden").exists()
    listing = client_a.get("/admin/subscribers/textoverride/")
    assert listing.status_code == 200 and "Hi {channel}" in listing.content.decode()
    deleted = client_a.post(f"/admin/subscribers/textoverride/{override.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 302 and not TextOverride.objects.exists()
