"""Unit tests of the Composer: each recipient's message from the broadcast — the variant in their
language (or the fallback), tracked links per recipient or per broadcast, buttons, media, the
WhatsApp template, and the e-mail footer and unsubscribe URL."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import pytest

from broadcasts.links import link_token_parse
from broadcasts.models import Broadcast, BroadcastVariant, TrackedLink
from broadcasts.pipeline import ClaimedRow, Composer, email_urls
from messengers.adapters.base import Media, Provider
from messengers.selectors import connection_sandbox
from subscribers import selectors as subscriber_selectors
from tenants.models import Tenant
from tenants.selectors import tenant_public_base_url
from tests.broadcasts.factories import make_subscribers
from tests.channels.factories import make_channel

SCHEMA = "test_a"
BASE = "https://stuttgart.example.org"
URL = "https://www.stuttgart.de/feinstaub"
TOKEN_URL = re.compile(re.escape(BASE) + r"/l/([0-9a-f]+-[0-9a-f]+-[A-Za-z0-9_-]{12})")


def row(delivery_id: int = 10, language: str = "de", *, use_template: bool = False) -> ClaimedRow:
    return ClaimedRow(
        delivery_id=delivery_id,
        subscriber_id=delivery_id + 100,
        contact_id=delivery_id + 200,
        connection_id=1,
        language=language,
        use_template=use_template,
        attempts=0,
        address=f"+49170{delivery_id:07d}",
    )


def composer(*, per_recipient: bool = True, **broadcast_fields: Any) -> Composer:
    broadcast = Broadcast(title="Feinstaubalarm ab Montag", **broadcast_fields)
    return Composer(
        broadcast=broadcast,
        schema=SCHEMA,
        base_url=BASE,
        per_recipient_links=per_recipient,
        variants={
            "de": BroadcastVariant(language="de", body=f"Feinstaubalarm: {URL}", subject="Feinstaubalarm"),
            "en": BroadcastVariant(language="en", body=f"Particulate alarm: {URL}"),
        },
        links=[TrackedLink(pk=5, position=0, url=URL)],
        fallback_language="de",
    )


def tokens(text: str) -> list[tuple[int, int] | None]:
    return [link_token_parse(SCHEMA, token) for token in TOKEN_URL.findall(text)]


def test_each_recipient_gets_their_language_and_the_rest_the_fallback() -> None:
    compose = composer()
    assert compose.message(row(language="en"), Provider.TELEGRAM).text.startswith("Particulate alarm: ")
    assert compose.message(row(language="de"), Provider.TELEGRAM).text.startswith("Feinstaubalarm: ")
    assert compose.message(row(language="tr"), Provider.TELEGRAM).text.startswith("Feinstaubalarm: ")
    compose.variants = {}
    assert compose.message(row(), Provider.TELEGRAM).text == ""


def test_the_subject_is_the_variants_or_its_first_line_never_the_internal_title() -> None:
    compose = composer()
    assert compose.message(row(language="de"), Provider.EMAIL).subject == "Feinstaubalarm"
    assert compose.message(row(language="en"), Provider.EMAIL).subject == "Particulate alarm"
    assert "Montag" not in compose.message(row(language="en"), Provider.EMAIL).subject


def test_tracked_links_carry_the_delivery_when_tracking_per_recipient() -> None:
    compose = composer(per_recipient=True)
    first, second = compose.message(row(10), Provider.SMS), compose.message(row(11), Provider.SMS)
    assert URL not in first.text
    assert tokens(first.text) == [(5, 10)]
    assert tokens(second.text) == [(5, 11)]
    assert (first.reference, second.reference) == ("d10", "d11")


def test_tracked_links_are_one_per_broadcast_without_per_recipient_tracking() -> None:
    compose = composer(per_recipient=False)
    first, second = compose.message(row(10), Provider.SMS), compose.message(row(11), Provider.SMS)
    assert first.text == second.text
    assert tokens(first.text) == [(5, 0)]


def test_buttons_with_a_url_are_tracked_and_titles_shortened() -> None:
    buttons = [{"title": "Mehr Informationen zum Alarm", "url": URL}, {"title": "ohne Ziel"}]
    message = composer(buttons=buttons).message(row(10), Provider.TELEGRAM)
    assert len(message.buttons) == 1
    assert message.buttons[0].title == "Mehr Informationen z"
    assert tokens(message.buttons[0].url) == [(5, 10)]


def test_media_goes_with_the_message_or_as_the_templates_header() -> None:
    media = Media(url=f"{BASE}/media/alarm.jpg", kind="image")
    compose = composer(wa_template_name="newsletter_update", wa_template_params=[f"Infos: {URL}"])
    compose.media = media
    in_window = compose.message(row(10, "de-DE"), Provider.WHATSAPP)
    assert (in_window.media, in_window.template) == (media, None)
    outside = compose.message(row(10, "de-DE", use_template=True), Provider.WHATSAPP)
    assert outside.media is None
    assert outside.template is not None
    assert (outside.template.name, outside.template.language) == ("newsletter_update", "de")
    assert outside.template.header_media == media
    assert tokens(outside.template.body_params[0]) == [(5, 10)]
    # only WhatsApp has templates: the others get the text and the media
    on_telegram = compose.message(row(10, use_template=True), Provider.TELEGRAM)
    assert (on_telegram.template, on_telegram.media) == (None, media)


def test_a_templates_own_language_wins_over_the_recipients() -> None:
    compose = composer(wa_template_name="newsletter_update", wa_template_language="en_US")
    message = compose.message(row(use_template=True), Provider.WHATSAPP)
    assert message.template is not None and message.template.language == "en_US"


def test_e_mails_get_the_preferences_footer_and_the_unsubscribe_url() -> None:
    compose = composer()
    compose.email_urls[110] = (f"{BASE}/unsubscribe/abc/", f"{BASE}/preferences/abc/")
    mail = compose.message(row(10), Provider.EMAIL)
    assert mail.text.endswith(f"\n\n--\n{BASE}/preferences/abc/")
    assert mail.unsubscribe_url == f"{BASE}/unsubscribe/abc/"
    assert "--" not in compose.message(row(10), Provider.SMS).text
    unknown = compose.message(row(11), Provider.EMAIL)
    assert (unknown.unsubscribe_url, unknown.text.count("\n--\n")) == ("", 0)


@pytest.mark.django_db
def test_build_takes_the_tenants_language_as_fallback_and_the_absolute_media_url(tenant: Tenant) -> None:
    broadcast = Broadcast.objects.create(title="Baustelle", media="broadcasts/baustelle.mp4", media_kind="video")
    BroadcastVariant.objects.create(broadcast=broadcast, language="en", body="Roadworks")
    BroadcastVariant.objects.create(broadcast=broadcast, language="tr", body="Yol çalışması")
    TrackedLink.objects.create(broadcast=broadcast, position=1, url="https://b.example.org/")
    TrackedLink.objects.create(broadcast=broadcast, position=0, url="https://a.example.org/")
    as_tenant = SimpleNamespace(schema_name=tenant.schema_name, default_language="tr", link_tracking="aggregate")
    compose = Composer.build(broadcast, as_tenant)
    assert compose.fallback_language == "tr"
    assert compose.per_recipient_links is False
    assert [link.url for link in compose.links] == ["https://a.example.org/", "https://b.example.org/"]
    assert compose.media == Media(url=f"{tenant_public_base_url()}{broadcast.media.url}", kind="video")
    as_tenant.default_language = "de"  # no German variant: the first one
    assert Composer.build(broadcast, as_tenant).fallback_language in ("en", "tr")


@pytest.mark.django_db
def test_email_urls_are_the_subscribers_signed_links(tenant: Tenant) -> None:
    sandbox = connection_sandbox()
    assert sandbox is not None
    people = make_subscribers(2, [make_channel("Verkehr", ["VERKEHR"], connections=[sandbox])], sandbox)
    urls = email_urls([p.pk for p in people])
    assert urls == {
        p.pk: (subscriber_selectors.unsubscribe_url(p), subscriber_selectors.preferences_url(p)) for p in people
    }
