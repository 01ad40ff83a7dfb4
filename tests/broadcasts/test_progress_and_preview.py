"""Issue 8, items 13 and 15: the page of a broadcast that can no longer be edited previews what
went out, and the live progress adds up, speaks the user's language and offers only the
controls that still apply."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.test import Client

from accounts import roles
from broadcasts import pipeline, services
from broadcasts.models import Broadcast, Delivery
from broadcasts.services.sending import _maybe_finish
from messengers.selectors import connection_sandbox
from tenants.models import Tenant
from tests.broadcasts.factories import make_subscribers
from tests.channels.factories import make_channel
from tests.factories import make_user

S = Broadcast.Status
D = Delivery.Status
BODY_DE = "Ab Montag gilt Feinstaubalarm. Bitte lassen Sie das Auto stehen."


@pytest.fixture
def world(tenant: Tenant) -> dict[str, Any]:
    sandbox = connection_sandbox()
    assert sandbox is not None
    channel = make_channel(
        "Feinstaubalarm", ["FEINSTAUBALARM"], connections=[sandbox], is_alarm=True, default_priority="alert"
    )
    make_subscribers(7, [channel], sandbox)
    editor = make_user(roles.EDITOR, username="redaktion")
    agent = make_user(roles.INBOX_AGENT, username="buergerbuero")
    broadcast = services.broadcast_create(
        author=editor,
        title="Feinstaubalarm ab Montag",
        channels=[channel],
        variants={"de": BODY_DE, "en": "Particulate alarm from Monday."},
        subjects={"de": "Feinstaubalarm"},
        buttons=[{"title": "Infos", "url": "https://www.stuttgart.de/feinstaub"}],
        wa_template_name="newsletter_update",
    )
    return {"channel": channel, "editor": editor, "agent": agent, "broadcast": broadcast}


def sending(broadcast: Broadcast, **statuses: int) -> None:
    """The broadcast in the middle of sending: its deliveries in the given states (the rest queued)."""
    Broadcast.objects.filter(pk=broadcast.pk).update(status=S.SENDING)
    pipeline.fanout(Broadcast.objects.get(pk=broadcast.pk))
    ids = list(Delivery.objects.filter(broadcast=broadcast).order_by("pk").values_list("pk", flat=True))
    for state, count in statuses.items():
        chosen, ids = ids[:count], ids[count:]
        Delivery.objects.filter(pk__in=chosen).update(status=state)


def change_page(client: Client, user: Any, broadcast: Broadcast, language: str = "en") -> str:
    client.force_login(user)
    response = client.get(f"/admin/broadcasts/broadcast/{broadcast.pk}/change/", HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 200
    return response.content.decode()


def progress(client: Client, broadcast: Broadcast, language: str = "en") -> dict[str, Any]:
    response = client.get(f"/admin/broadcasts/broadcast/{broadcast.pk}/progress.json", HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 200
    return response.json()


# --------------------------------------------------------------------------------------------
# Item 13: the preview of what went out
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("state", [S.SENDING, S.PAUSED, S.SENT, S.CANCELLED])
def test_a_broadcast_that_can_no_longer_be_edited_previews_its_content(
    world: dict[str, Any], client_a: Client, state: str
) -> None:
    broadcast = world["broadcast"]
    Broadcast.objects.filter(pk=broadcast.pk).update(status=state)
    html = change_page(client_a, world["editor"], broadcast)
    assert 'name="body_de"' not in html  # nothing to edit …
    match = re.search(r'<script id="bc-content" type="application/json">(.*?)</script>', html, re.S)
    assert match, "the page carries the content that went out for the preview"
    content = json.loads(match.group(1))
    assert content["variants"]["de"] == {"body": BODY_DE, "subject": "Feinstaubalarm"}
    assert content["variants"]["en"]["body"] == "Particulate alarm from Monday."
    assert content["buttons"] == [{"title": "Infos", "url": "https://www.stuttgart.de/feinstaub"}]
    assert content["wa_template_name"] == "newsletter_update"
    assert "Feinstaubalarm" in html and "Particulate alarm from Monday." in html  # also readable without JS


def test_the_preview_content_cannot_break_out_of_its_script(world: dict[str, Any], client_a: Client) -> None:
    broadcast = world["broadcast"]
    services.broadcast_update(
        broadcast=broadcast, actor=world["editor"], variants={"de": "</script><script>alert(1)</script>"}
    )
    Broadcast.objects.filter(pk=broadcast.pk).update(status=S.SENT)
    html = change_page(client_a, world["editor"], broadcast)
    assert "<script>alert(1)" not in html


# --------------------------------------------------------------------------------------------
# Item 15: progress that adds up, translated, with the controls that apply
# --------------------------------------------------------------------------------------------
def test_the_counts_on_the_page_add_up_to_the_recipients(world: dict[str, Any], client_a: Client) -> None:
    broadcast = world["broadcast"]
    sending(broadcast, claimed=1, sending=2, sent=1, delivered=1, failed=1)  # one still queued
    html = change_page(client_a, world["editor"], broadcast)
    shown = {key: int(value) for key, value in re.findall(r'<dd data-key="(\w+)">(\d+)</dd>', html)}
    total = shown.pop("total")
    assert total == 7 and sum(shown.values()) == total, shown
    assert shown["in_flight"] == 3 and shown["queued"] == 1


def test_the_progress_json_adds_up_and_names_each_part(world: dict[str, Any], client_a: Client) -> None:
    broadcast = world["broadcast"]
    sending(broadcast, claimed=1, sending=1, sent=1, delivered=1, read=1, skipped=1)
    client_a.force_login(world["editor"])
    data = progress(client_a, broadcast)
    parts = ["queued", "in_flight", "sent", "delivered", "read", "failed", "skipped"]
    assert sum(data[part] for part in parts) == data["total"] == 7
    assert data["in_flight"] == 2 and data["queued"] == 1


@pytest.mark.parametrize(
    ("language", "during", "after"), [("en", "Sending", "Sent"), ("de", "Wird gesendet", "Gesendet")]
)
def test_the_poll_gives_the_translated_status_and_what_the_user_may_do_now(
    world: dict[str, Any], client_a: Client, language: str, during: str, after: str
) -> None:
    broadcast = world["broadcast"]
    sending(broadcast)
    client_a.force_login(world["editor"])
    data = progress(client_a, broadcast, language)
    assert data["status"] == "sending" and data["status_label"] == during
    assert data["actions"] == ["pause", "cancel"] and data["final"] is False
    Delivery.objects.filter(broadcast=broadcast).update(status=D.DELIVERED)
    assert _maybe_finish(broadcast.pk)
    data = progress(client_a, broadcast, language)
    assert data["status"] == "sent" and data["status_label"] == after
    assert data["actions"] == [] and data["final"] is True and data["percent"] == 100.0


def test_the_poll_offers_resume_while_paused_and_nothing_to_a_role_without_control(
    world: dict[str, Any], client_a: Client
) -> None:
    broadcast = world["broadcast"]
    sending(broadcast)
    services.broadcast_pause(broadcast=broadcast, actor=world["editor"], reason="zu viele Fehler")
    client_a.force_login(world["editor"])
    data = progress(client_a, broadcast)
    assert data["actions"] == ["resume", "cancel"] and data["paused_reason"] == "zu viele Fehler"
    client_a.force_login(world["agent"])
    assert progress(client_a, broadcast)["actions"] == []


def test_the_page_has_hidden_controls_the_poll_can_show(world: dict[str, Any], client_a: Client) -> None:
    """While sending, resume is on the page but hidden, so a pause shows it without a reload."""
    broadcast = world["broadcast"]
    sending(broadcast)
    html = change_page(client_a, world["editor"], broadcast)
    assert re.search(r'<form[^>]*bc-action-pause"[^>]*data-action="pause"(?![^>]*hidden)', html)
    assert re.search(r'<form[^>]*data-action="resume"[^>]*hidden', html)
    agent_page = change_page(client_a, world["agent"], broadcast)
    assert 'data-action="pause"' not in agent_page and 'data-action="resume"' not in agent_page
