"""The four-eyes rule in the admin (issue 8): no approve or review button for those who may not,
the reason shown in German and English instead, the action endpoint checked for every role, and
tenant B unable to act on tenant A's broadcast."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from accounts import roles
from accounts.models import User
from broadcasts import services
from broadcasts.models import Broadcast
from tenants.models import Tenant
from tests.broadcasts.four_eyes_support import TEXT, S, bypassed, status, submitted
from tests.conftest import in_tenant
from tests.factories import make_user
from tests.helpers import enrol_totp


# --------------------------------------------------------------------------------------------
# The admin: no approve button for those who may not, and the reason in German and English
# --------------------------------------------------------------------------------------------
def page(client: Client, user: User, broadcast: Broadcast, language: str = "en") -> str:
    client.force_login(user)
    response = client.get(f"/admin/broadcasts/broadcast/{broadcast.pk}/change/", HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.parametrize(
    ("language", "reason"),
    [
        ("en", "You changed this broadcast (text)"),
        ("de", "Sie haben diese Aussendung geändert (Text)"),
    ],
)
def test_the_co_editor_sees_no_approve_button_but_the_reason(
    team: dict[str, Any], client_a: Client, language: str, reason: str
) -> None:
    broadcast = submitted(team)
    services.broadcast_update(broadcast=broadcast, actor=team["approver"], variants={"de": "Mein Text."})
    html = page(client_a, team["approver"], broadcast, language)
    assert 'id="bc-do-approve"' not in html
    assert 'id="bc-do-reject"' in html
    assert reason in html
    other = page(client_a, team["approver2"], broadcast, language)
    assert 'id="bc-do-approve"' in other and reason not in other


@pytest.mark.parametrize(
    ("language", "reason"),
    [
        ("en", "You wrote this broadcast"),
        ("de", "Sie haben diese Aussendung verfasst"),
    ],
)
def test_the_author_sees_no_approve_button_but_the_reason(
    team: dict[str, Any], client_a: Client, language: str, reason: str
) -> None:
    broadcast = submitted(team, author="approver")
    html = page(client_a, team["approver"], broadcast, language)
    assert 'id="bc-do-approve"' not in html and reason in html


def test_a_co_editors_approve_request_is_refused_in_their_language(team: dict[str, Any], client_a: Client) -> None:
    broadcast = submitted(team)
    services.broadcast_update(broadcast=broadcast, actor=team["approver"], variants={"de": "Mein Text."})
    client_a.force_login(team["approver"])
    url = f"/admin/broadcasts/broadcast/{broadcast.pk}/do/approve/"
    english = client_a.post(url, {"revision": 2}, follow=True, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    german = client_a.post(url, {"revision": 2}, follow=True, HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert "You changed this broadcast (text)" in english
    assert "Sie haben diese Aussendung geändert (Text)" in german
    assert status(broadcast) == S.SUBMITTED


def test_the_approve_form_carries_the_revision_the_approver_saw(team: dict[str, Any], client_a: Client) -> None:
    broadcast = submitted(team)
    html = page(client_a, team["approver"], broadcast)
    assert 'name="revision" value="1"' in html
    services.broadcast_update(broadcast=broadcast, actor=team["editor"], variants={"de": "Später geändert."})
    response = client_a.post(f"/admin/broadcasts/broadcast/{broadcast.pk}/do/approve/", {"revision": 1}, follow=True)
    assert "changed after you opened it" in response.content.decode()
    assert status(broadcast) == S.SUBMITTED


def test_the_bypasser_sees_no_review_button_but_the_reason(team: dict[str, Any], client_a: Client) -> None:
    broadcast = bypassed(team)
    html = page(client_a, team["admin"], broadcast)
    assert 'id="bc-do-review"' not in html and "You sent this broadcast without approval" in html
    assert 'id="bc-do-review"' in page(client_a, team["approver"], broadcast)


@pytest.mark.parametrize(
    ("role", "action", "allowed"),
    [
        ("agent", "submit", False),
        ("agent", "cancel", False),
        ("agent", "approve", False),
        ("editor", "approve", False),
        ("editor", "review", False),
        ("editor", "bypass", False),
        ("approver", "bypass", False),
        ("editor", "submit", True),
        ("editor", "cancel", True),
    ],
)
def test_every_role_against_the_admin_action_endpoint(
    team: dict[str, Any], client_a: Client, role: str, action: str, allowed: bool
) -> None:
    broadcast = services.broadcast_create(
        author=team["admin"], title="Alarm", variants=dict(TEXT), channels=[team["channel"]]
    )
    if action in ("approve", "cancel"):
        services.broadcast_submit(broadcast=broadcast, actor=team["admin"])
    if action == "review":
        services.broadcast_send_without_approval(broadcast=broadcast, actor=team["admin"])
    before = Broadcast.objects.get(pk=broadcast.pk)
    client_a.force_login(team[role])
    response = client_a.post(f"/admin/broadcasts/broadcast/{broadcast.pk}/do/{action}/", {"comment": "x"})
    after = Broadcast.objects.get(pk=broadcast.pk)
    changed = (after.status, after.needs_review) != (before.status, before.needs_review)
    assert changed is allowed, (response.status_code, before.status, after.status)


def test_tenant_b_cannot_act_on_or_read_the_blockers_of_tenant_as_broadcast(
    team: dict[str, Any], tenant_b: Tenant, client_b: Client
) -> None:
    broadcast = submitted(team)
    with in_tenant(tenant_b):
        other = make_user(roles.APPROVER, username="ob_b")
        enrol_totp(other)
        client_b.force_login(other)
        response = client_b.post(f"/admin/broadcasts/broadcast/{broadcast.pk}/do/approve/", {"revision": 1})
        assert response.status_code == 404
        assert client_b.get(f"/admin/broadcasts/broadcast/{broadcast.pk}/progress.json").status_code == 404
    assert status(broadcast) == S.SUBMITTED
