"""The channel figures pages (tenant admin): numbers as the roll-up has them, the best channel,
queries that do not grow with channels or days, tenants apart, roles, hostile input."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from analytics.rollups.channels import channel_days_fold
from analytics.selectors_channels import (
    ChannelEngagement,
    best_channel_by_engagement,
    best_channel_by_subscribers,
    channel_periods,
    period_for,
    tenant_today,
)
from channels.models import Channel
from messengers.models import Connection
from subscribers.models import ConsentEvent, Subscriber
from tenants.models import Tenant
from tests.analytics.test_start_page import _signed_in
from tests.channels.factories import make_channel
from tests.conftest import in_tenant
from tests.helpers import query_count
from tests.subscribers.factories import sandbox

URL = "/admin/analytics/channels/"


def _days_ago(days: int) -> datetime:
    return timezone.now().replace(hour=12, minute=0) - timedelta(days=days)


def _ledger(channel: Channel, person: Subscriber, kind: str, days_ago: int, **fields: Any) -> None:
    fields.setdefault("source", "keyword")
    ConsentEvent.objects.create(subscriber=person, channel=channel, kind=kind, at=_days_ago(days_ago), **fields)


@pytest.fixture
def figures(team: dict[str, Any]) -> dict[str, Any]:
    """Dust: 4 joined long ago, 2 of them leave inside the last 30 days, 3 join inside them
    (2 through poster HBF1 on Telegram). Traffic: 10 joined long ago."""
    dust, traffic = team["channel"], team["other"]
    telegram = Connection.objects.create(provider="telegram", name="Bot", public_address="@fig_bot")
    people = Subscriber.objects.bulk_create([Subscriber(name=f"F{i}") for i in range(17)])
    for person in people[:4]:
        _ledger(dust, person, "opt_in", 100, connection=sandbox())
    for person in people[:2]:
        _ledger(dust, person, "opt_out", 10)
    for person in people[4:6]:
        _ledger(dust, person, "opt_in", 5, source="qr", source_detail="HBF1", connection=telegram)
    _ledger(dust, people[6], "opt_in", 3, source="import")
    for person in people[7:17]:
        _ledger(traffic, person, "opt_in", 200, source="web_form")
    channel_days_fold()
    return {**team, "dust": dust, "traffic": traffic}


def test_the_overview_lists_every_channel_with_its_period_and_the_best_channel(
    figures: dict[str, Any], client_a: Client
) -> None:
    html = _signed_in(client_a, figures["editor"]).get(URL).content.decode()
    assert 'id="best-channel-name"' in html and "Verkehr" in html
    start, end = period_for(30, today=tenant_today())
    dust, traffic = channel_periods(start=start, end=end, channels=[figures["dust"], figures["traffic"]])
    assert (dust.subscribers_start, dust.joins, dust.leaves, dust.subscribers_end) == (4, 3, 2, 5)
    assert dust.churn_percent == 50.0
    assert (traffic.subscribers_start, traffic.subscribers_end, traffic.churn_percent) == (10, 10, 0.0)
    assert best_channel_by_subscribers([dust, traffic]) is traffic
    assert ">50.0 %<" in html.replace("50,0", "50.0")


def test_one_channels_page_shows_sources_posters_messengers_and_every_day(
    figures: dict[str, Any], client_a: Client
) -> None:
    client = _signed_in(client_a, figures["editor"])
    html = client.get(f"{URL}{figures['dust'].pk}/").content.decode()
    assert 'id="subscribers-start">4<' in html and 'id="subscribers-end">5<' in html
    assert 'id="joins">3<' in html and 'id="leaves">2<' in html
    assert "QR poster" in html and "HBF1" in html and "Import" in html
    # the messengers of the five subscribed at the end: 2 sandbox, 2 Telegram, 1 without
    start, end = period_for(30, today=tenant_today())
    (period,) = channel_periods(start=start, end=end, channels=[figures["dust"]], detail=True)
    assert period.messengers_end == {"sandbox": 2, "telegram": 2, "": 1}
    assert period.joins_by_poster == {"HBF1": 2} and period.joins_by_source == {"qr": 2, "import": 1}
    assert len(period.days) == 30 and period.days[-1].subscribers == 5
    assert [d.leaves for d in period.days if d.leaves] == [2]
    assert html.count('<tr><th scope="row">') >= 30
    # a year: the channel's start 100 days ago is inside, so it starts from nobody
    (year,) = channel_periods(start=end - timedelta(days=364), end=end, channels=[figures["dust"]])
    assert (year.subscribers_start, year.joins, year.churn_percent) == (0, 7, None)
    assert 'id="churn">–<' in client.get(f"{URL}{figures['dust'].pk}/?days=365").content.decode()


def test_the_channels_admin_page_links_to_its_figures(figures: dict[str, Any], client_a: Client) -> None:
    html = _signed_in(client_a, figures["editor"]).get(f"/admin/channels/channel/{figures['dust'].pk}/change/").content
    assert f'href="{URL}{figures["dust"].pk}/"'.encode() in html


def test_queries_do_not_grow_with_channels(figures: dict[str, Any], client_a: Client) -> None:
    client = _signed_in(client_a, figures["editor"])
    few, _ = query_count(client, URL)
    for i in range(20):
        channel = make_channel(f"Mehr {i}", [f"MEHR{i}"])
        _ledger(channel, Subscriber.objects.create(name=f"M{i}"), "opt_in", 2)
    channel_days_fold()
    many, html = query_count(client, URL)
    assert "Mehr 19" in html
    assert many == few


def test_queries_do_not_grow_with_days(figures: dict[str, Any], client_a: Client) -> None:
    client = _signed_in(client_a, figures["editor"])
    dust = figures["dust"]
    url = f"{URL}{dust.pk}/?days=7"
    one, _ = query_count(client, url)
    person = Subscriber.objects.create(name="Täglich")
    for day in range(365):  # someone joins or leaves every day of the year
        _ledger(dust, person, "opt_in" if day % 2 else "opt_out", day)
    channel_days_fold()
    year, html = query_count(client, f"{URL}{dust.pk}/?days=365")
    assert html.count('<tr><th scope="row">') >= 365
    assert year == one


def test_inbox_agents_may_not_see_channel_figures(figures: dict[str, Any], client_a: Client) -> None:
    agent = _signed_in(client_a, figures["agent"])
    assert agent.get(URL).status_code == 403
    assert agent.get(f"{URL}{figures['dust'].pk}/").status_code == 403
    for role in ("editor", "approver", "admin"):
        client = _signed_in(Client(HTTP_HOST="tenant-a.localhost", HTTP_ACCEPT_LANGUAGE="en"), figures[role])
        assert client.get(URL).status_code == 200, role
        assert URL.encode() in client.get("/admin/").content, role  # in the navigation


def test_another_tenants_staff_see_only_their_own_channels(
    figures: dict[str, Any], tenant_b: Tenant, client_b: Client
) -> None:
    dust_pk = figures["dust"].pk
    with in_tenant(tenant_b):
        from accounts import roles
        from tests.factories import make_user

        editor_b = make_user(roles.EDITOR, username="editor_b")
        own = make_channel("Nur B", ["NURB"])
        channel_days_fold()
        client = _signed_in(client_b, editor_b)
    html = client.get(URL).content.decode()
    assert "Nur B" in html and "Feinstaub" not in html and "Verkehr" not in html
    # ids are per schema: A's channel id is B's channel or nothing, never A's channel
    response = client.get(f"{URL}{dust_pk}/")
    assert response.status_code == (200 if dust_pk == own.pk else 404)
    assert b"Feinstaub" not in response.content


@pytest.mark.parametrize("query", ["?days=abc", "?days=100000", "?days=-1", "?days=%00", "?days=7&days=30"])
def test_hostile_periods_fall_back_to_the_default(figures: dict[str, Any], client_a: Client, query: str) -> None:
    response = _signed_in(client_a, figures["editor"]).get(f"{URL}{figures['dust'].pk}/{query}")
    assert response.status_code in (200, 400)
    if response.status_code == 200:
        assert response.content.decode().count('<tr><th scope="row">') >= 30


def test_unknown_channels_are_not_found(figures: dict[str, Any], client_a: Client) -> None:
    client = _signed_in(client_a, figures["editor"])
    assert client.get(f"{URL}999999999/").status_code == 404
    assert client.get(f"{URL}99999999999999999999999/").status_code == 404


def test_best_channel_by_engagement_needs_enough_recipients(tenant: Tenant) -> None:
    a, b, c = (make_channel(n, [n.upper()]) for n in ("Eins", "Zwei", "Drei"))
    ranked = [
        ChannelEngagement(channel=a, recipients=1000, engaged=400),
        ChannelEngagement(channel=b, recipients=10, engaged=10),  # too few to count
        ChannelEngagement(channel=c, recipients=2000, engaged=800),  # as good as a, and bigger
    ]
    best = best_channel_by_engagement(ranked)
    assert best is not None and best.channel == c and best.percent == 40.0
    assert best_channel_by_engagement(ranked[:2], min_recipients=5) == ranked[1]
    assert best_channel_by_engagement([ChannelEngagement(channel=a, recipients=500, engaged=0)]) is None


def test_the_pages_speak_german(figures: dict[str, Any]) -> None:
    from tests.core.german_text import english_lines, visible_text

    client = _signed_in(Client(HTTP_HOST="tenant-a.localhost", HTTP_ACCEPT_LANGUAGE="de"), figures["editor"])
    for url in (URL, f"{URL}{figures['dust'].pk}/", f"{URL}{figures['dust'].pk}/?days=365"):
        response = client.get(url)
        assert response.get("Content-Language") == "de"
        html = response.content.decode()
        assert english_lines(visible_text(html), allowed=frozenset({"HBF1"})) == [], url
    assert "Abwanderungsrate" in html and "QR-Plakat" in html


@pytest.mark.parametrize("days", [7, 30, 90, 365])
def test_the_list_and_the_detail_count_the_same(figures: dict[str, Any], days: int) -> None:
    start, end = period_for(days, today=tenant_today())
    channels = [figures["dust"], figures["traffic"]]
    summary = channel_periods(start=start, end=end, channels=channels)
    detail = channel_periods(start=start, end=end, channels=channels, detail=True)
    for short, full in zip(summary, detail, strict=True):
        assert (short.subscribers_start, short.joins, short.leaves, short.subscribers_end) == (
            full.subscribers_start, full.joins, full.leaves, full.subscribers_end
        )  # fmt: skip
        assert full.subscribers_end == full.subscribers_start + full.joins - full.leaves
        assert full.days[-1].subscribers == full.subscribers_end
