"""The tenant dashboard at the top of the start page (issue 12, item 4): the four headline
numbers of a period with the change to the previous one, the charts, the best channel by
engagement (also on the channel figures page); roles, tenants apart, constant queries,
hostile ?days=."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from accounts import roles
from analytics.models import BroadcastStats
from analytics.rollups.channels import channel_days_fold
from analytics.selectors import start_page
from analytics.selectors_broadcasts import headline
from analytics.selectors_channels import best_channel_by_subscribers, channel_periods, period_for, tenant_today
from analytics.selectors_dashboard import channel_engagements, dashboard
from broadcasts.models import Broadcast
from channels.models import Channel
from subscribers.models import ConsentEvent, Subscriber
from tenants.models import Tenant
from tests.analytics.test_start_page import _signed_in
from tests.channels.factories import make_channel
from tests.conftest import in_tenant
from tests.factories import make_user
from tests.helpers import query_count

CHANNELS_URL = "/admin/analytics/channels/"


def _stats(title: str, channels: list[Channel], *, days_ago: float, **counts: Any) -> Broadcast:
    """A sent broadcast with its roll-up row as the roll-up would have written it (the roll-up's
    numbers are tested against deliveries in test_broadcast_stats)."""
    started = timezone.now() - timedelta(days=days_ago)
    broadcast = Broadcast.objects.create(
        title=title, status=Broadcast.Status.SENT, send_started_at=started, send_finished_at=started
    )
    broadcast.channels.set(channels)
    counts.setdefault("sent", counts.get("recipients", 0))
    BroadcastStats.objects.create(broadcast=broadcast, computed_at=timezone.now(), **counts)
    return broadcast


def _joined(channel: Channel, n: int, *, days_ago: int) -> None:
    at = timezone.now().replace(hour=12, minute=0) - timedelta(days=days_ago)
    for person in Subscriber.objects.bulk_create([Subscriber(name=f"P{i}") for i in range(n)]):
        ConsentEvent.objects.create(subscriber=person, channel=channel, kind="opt_in", at=at, source="keyword")


def _figure(html: str, key: str) -> str:
    match = re.search(rf'id="{key}">([^<]*)<', html)
    assert match, key
    return match.group(1).strip()


def test_engagement_counts_a_broadcast_for_each_of_its_channels_and_one_to_all_for_every_channel(
    team: dict[str, Any],
) -> None:
    a, b = team["channel"], team["other"]
    c = make_channel("Baustellen", ["BAU"])
    _stats("Zwei Kanäle", [a, b], days_ago=1, recipients=100, delivered=90, read=40, unique_clicks=10, clicks=12)
    # aggregate-only clicks: more clicks than reads (Telegram sends no read receipts)
    _stats("Nur A", [a], days_ago=2, recipients=60, delivered=60, read=5, clicks=20, unique_clicks=None)
    _stats("An alle", [], days_ago=3, recipients=10, delivered=10, read=1, unique_clicks=3, clicks=3)
    _stats("Zu alt", [a, b, c], days_ago=40, recipients=999, delivered=999, read=999, unique_clicks=0)
    now = timezone.now()
    found = {
        e.channel.pk: (e.recipients, e.engaged) for e in channel_engagements(start=now - timedelta(days=30), end=now)
    }
    assert found == {a.pk: (170, 63), b.pk: (110, 43), c.pk: (10, 3)}
    board = dashboard(team["admin"], days=30)
    assert board is not None and board.best_engagement is not None
    assert board.best_engagement.channel == b  # 43/110 beats 63/170; C has too few recipients


def test_the_four_numbers_show_what_the_roll_ups_hold_with_the_change(team: dict[str, Any], client_a: Client) -> None:
    _stats("Diese Woche", [team["channel"]], days_ago=2, recipients=100, delivered=80, read=50, read_15min=40,
           unique_clicks=8, clicks=9)  # fmt: skip
    _stats("Letzte Woche", [team["other"]], days_ago=10, recipients=100, delivered=50, read=20, read_15min=10,
           unique_clicks=5, clicks=5)  # fmt: skip
    _joined(team["other"], 3, days_ago=20)
    _joined(team["other"], 1, days_ago=2)
    _joined(team["channel"], 2, days_ago=2)
    channel_days_fold()
    html = _signed_in(client_a, team["admin"]).get("/admin/?days=7").content.decode()
    now = timezone.now()
    figures = headline(now - timedelta(days=7), now)
    assert (figures.current.reach_pct, figures.current.read_15min_pct, figures.current.click_rate_pct) == (
        80.0,
        50.0,
        10.0,
    )
    assert _figure(html, "dash-reach") == "80.0 %"
    assert _figure(html, "dash-read-15") == "50.0 %"
    assert _figure(html, "dash-click-rate") == "10.0 %"
    assert "previous period: 50.0 % (+30.0 pp)" in html
    start, end = period_for(7, today=tenant_today())
    best = best_channel_by_subscribers(channel_periods(start=start, end=end))
    assert best is not None and best.channel == team["other"] and best.subscribers_end == 4
    assert _figure(html, "dash-best-channel") == "4"
    assert "previous period: 3 (+1)" in html
    assert f'/admin/analytics/channels/{best.channel.pk}/?days=7"' in html
    assert html.count('/admin/analytics/broadcasts/?days=7"') >= 3
    assert 'id="dash-subscribers"' in html and 'id="dash-broadcasts"' in html  # the two charts
    assert html.count("<table") >= 2  # each chart has its data table
    assert '<dl class="an-headline"' in html
    assert 'aria-current="true" class="an-current">last 7 days' in html


@pytest.mark.parametrize("role", ["admin", "editor", "approver"])
def test_who_may_see_analytics_sees_the_dashboard(team: dict[str, Any], client_a: Client, role: str) -> None:
    html = _signed_in(client_a, team[role]).get("/admin/").content.decode()
    assert 'id="dashboard"' in html and 'id="start-needs-me"' in html


def test_an_inbox_agent_sees_no_figures_and_the_rest_of_the_start_page(team: dict[str, Any], client_a: Client) -> None:
    _stats("Geheim", [team["channel"]], days_ago=1, recipients=100, delivered=80, read=50, unique_clicks=1)
    assert dashboard(team["agent"], days=30) is None
    # agents land on the inbox (core.admin_sites); followed, no page on the way shows figures
    html = _signed_in(client_a, team["agent"]).get("/admin/", follow=True).content.decode()
    assert 'id="dashboard"' not in html and "dash-reach" not in html and "Geheim" not in html
    page = start_page(team["agent"])  # the rest of the start page is theirs as before
    assert page.needs_me is not None


@pytest.mark.parametrize("days", ["abc", "-7", "0", "365", "1" * 40, "7%00", "7.5", "", "30;DROP TABLE x"])
def test_a_hostile_period_shows_the_default(team: dict[str, Any], client_a: Client, days: str) -> None:
    response = _signed_in(client_a, team["admin"]).get(f"/admin/?days={days}")
    if "%00" in days:  # Django refuses a NUL in the query string before any view runs
        assert response.status_code == 400
        return
    assert response.status_code == 200
    assert 'aria-current="true" class="an-current">last 30 days' in response.content.decode()


def _load(n: int, *, start: int = 0) -> None:
    for i in range(start, start + n):
        channel = make_channel(f"Kanal {i}", [f"KANAL{i}"])
        _stats(f"Rundschreiben {i}", [channel], days_ago=3 - i / 10, recipients=100, delivered=90, read=60,
               unique_clicks=20, clicks=25)  # fmt: skip
    channel_days_fold()


@pytest.mark.parametrize("url", ["/admin/", CHANNELS_URL])
def test_the_number_of_queries_does_not_grow_with_broadcasts_and_channels(
    team: dict[str, Any], client_a: Client, url: str
) -> None:
    _signed_in(client_a, team["admin"])
    _load(1)
    one, html = query_count(client_a, url)
    assert "Rundschreiben 0" in html or "Kanal 0" in html
    _load(19, start=1)
    twenty, html = query_count(client_a, url)
    assert "Rundschreiben 19" in html or "Kanal 19" in html
    assert one == twenty


def test_each_tenant_sees_only_its_own_figures(team: dict[str, Any], client_b: Client, tenant_b: Tenant) -> None:
    _stats("Nur in A", [team["channel"]], days_ago=1, recipients=100, delivered=80, read=50, read_15min=40,
           unique_clicks=8)  # fmt: skip
    channel_days_fold()
    with in_tenant(tenant_b):
        admin_b = make_user(roles.ADMIN, username="admin_b")
        board = dashboard(admin_b, days=30)
        assert board is not None
        assert board.headline.current.broadcasts == 0 and board.recent == [] and board.best_channel is None
        html = _signed_in(client_b, admin_b).get("/admin/").content.decode()
        channels_html = client_b.get(CHANNELS_URL).content.decode()
    assert _figure(html, "dash-reach") == "–"
    assert "Nur in A" not in html and "Feinstaub" not in channels_html and "Verkehr" not in channels_html


def test_the_channel_figures_page_names_the_best_channel_by_engagement(team: dict[str, Any], client_a: Client) -> None:
    _stats("Beide", [team["channel"], team["other"]], days_ago=1, recipients=100, delivered=90, read=30,
           unique_clicks=5)  # fmt: skip
    _stats("Verkehr", [team["other"]], days_ago=1, recipients=100, delivered=90, read=70, unique_clicks=5)
    html = _signed_in(client_a, team["editor"]).get(CHANNELS_URL).content.decode()
    assert _figure(html, "best-engagement-name") == "Verkehr"
    assert _figure(html, "best-engagement-percent") == "50.0 %"  # (30 + 70) / 200
    assert "30.0 % <small>(30/100)</small>" in html  # Feinstaub's row
