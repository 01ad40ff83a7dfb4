"""The start page per role (issue 10, item 3): what needs me (to approve, four-eyes aware; my
rejected drafts; paused and failing sends; connections with errors), what is sending (live JSON),
the latest sent with their reach, subscribers with the week's change; and the operator's overview.
Each role sees its sections and no other, per tenant, in a number of queries that does not grow."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from allauth.mfa.models import Authenticator
from django.db import connection as db_connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts import roles
from accounts.models import User
from analytics.models import TenantRollup
from analytics.selectors import platform_overview, start_page
from broadcasts import services
from broadcasts.models import Broadcast, Delivery
from messengers.models import Connection
from messengers.selectors import connection_sandbox
from subscribers.models import Subscriber, Subscription
from subscribers.selectors import subscriber_count_change
from tenants.models import Tenant
from tests.broadcasts.four_eyes_support import submitted
from tests.channels.factories import make_channel
from tests.conftest import in_tenant
from tests.factories import make_user
from tests.helpers import enrol_totp, query_count

S = Broadcast.Status
D = Delivery.Status
SENDING_URL = "/admin/start/sending.json"


def _broadcast(title: str, status: str, **fields: Any) -> Broadcast:
    """A broadcast in a given state (the start page reads states; the workflow is tested elsewhere)."""
    return Broadcast.objects.create(title=title, status=status, **fields)


def _deliveries(broadcast: Broadcast, **counts: int) -> None:
    sandbox = connection_sandbox()
    assert sandbox is not None
    now = timezone.now()
    Delivery.objects.bulk_create(
        [
            Delivery(broadcast=broadcast, connection=sandbox, language="de", status=status, next_attempt_at=now)
            for status, n in counts.items()
            for _ in range(n)
        ]
    )


def _signed_in(client: Client, user: User) -> Client:
    if not Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists():
        enrol_totp(user)
    client.force_login(user)
    return client


# --------------------------------------------------------------------------------------------
# What needs me, per role
# --------------------------------------------------------------------------------------------
def test_an_editor_sees_their_rejected_draft_with_the_comment_and_no_approval_section(
    team: dict[str, Any], client_a: Client
) -> None:
    broadcast = submitted(team)
    services.broadcast_reject(broadcast=broadcast, actor=team["approver"], comment="Bitte den Ort ergänzen.")
    page = start_page(team["editor"])
    assert page.needs_me.to_approve is None and page.needs_me.to_review is None
    assert page.needs_me.connections is None  # not an admin
    assert [b.pk for b in page.needs_me.rejected or []] == [broadcast.pk]
    # another editor's rejected draft is not theirs
    assert start_page(make_user(roles.EDITOR, username="other_editor")).needs_me.rejected == []

    html = _signed_in(client_a, team["editor"]).get("/admin/").content.decode()
    assert 'id="start-to-approve"' not in html
    assert 'id="start-rejected"' in html and "Bitte den Ort ergänzen." in html
    assert f'href="/admin/broadcasts/broadcast/{broadcast.pk}/change/"' in html


def test_an_approver_sees_only_what_they_may_approve_and_sees_it_first(team: dict[str, Any], client_a: Client) -> None:
    theirs_to_approve = submitted(team)
    changed_by_approver = submitted(team)
    services.broadcast_update(broadcast=changed_by_approver, actor=team["approver"], variants={"de": "Mein Text."})
    written_by_admin = submitted(team, author="admin")

    to_approve = start_page(team["approver"]).needs_me.to_approve
    assert [b.pk for b in to_approve or []] == [theirs_to_approve.pk, written_by_admin.pk]
    # the other approver changed nothing, so all three wait for them
    assert len(start_page(team["approver2"]).needs_me.to_approve or []) == 3
    # the admin wrote one of them: four-eyes holds for admins too
    admin_list = start_page(team["admin"]).needs_me.to_approve or []
    assert written_by_admin.pk not in {b.pk for b in admin_list}

    html = _signed_in(client_a, team["approver"]).get("/admin/").content.decode()
    assert html.index('id="start-to-approve"') < html.index('id="start-needs-me"') < html.index('id="start-sending"')
    assert f"/admin/broadcasts/broadcast/{theirs_to_approve.pk}/change/" in html
    assert f"/admin/broadcasts/broadcast/{changed_by_approver.pk}/change/" not in html
    assert 'class="start-badge">2<' in html


def test_an_approver_with_nothing_to_approve_is_told_so(team: dict[str, Any], client_a: Client) -> None:
    html = _signed_in(client_a, team["approver"]).get("/admin/").content.decode()
    assert "Nothing waiting for your approval." in html
    assert "Nothing waiting for you." in html
    assert "Nothing is sending right now." in html and "Nothing sent yet." in html


def test_broadcasts_sent_without_approval_wait_for_a_review_by_somebody_else(team: dict[str, Any]) -> None:
    bypassed = _broadcast(
        "Alarm", S.SENT, author=team["admin"], bypassed_approval=True, bypassed_by=team["admin"], needs_review=True
    )
    assert [b.pk for b in start_page(team["approver"]).needs_me.to_review or []] == [bypassed.pk]
    assert start_page(team["admin"]).needs_me.to_review == []  # they sent it
    assert start_page(team["editor"]).needs_me.to_review is None


def test_paused_and_failing_sends_need_whoever_controls_sending(team: dict[str, Any], client_a: Client) -> None:
    paused = _broadcast("Verkehr pausiert", S.PAUSED, paused_reason="paused automatically: 60 of 100 sends failed")
    failing = _broadcast("Feinstaub fehlerhaft", S.SENDING, send_started_at=timezone.now())
    _deliveries(failing, sent=30, failed=20, queued=50)
    healthy = _broadcast("U3 läuft", S.SENDING, send_started_at=timezone.now())
    _deliveries(healthy, sent=98, failed=2)

    needs = start_page(team["editor"]).needs_me
    assert [b.pk for b in needs.paused or []] == [paused.pk]
    assert [item.broadcast.pk for item in needs.failing or []] == [failing.pk]
    assert needs.failing and needs.failing[0].tried == 50

    agent = start_page(team["agent"])  # inbox agents do not steer sending
    assert agent.needs_me.paused is None and agent.needs_me.failing is None
    assert [item.broadcast.pk for item in agent.sending or []] == [failing.pk, healthy.pk]

    html = _signed_in(client_a, team["editor"]).get("/admin/").content.decode()
    assert "paused automatically: 60 of 100 sends failed" in html
    assert "20 of 50 messages failed so far" in html


def test_admins_see_connections_with_errors_and_nobody_else_does(team: dict[str, Any], client_a: Client) -> None:
    broken = Connection.objects.create(
        provider="telegram",
        name="Stadt-Bot",
        public_address="@stadt_bot",
        external_id="99",
        status=Connection.Status.PAUSED,
        status_detail="Unauthorized: the bot token was revoked",
    )
    Connection.objects.create(provider="telegram", name="Zweiter Bot", public_address="@b2", external_id="98")
    assert [c.pk for c in start_page(team["admin"]).needs_me.connections or []] == [broken.pk]
    for role in ("editor", "approver", "agent"):
        assert start_page(team[role]).needs_me.connections is None

    html = _signed_in(client_a, team["admin"]).get("/admin/").content.decode()
    assert 'id="start-connections"' in html and "the bot token was revoked" in html
    assert f'href="/admin/messengers/connection/{broken.pk}/change/"' in html


def test_a_user_without_a_role_sees_no_section(tenant: Tenant) -> None:
    from accounts.services import user_create

    nobody = user_create(username="no_role", email="no_role@example.org", role_names=[])
    page = start_page(nobody)
    assert page.sending is None and page.latest_sent is None and page.subscribers is None
    needs = page.needs_me
    assert (needs.to_approve, needs.to_review, needs.rejected, needs.paused, needs.failing, needs.connections) == (
        None,
        None,
        None,
        None,
        None,
        None,
    )


# --------------------------------------------------------------------------------------------
# What went out, with its reach
# --------------------------------------------------------------------------------------------
def test_the_latest_five_sent_broadcasts_with_their_reach(team: dict[str, Any], client_a: Client) -> None:
    now = timezone.now()
    sent = [_broadcast(f"Meldung {i}", S.SENT, send_finished_at=now - timedelta(hours=i)) for i in range(7)]
    _deliveries(sent[0], delivered=5, read=3, failed=2)
    page = start_page(team["agent"])
    assert [item.broadcast.pk for item in page.latest_sent or []] == [b.pk for b in sent[:5]]
    newest = (page.latest_sent or [])[0]
    assert (newest.progress.total, newest.reached, newest.progress.read, newest.progress.failed) == (10, 8, 3, 2)
    assert (newest.reached_percent, newest.read_percent, newest.failed_percent) == (80.0, 30.0, 20.0)

    html = _signed_in(client_a, team["editor"]).get("/admin/").content.decode()  # agents land on the inbox
    assert "Meldung 0" in html and "Meldung 4" in html and "Meldung 5" not in html


# --------------------------------------------------------------------------------------------
# Subscribers and the week's change
# --------------------------------------------------------------------------------------------
def _subscription(channel: Any, subscribed_at: datetime, **fields: Any) -> Subscription:
    return Subscription.objects.create(
        subscriber=Subscriber.objects.create(), channel=channel, source="keyword", subscribed_at=subscribed_at, **fields
    )


def test_subscriber_change_counts_people_on_the_boundary_once(tenant: Tenant) -> None:
    channel = make_channel(name="Verkehr", keywords=["VERKEHR"])
    other = make_channel(name="U3", keywords=["U3"])
    since = timezone.now() - timedelta(days=7)
    second = timedelta(seconds=1)
    _subscription(channel, since - timedelta(days=30))  # long-standing: now and then
    _subscription(channel, since)  # exactly at the boundary: already there then
    _subscription(channel, since + second)  # new this week
    _subscription(channel, since - second, status="unsubscribed", unsubscribed_at=since)  # left at the boundary: gone
    _subscription(channel, since - second, status="unsubscribed", unsubscribed_at=since + second)  # left this week
    _subscription(channel, since - timedelta(days=9), status="unsubscribed", unsubscribed_at=since - second)  # gone
    _subscription(channel, since + second, status="pending")  # double opt-in not confirmed: nowhere
    two_channels = _subscription(channel, since - timedelta(days=3))  # one person, two channels: counted once
    Subscription.objects.create(
        subscriber=two_channels.subscriber, channel=other, source="keyword", subscribed_at=since + second
    )

    count = subscriber_count_change(since=since)
    assert (count.now, count.then, count.change) == (4, 4, 0)
    # a week's subscribers via the start page's own clock: one day inside, one day outside the window
    _subscription(channel, timezone.now() - timedelta(days=6, hours=23))
    _subscription(channel, timezone.now() - timedelta(days=7, hours=1), status="unsubscribed",
                  unsubscribed_at=timezone.now() - timedelta(days=6, hours=23))  # fmt: skip
    figures = start_page(make_user(roles.EDITOR, username="counting_editor")).subscribers
    assert figures is not None and (figures.now, figures.then, figures.change) == (5, 5, 0)


def test_the_start_page_shows_the_change_with_its_sign(tenant: Tenant, client_a: Client) -> None:
    channel = make_channel(name="Verkehr", keywords=["VERKEHR"])
    for _ in range(3):
        _subscription(channel, timezone.now() - timedelta(days=1))
    html = _signed_in(client_a, make_user(roles.EDITOR, username="sign_editor")).get("/admin/").content.decode()
    assert "+3 people in the last 7 days" in html
    Subscription.objects.update(status="unsubscribed", unsubscribed_at=timezone.now())
    _subscription(channel, timezone.now() - timedelta(days=30), status="unsubscribed", unsubscribed_at=timezone.now())
    html = client_a.get("/admin/").content.decode()
    assert "−1 person in the last 7 days" in html


# --------------------------------------------------------------------------------------------
# Queries, isolation
# --------------------------------------------------------------------------------------------
def _load(n: int, team: dict[str, Any], *, start: int = 0) -> None:
    now = timezone.now()
    for i in range(start, start + n):
        _deliveries(_broadcast(f"Senden {i}", S.SENDING, send_started_at=now), sent=2, failed=1, queued=1)
        _deliveries(_broadcast(f"Gesendet {i}", S.SENT, send_finished_at=now), read=2, failed=1)
        _broadcast(f"Pausiert {i}", S.PAUSED, paused_reason="Bitte prüfen")
        _broadcast(f"Abgelehnt {i}", S.REJECTED, author=team["editor"], rejection_comment="Nein")
        _broadcast(f"Freigabe {i}", S.SUBMITTED, author=team["editor"], submitted_at=now)
        Connection.objects.create(
            provider="telegram", name=f"Bot {i}", public_address=f"@b{i}", external_id=f"x{i}", status="paused"
        )


def _selector_queries(user: User) -> int:
    fresh = User.objects.get(pk=user.pk)  # no permissions cached from an earlier call
    with CaptureQueriesContext(db_connection) as queries:
        start_page(fresh)
    return len(queries.captured_queries)


@pytest.mark.parametrize("role", ["admin", "editor", "approver"])
def test_the_number_of_queries_does_not_grow_with_the_data(team: dict[str, Any], client_a: Client, role: str) -> None:
    _signed_in(client_a, team[role])
    _load(1, team)
    selector_one = _selector_queries(team[role])
    page_one, html = query_count(client_a, "/admin/")
    assert "Senden 0" in html
    _load(19, team, start=1)
    selector_twenty = _selector_queries(team[role])
    page_twenty, html = query_count(client_a, "/admin/")
    assert "Senden 19" in html
    if role != "editor":  # 20 wait for approval; the list shows 10 and says there are more
        assert 'class="start-badge">10+<' in html
    assert selector_one == selector_twenty
    assert selector_twenty <= 12  # permissions (2) and one or two per section
    assert page_one == page_twenty
    assert query_count(client_a, SENDING_URL)[0] < page_one


def test_each_tenant_sees_only_its_own(team: dict[str, Any], client_b: Client, tenant_b: Tenant) -> None:
    _deliveries(_broadcast("Nur in A: Senden", S.SENDING, send_started_at=timezone.now()), sent=1, queued=1)
    _broadcast("Nur in A: Gesendet", S.SENT, send_finished_at=timezone.now())
    submitted(team)
    with in_tenant(tenant_b):
        admin_b = make_user(roles.ADMIN, username="admin_b")
        page = start_page(admin_b)
        assert page.sending == [] and page.latest_sent == [] and page.needs_me.to_approve == []
        _signed_in(client_b, admin_b)
        html = client_b.get("/admin/").content.decode()
        data = client_b.get(SENDING_URL).json()
    assert "Nur in A" not in html and "Feinstaubalarm ab morgen" not in html
    assert data == {"sending": []}


# --------------------------------------------------------------------------------------------
# The live JSON
# --------------------------------------------------------------------------------------------
def test_the_sending_json_needs_a_signed_in_user_with_the_permission(team: dict[str, Any], client_a: Client) -> None:
    from accounts.services import user_create

    response = client_a.get(SENDING_URL)
    assert response.status_code == 302 and "/login/" in response["Location"]
    _signed_in(client_a, user_create(username="no_role", email="nr@example.org", role_names=[]))
    assert client_a.get(SENDING_URL).status_code == 403
    _signed_in(client_a, team["agent"])
    assert client_a.get(SENDING_URL).status_code == 200
    assert client_a.post(SENDING_URL).status_code == 405


def test_the_sending_json_has_the_progress_of_each_sending_broadcast(team: dict[str, Any], client_a: Client) -> None:
    sending = _broadcast("Feinstaub läuft", S.SENDING, send_started_at=timezone.now())
    _deliveries(sending, queued=4, sent=2, delivered=1, read=1, failed=2)
    _broadcast("Schon fertig", S.SENT, send_finished_at=timezone.now())
    _signed_in(client_a, team["editor"])
    response = client_a.get(SENDING_URL)
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "sending": [
            {
                "id": sending.pk,
                "title": "Feinstaub läuft",
                "url": f"/admin/broadcasts/broadcast/{sending.pk}/change/",
                "total": 10,
                "done": 6,
                "percent": 60.0,
                "reached": 2,
                "read": 1,
                "failed": 2,
            }
        ]
    }
    html = client_a.get("/admin/").content.decode()
    # the page's bar has an accessible name and tells the script where to ask
    assert f'aria-labelledby="start-sending-{sending.pk}"' in html and 'value="60.0"' in html
    assert f'data-sending-url="{SENDING_URL}" data-poll="1"' in html
    assert "analytics/start-page.js" in html and "analytics/start-page.css" in html


def test_the_page_does_not_poll_when_nothing_is_sending(team: dict[str, Any], client_a: Client) -> None:
    html = _signed_in(client_a, team["editor"]).get("/admin/").content.decode()
    assert 'data-poll="0"' in html


def test_the_start_page_is_in_german(team: dict[str, Any]) -> None:
    submitted(team)
    client = Client(HTTP_HOST="tenant-a.localhost", HTTP_ACCEPT_LANGUAGE="de")
    html = _signed_in(client, team["approver"]).get("/admin/").content.decode()
    for text in ("Zur Freigabe", "Braucht Sie jetzt", "Wird gerade gesendet", "Abonnierende"):
        assert text in html, text
    assert "Nothing" not in html


# --------------------------------------------------------------------------------------------
# The operator's overview
# --------------------------------------------------------------------------------------------
def _operator() -> User:
    user = User.objects.create_superuser(username="op_start", email="op@platform.example", password="x" * 12)
    enrol_totp(user)
    return user


def test_the_operator_overview_reads_the_rollups(
    public: Any, client_public: Client, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    now = timezone.now()
    TenantRollup.objects.update_or_create(
        tenant=tenant_a,
        defaults={
            "computed_at": now,
            "metrics": {"subscribers_active": 120, "messages_sent_24h": 300, "connections_paused": 1, "users": 3},
        },
    )
    TenantRollup.objects.update_or_create(
        tenant=tenant_b, defaults={"computed_at": now - timedelta(hours=2), "metrics": {"subscribers_active": 0}}
    )
    others = Tenant.objects.exclude(schema_name__in=["public", tenant_a.schema_name, tenant_b.schema_name])
    suspended_before = others.filter(status=Tenant.Status.SUSPENDED).count()
    overview = platform_overview()
    assert overview.figures["subscribers_active"] >= 120 and overview.figures["messages_sent_24h"] >= 300
    assert tenant_a.pk in {row.tenant.pk for row in overview.trouble}
    assert tenant_b.pk in {t.pk for t in overview.stale}  # figures two hours old
    assert tenant_a.pk not in {t.pk for t in overview.stale}
    assert overview.suspended == suspended_before

    Tenant.objects.filter(pk=tenant_b.pk).update(status=Tenant.Status.SUSPENDED)
    after = platform_overview()
    assert after.suspended == suspended_before + 1 and after.active == overview.active - 1
    assert after.setting_up == overview.setting_up - 1  # B had nobody subscribed

    client_public.force_login(_operator())
    with CaptureQueriesContext(db_connection) as queries:
        html = client_public.get("/admin/").content.decode()
    assert 'id="platform-overview"' in html and "Stadt A" in html
    assert 'id="platform-trouble"' in html
    # no query reads a tenant's schema: everything comes from the public roll-ups
    assert not any(tenant_a.schema_name in q["sql"] for q in queries.captured_queries)


def test_tenant_staff_never_see_the_operator_overview(team: dict[str, Any], client_a: Client) -> None:
    html = _signed_in(client_a, team["admin"]).get("/admin/").content.decode()
    assert 'id="platform-overview"' not in html
