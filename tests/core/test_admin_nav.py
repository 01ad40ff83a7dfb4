"""The admin's navigation by task (issue 10, item 2): every role sees exactly its entries, the
badges count the right broadcasts of this tenant only (four-eyes aware), "To approve" lists exactly
them, the operator admin has its own navigation and look, and the navigation costs a constant
number of queries (one per badge)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.db import connection as db_connection
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import clear_script_prefix, set_script_prefix

from accounts import roles
from accounts.models import User
from broadcasts import selectors, services
from broadcasts.models import Broadcast
from core.admin_sites import operator_site, tenant_site
from messengers.selectors import connection_sandbox
from tenants.models import Tenant
from tests.broadcasts.factories import make_subscribers
from tests.broadcasts.four_eyes_support import TEXT, S, submitted, team
from tests.channels.factories import make_channel
from tests.conftest import in_tenant
from tests.factories import make_user
from tests.helpers import enrol_totp, query_count
from tests.tenants.test_operator_admin import operator

__all__ = ["team"]  # the fixture, used by name

BROADCASTS = "/admin/broadcasts/broadcast/"
TO_APPROVE = f"{BROADCASTS}?to_approve=me"
WORK = ["broadcasts", "channels", "subscribers"]
# and the broadcasts' and channels' figures, for everyone but inbox agents (analytics/roles.py)
WORK_WITH_RESULTS = ["broadcasts", "broadcast_results", "channels", "channel_figures", "subscribers"]
ADMINISTRATION = ["settings", "users", "messengers", "outgoing-webhooks", "audit_log", "api_keys"]


def nav_keys(html: str) -> list[str]:
    nav = re.search(r'<nav id="task-nav".*?</nav>', html, re.S)
    assert nav is not None, "no navigation on the page"
    return re.findall(r'data-nav="([^"]+)"', nav.group(0))


def current_keys(html: str) -> list[str]:
    return re.findall(r'data-nav="([^"]+)"\s+aria-current="page"', html)


def badge(html: str, key: str) -> int:
    found = re.search(rf'data-badge="{key}">(\d+)<', html)
    return int(found.group(1)) if found else 0


def get(client: Client, user: User, url: str = BROADCASTS, language: str = "en") -> str:
    client.force_login(user)
    response = client.get(url, HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 200, response
    return response.content.decode()


def make_team_here() -> dict[str, Any]:
    """Every role and a channel that needs approval, in the current schema (for tenant B)."""
    sandbox = connection_sandbox()
    assert sandbox is not None
    channel = make_channel("Feinstaub", ["FEINSTAUB"], connections=[sandbox], is_alarm=True, default_priority="alert")
    make_subscribers(2, [channel], sandbox)
    people = {"editor": make_user(roles.EDITOR), "approver": make_user(roles.APPROVER)}
    enrol_totp(people["approver"])
    return {"channel": channel, "sandbox": sandbox, **people}


def start_sending(broadcast: Broadcast) -> None:
    Broadcast.objects.filter(pk=broadcast.pk).update(status=S.SENDING)


# --------------------------------------------------------------------------------------------
# who sees what
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("role", "expected"),
    [
        ("editor", [*WORK_WITH_RESULTS, "inbox"]),
        ("agent", [*WORK, "inbox"]),
        ("approver", ["to_approve", *WORK_WITH_RESULTS]),
        ("admin", ["to_approve", *WORK_WITH_RESULTS, "inbox", "inbox_figures", *ADMINISTRATION]),
    ],
)
def test_each_role_sees_exactly_its_entries(
    team: dict[str, Any], client_a: Client, role: str, expected: list[str]
) -> None:
    assert nav_keys(get(client_a, team[role])) == expected


def test_editor_sees_no_administration_even_though_they_may_read_connections_and_the_log(
    team: dict[str, Any], client_a: Client
) -> None:
    editor = team["editor"]
    assert editor.has_perm("messengers.view_connection") and editor.has_perm("accounts.view_auditevent")
    html = get(client_a, editor)
    assert not set(nav_keys(html)) & {*ADMINISTRATION, "to_approve"}
    assert "/admin/settings/" not in html


def test_navigation_is_german_for_german_staff(team: dict[str, Any], client_a: Client) -> None:
    html = get(client_a, team["admin"], language="de")
    nav = re.search(r'<nav id="task-nav".*?</nav>', html, re.S)
    assert nav is not None
    for label in ("Zur Freigabe", "Aussendungen", "Kanäle", "Abonnierende", "Einstellungen", "Benutzer", "Messenger"):
        assert label in nav.group(0), label
    assert 'aria-label="Hauptnavigation"' in nav.group(0)


def test_the_current_page_is_marked(team: dict[str, Any], client_a: Client) -> None:
    approver = team["approver"]
    assert current_keys(get(client_a, approver, BROADCASTS)) == ["broadcasts"]
    assert current_keys(get(client_a, approver, TO_APPROVE)) == ["to_approve"]
    assert current_keys(get(client_a, approver, "/admin/channels/channel/")) == ["channels"]
    assert current_keys(get(client_a, approver, "/admin/")) == []


# --------------------------------------------------------------------------------------------
# what waits for me (selector, badge, list filter)
# --------------------------------------------------------------------------------------------
def test_awaiting_approval_by_leaves_out_what_the_approver_wrote_or_changed(team: dict[str, Any]) -> None:
    by_editor = submitted(team)
    by_approver = submitted(team, author="approver")
    changed = submitted(team)
    services.broadcast_update(broadcast=changed, actor=team["approver"], variants={"de": "Mein eigener Text."})
    draft = services.broadcast_create(
        author=team["editor"], title="Entwurf", variants=dict(TEXT), channels=[team["channel"]]
    )

    assert set(selectors.broadcast_list_awaiting_approval_by(team["approver"])) == {by_editor}
    assert set(selectors.broadcast_list_awaiting_approval_by(team["approver2"])) == {by_editor, by_approver, changed}
    assert draft not in selectors.broadcast_list_awaiting_approval_by(team["admin"])
    # nobody without the approver role is asked, not even the author
    assert not selectors.broadcast_list_awaiting_approval_by(team["editor"]).exists()
    assert not selectors.broadcast_list_awaiting_approval_by(team["agent"]).exists()


def test_awaiting_approval_by_an_inactive_user_is_empty(team: dict[str, Any]) -> None:
    submitted(team)
    approver = team["approver"]
    approver.is_active = False
    assert not selectors.broadcast_list_awaiting_approval_by(approver).exists()


def test_to_approve_badge_counts_what_waits_for_this_approver(team: dict[str, Any], client_a: Client) -> None:
    assert badge(get(client_a, team["approver"]), "to_approve") == 0  # nothing: no badge
    submitted(team)
    submitted(team)
    submitted(team, author="approver")
    changed = submitted(team)
    services.broadcast_update(broadcast=changed, actor=team["approver"], variants={"de": "Anders."})
    assert badge(get(client_a, team["approver"]), "to_approve") == 2
    assert badge(get(client_a, team["approver2"]), "to_approve") == 4


def test_to_approve_filter_lists_exactly_what_waits_for_me(team: dict[str, Any], client_a: Client) -> None:
    mine = [submitted(team), submitted(team)]
    written = submitted(team, author="approver")
    changed = submitted(team)
    services.broadcast_update(broadcast=changed, actor=team["approver"], variants={"de": "Anders."})
    services.broadcast_create(author=team["editor"], title="Entwurf", variants=dict(TEXT), channels=[team["channel"]])

    html = get(client_a, team["approver"], TO_APPROVE)
    listed = {int(pk) for pk in re.findall(r'href="/admin/broadcasts/broadcast/(\d+)/change/[^"]*"', html)}
    assert listed == {broadcast.pk for broadcast in mine}
    assert written.pk not in listed and changed.pk not in listed
    # an editor following the same link sees nothing (they approve nothing)
    html = get(client_a, team["editor"], TO_APPROVE)
    assert not re.findall(r'href="/admin/broadcasts/broadcast/(\d+)/change/', html)


def test_sending_badge_on_broadcasts(team: dict[str, Any], client_a: Client) -> None:
    first, second, waiting = submitted(team), submitted(team), submitted(team)
    start_sending(first)
    start_sending(second)
    for role in ("editor", "approver", "admin", "agent"):
        html = get(client_a, team[role])
        assert badge(html, "broadcasts") == 2, role
    assert '2<span class="visually-hidden"> sending now</span>' in get(client_a, team["editor"])
    assert waiting.status == S.SUBMITTED


def test_badges_never_count_the_other_tenants_broadcasts(
    team: dict[str, Any], tenant_b: Tenant, client_a: Client, client_b: Client
) -> None:
    submitted(team)
    with in_tenant(tenant_b):
        other = make_team_here()
        for _ in range(3):
            submitted(other)
        start_sending(submitted(other))
        html_b = get(client_b, other["approver"])
    assert badge(html_b, "to_approve") == 3 and badge(html_b, "broadcasts") == 1
    html_a = get(client_a, team["approver"])
    assert badge(html_a, "to_approve") == 1 and badge(html_a, "broadcasts") == 0


# --------------------------------------------------------------------------------------------
# cost
# --------------------------------------------------------------------------------------------
def test_each_badge_costs_one_query(team: dict[str, Any], tenant: Tenant) -> None:
    approver = team["approver"]
    approver.get_all_permissions()  # the permission cache, which every admin page fills anyway
    request = RequestFactory().get(BROADCASTS)
    request.user = approver
    request.tenant = tenant
    with CaptureQueriesContext(db_connection) as queries:
        groups = tenant_site.nav_for(request)
        tenant_site.nav_for(request)  # a second each_context on the same page costs nothing
    assert [item.key for group in groups for item in group.items] == ["to_approve", *WORK_WITH_RESULTS]
    assert len(queries.captured_queries) == 2  # "to approve" and "sending now"


def test_a_page_with_navigation_costs_the_same_with_more_broadcasts(team: dict[str, Any], client_a: Client) -> None:
    client_a.force_login(team["approver"])
    submitted(team)
    few, _ = query_count(client_a, "/admin/channels/channel/")
    for _ in range(4):
        submitted(team)
    start_sending(submitted(team))
    start_sending(submitted(team))
    many, html = query_count(client_a, "/admin/channels/channel/")
    assert badge(html, "to_approve") == 5 and badge(html, "broadcasts") == 2
    assert many == few


# --------------------------------------------------------------------------------------------
# the operator admin
# --------------------------------------------------------------------------------------------
def test_operator_has_its_own_navigation_and_look(public: Any, client_public: Client) -> None:
    html = get(client_public, operator(), "/admin/")
    assert nav_keys(html) == ["overview", "tenant_figures", "tenants", "onboarding", "operators", "audit_log"]
    assert current_keys(html) == ["overview"]
    assert 'class="topbar topbar-operator"' in html and 'class="site-badge"' in html
    html = get(client_public, User.objects.get(username="op"), "/admin/tenants/tenant/onboard/", language="de")
    assert current_keys(html) == ["onboarding"]
    assert ">Betreiber</span>" in html


def test_tenant_admin_has_the_brand_look_without_operator_badge(team: dict[str, Any], client_a: Client) -> None:
    html = get(client_a, team["editor"])
    assert 'class="topbar"' in html and "site-badge" not in html
    assert "--brand-colour: #" in html


def test_operator_nav_has_no_tenant_entries_and_tenant_nav_no_operator_entries() -> None:
    operator_keys = {entry.key for entry in operator_site._nav_entries()}
    tenant_keys = {entry.key for entry in tenant_site._nav_entries()}
    assert {"tenants", "onboarding", "overview", "operators"} <= operator_keys
    assert not {"to_approve", "broadcasts", "channels", "subscribers", "settings", "messengers"} & operator_keys
    assert not {"tenants", "onboarding", "overview", "operators"} & tenant_keys


def test_the_current_page_is_marked_behind_a_url_prefix(team: dict[str, Any], client_a: Client) -> None:
    """Deployed under a prefix, links carry it (as the WSGI handler sets it) and the marking
    compares path_info, which does not."""
    client_a.force_login(team["approver"])
    set_script_prefix("/newsletter/")
    try:
        response = client_a.get("/admin/channels/channel/", SCRIPT_NAME="/newsletter", HTTP_ACCEPT_LANGUAGE="en")
    finally:
        clear_script_prefix()
    assert response.status_code == 200
    html = response.content.decode()
    assert 'href="/newsletter/admin/channels/channel/"' in html
    assert current_keys(html) == ["channels"]
