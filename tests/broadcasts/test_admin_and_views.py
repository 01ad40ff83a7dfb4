"""Broadcast admin (compose, plan, workflow buttons, progress), tracked links, archive and RSS."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from accounts import roles
from broadcasts import links, pipeline, services
from broadcasts.models import Broadcast, Delivery, LinkClick, TrackedLink
from broadcasts.services import sending
from messengers.selectors import connection_sandbox
from tenants.models import Tenant
from tests.broadcasts.factories import make_subscribers
from tests.channels.factories import make_channel
from tests.conftest import in_tenant
from tests.factories import make_user
from tests.helpers import enrol_totp
from tests.subscribers.factories import forget_cached_tenants


@pytest.fixture
def world(tenant: Tenant) -> dict[str, Any]:
    sandbox = connection_sandbox()
    assert sandbox is not None
    channel = make_channel(
        "Feinstaubalarm", ["FEINSTAUBALARM"], connections=[sandbox], is_alarm=True, default_priority="alert"
    )
    internal = make_channel("Intern", ["INTERN"], connections=[sandbox], is_public=False)
    make_subscribers(4, [channel], sandbox)
    editor = make_user(roles.EDITOR, username="redaktion")
    approver = make_user(roles.APPROVER, username="ob")
    enrol_totp(approver)
    return {"sandbox": sandbox, "channel": channel, "internal": internal, "editor": editor, "approver": approver}


def test_editor_composes_in_the_admin_and_sees_plan_and_buttons(world: dict[str, Any], client_a: Client) -> None:
    client_a.force_login(world["editor"])
    response = client_a.post(
        "/admin/broadcasts/broadcast/add/",
        {
            "title": "Feinstaubalarm ab Montag",
            "priority": "alert",
            "channels": [world["channel"].pk],
            "body_de": "Ab Montag gilt Feinstaubalarm. Infos: https://www.stuttgart.de/feinstaub",
            "body_en": "Particulate alarm from Monday.",
            "body_ls": "",
            "subject": "",
            "tags_text": "",
            "template_params_text": "",
            "wa_template_name": "",
            "wa_template_language": "",
            "button_0_title": "Infos",
            "button_0_url": "https://www.stuttgart.de/feinstaub",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    broadcast = Broadcast.objects.get(title="Feinstaubalarm ab Montag")
    assert broadcast.author == world["editor"] and broadcast.status == Broadcast.Status.DRAFT
    assert set(broadcast.variants.values_list("language", flat=True)) == {"de", "en"}
    assert broadcast.buttons == [{"title": "Infos", "url": "https://www.stuttgart.de/feinstaub"}]
    page = client_a.get(f"/admin/broadcasts/broadcast/{broadcast.pk}/change/").content.decode()
    assert 'id="bc-preview"' in page and 'id="bc-plan"' in page
    assert 'id="bc-plan-total">4<' in page  # four subscribers of the channel
    assert 'id="bc-do-submit"' in page and 'id="bc-do-approve"' not in page  # editors cannot approve
    client_a.post(f"/admin/broadcasts/broadcast/{broadcast.pk}/do/submit/")
    assert Broadcast.objects.get(pk=broadcast.pk).status == Broadcast.Status.SUBMITTED


def test_the_authors_own_approve_button_is_refused(world: dict[str, Any], client_a: Client) -> None:
    approver = world["approver"]
    broadcast = services.broadcast_create(
        author=approver, title="Selbst", channels=[world["channel"]], variants={"de": "Text"}
    )
    services.broadcast_submit(broadcast=broadcast, actor=approver)
    client_a.force_login(approver)
    response = client_a.post(f"/admin/broadcasts/broadcast/{broadcast.pk}/do/approve/", follow=True)
    assert "four-eyes" in response.content.decode() or "Vier-Augen" in response.content.decode()
    assert Broadcast.objects.get(pk=broadcast.pk).status == Broadcast.Status.SUBMITTED


def test_media_type_and_size_are_validated(world: dict[str, Any], client_a: Client) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    client_a.force_login(world["editor"])
    base = {"title": "Bild", "priority": "normal", "channels": [world["channel"].pk], "body_de": "Text"}
    response = client_a.post(
        "/admin/broadcasts/broadcast/add/",
        {**base, "media": SimpleUploadedFile("flyer.gif", b"GIF89a" + b"0" * 100, content_type="image/gif")},
    )
    assert response.status_code == 200 and "JPEG or PNG" in response.content.decode()
    big = SimpleUploadedFile("flyer.jpg", b"\xff\xd8" + b"0" * (5 * 1024 * 1024 + 10), content_type="image/jpeg")
    response = client_a.post("/admin/broadcasts/broadcast/add/", {**base, "media": big})
    assert response.status_code == 200 and "at most 5 MB" in response.content.decode()


def test_progress_json_and_changelist_query_count(
    world: dict[str, Any], client_a: Client, django_assert_max_num_queries: Any
) -> None:
    editor = world["editor"]
    for i in range(12):
        services.broadcast_create(author=editor, title=f"B{i}", channels=[world["channel"]], variants={"de": "x"})
    client_a.force_login(editor)
    broadcast = Broadcast.objects.first()
    assert broadcast is not None
    data = client_a.get(f"/admin/broadcasts/broadcast/{broadcast.pk}/progress.json").json()
    assert data["total"] == 0 and data["percent"] == 0.0
    client_a.get("/admin/broadcasts/broadcast/")
    with django_assert_max_num_queries(12):
        assert client_a.get("/admin/broadcasts/broadcast/").status_code == 200


def test_tenant_b_cannot_see_tenant_as_broadcasts(world: dict[str, Any], tenant_b: Tenant, client_b: Client) -> None:
    broadcast = services.broadcast_create(
        author=world["editor"], title="Nur A", channels=[world["channel"]], variants={"de": "x"}
    )
    with in_tenant(tenant_b):
        other = make_user(roles.ADMIN, username="chef_b")
        enrol_totp(other)
        client_b.force_login(other)
        assert client_b.get(f"/admin/broadcasts/broadcast/{broadcast.pk}/change/").status_code in (302, 404)
        assert "Nur A" not in client_b.get("/admin/broadcasts/broadcast/").content.decode()
        assert client_b.get(f"/admin/broadcasts/broadcast/{broadcast.pk}/progress.json").status_code == 404


def _sent_with_link(world: dict[str, Any]) -> tuple[Broadcast, TrackedLink, Delivery]:
    broadcast = services.broadcast_create(
        author=world["editor"],
        title="Link",
        channels=[world["channel"]],
        variants={"de": "Mehr: https://example.org/a"},
    )
    Broadcast.objects.filter(pk=broadcast.pk).update(status=Broadcast.Status.SENDING)
    sending._register_links(broadcast)
    pipeline.fanout(Broadcast.objects.get(pk=broadcast.pk))
    delivery = Delivery.objects.filter(broadcast=broadcast).first()
    assert delivery is not None
    return broadcast, TrackedLink.objects.get(broadcast=broadcast), delivery


def test_tracked_links_count_clicks_but_not_previews(world: dict[str, Any], client_a: Client, tenant: Tenant) -> None:
    from tenants.services import tenant_update_settings

    # per-person tracking is a tenant's explicit choice (new tenants count per link only)
    tenant_update_settings(tenant=tenant, actor=None, link_tracking=Tenant.LinkTracking.PER_RECIPIENT)
    broadcast, link, delivery = _sent_with_link(world)
    token = links.link_token(tenant.schema_name, link.pk, delivery.pk)
    assert client_a.head(f"/l/{token}").status_code == 302  # a link preview's HEAD
    assert client_a.get(f"/l/{token}", HTTP_USER_AGENT="WhatsApp/2.23.20.0").status_code == 302
    response = client_a.get(f"/l/{token}", HTTP_USER_AGENT="Mozilla/5.0 (iPhone)")
    assert response.status_code == 302 and response["Location"] == "https://example.org/a"
    link.refresh_from_db()
    assert link.clicks == 1
    assert LinkClick.objects.filter(link=link, delivery=delivery).count() == 1
    assert client_a.get(f"/l/{token[:-2]}xx").status_code == 404  # forged signature


def test_aggregate_only_tracking_keeps_no_per_person_clicks(
    world: dict[str, Any], client_a: Client, tenant: Tenant
) -> None:
    from tenants.services import tenant_update_settings

    tenant_update_settings(tenant=tenant, actor=None, link_tracking=Tenant.LinkTracking.AGGREGATE)
    broadcast, link, delivery = _sent_with_link(world)
    token = links.link_token(tenant.schema_name, link.pk, delivery.pk)
    client_a.get(f"/l/{token}", HTTP_USER_AGENT="Mozilla/5.0")
    link.refresh_from_db()
    assert link.clicks == 1 and not LinkClick.objects.exists()


def test_tokens_of_tenant_a_do_not_work_on_tenant_b(world: dict[str, Any], client_b: Client, tenant: Tenant) -> None:
    broadcast, link, delivery = _sent_with_link(world)
    token = links.link_token(tenant.schema_name, link.pk, delivery.pk)
    assert client_b.get(f"/l/{token}").status_code == 404


def test_archive_and_rss_show_sent_public_broadcasts_only(
    world: dict[str, Any], client_a: Client, client_b: Client
) -> None:
    public = services.broadcast_create(
        author=world["editor"], title="Öffentlich", channels=[world["channel"]], variants={"de": "Alarm vorbei"}
    )
    hidden = services.broadcast_create(
        author=world["editor"], title="Intern", channels=[world["internal"]], variants={"de": "Nur intern"}
    )
    draft = services.broadcast_create(
        author=world["editor"], title="Entwurf", channels=[world["channel"]], variants={"de": "noch nicht"}
    )
    Broadcast.objects.filter(pk__in=[public.pk, hidden.pk]).update(
        status=Broadcast.Status.SENT, send_finished_at=timezone.now()
    )
    page = client_a.get("/archive/").content.decode()
    assert "Alarm vorbei" in page
    assert "Nur intern" not in page and "noch nicht" not in page and draft.title not in page
    feed = client_a.get("/archive/feed.rss")
    assert feed["Content-Type"].startswith("application/rss+xml")
    assert "Alarm vorbei" in feed.content.decode() and "Nur intern" not in feed.content.decode()
    assert "Alarm vorbei" not in client_b.get("/archive/").content.decode()
    assert "Alarm vorbei" not in client_b.get("/archive/feed.rss").content.decode()


def _sent(world: dict[str, Any], title: str, variants: dict[str, str], subjects: dict[str, str] | None = None) -> Any:
    broadcast = services.broadcast_create(
        author=world["editor"], title=title, channels=[world["channel"]], variants=variants, subjects=subjects
    )
    Broadcast.objects.filter(pk=broadcast.pk).update(status=Broadcast.Status.SENT, send_finished_at=timezone.now())
    return broadcast


def test_archive_and_rss_show_the_public_headline_never_the_internal_title(
    world: dict[str, Any], client_a: Client
) -> None:
    _sent(
        world, "Entwurf Feinstaub v2",
        {"de": "Feinstaubalarm ab Montag\nBitte Bus und Bahn nutzen.", "en": "Particulate alarm from Monday\nTake the bus."},
    )  # fmt: skip
    _sent(world, "Baustelle intern", {"de": "Die Sperrung endet."}, subjects={"de": "Neckarstraße wieder frei"})
    page = client_a.get("/archive/").content.decode()  # the test client reads English
    assert "<h2>Particulate alarm from Monday</h2>" in page and "<h2>Neckarstraße wieder frei</h2>" in page
    feed = client_a.get("/archive/feed.rss").content.decode()
    assert "<title>Feinstaubalarm ab Montag</title>" in feed and "<title>Neckarstraße wieder frei</title>" in feed
    for internal in ["Entwurf Feinstaub v2", "Baustelle intern"]:
        assert internal not in page and internal not in feed


@pytest.mark.parametrize(("language", "expected"), [("de", "Feinstaubalarm ab Montag"), ("en", "Particulate alarm")])
def test_rss_is_in_the_tenants_language(
    world: dict[str, Any], tenant: Tenant, client_a: Client, client_b: Client, language: str, expected: str
) -> None:
    _sent(world, "Entwurf v2", {"de": "Feinstaubalarm ab Montag", "en": "Particulate alarm"})
    Tenant.objects.filter(pk=tenant.pk).update(default_language=language)
    forget_cached_tenants()
    feed = client_a.get("/archive/feed.rss", HTTP_ACCEPT_LANGUAGE="de" if language == "en" else "en")
    xml = feed.content.decode()
    assert f"<language>{language}</language>" in xml
    assert f"<title>{expected}</title>" in xml and f"<description>{expected}</description>" in xml
    channel_description = {"de": "versendete Mitteilungen", "en": "sent announcements"}[language]
    assert channel_description in xml
    # tenant B keeps its own language and never lists tenant A's items
    other = client_b.get("/archive/feed.rss").content.decode()
    assert expected not in other and "<language>de</language>" in other
