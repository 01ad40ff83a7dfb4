"""Issue 12, items 2 and 4 in Chromium: an editor lands on the dashboard (the four headline
numbers equal what the database says), opens a sent broadcast's page and the comparison of
recent broadcasts, in German; the figures equal the database, the timeline and comparison charts
are drawn (SVG with role=img and their data tables), and axe finds nothing serious."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from accounts import roles
from analytics.rollups.broadcasts import broadcast_stats_fold
from analytics.rollups.channels import channel_days_fold
from broadcasts import services
from broadcasts.models import Broadcast, Delivery, LinkClick
from channels.models import Channel
from messengers.selectors import connection_sandbox
from subscribers.models import ConsentEvent, Subscriber
from tenants.models import Tenant
from tests.browser.a11y import assert_accessible
from tests.channels.factories import make_channel
from tests.conftest import LiveServer, in_tenant
from tests.factories import PASSWORD, make_user

pytestmark = pytest.mark.browser


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %".replace(".", ",") if whole else "–"


def _headline_from_the_database(channel: Channel) -> dict[str, str]:
    """The four numbers counted from the raw rows (not the roll-ups) for the last 30 days."""
    since = timezone.now() - timedelta(days=30)
    rows = Delivery.objects.filter(broadcast__send_started_at__gte=since)
    delivered = rows.filter(status__in=["delivered", "read"]).count()
    read_15 = 0
    for sent, read in rows.exclude(read_at=None).values_list("sent_at", "read_at"):
        assert sent is not None and read is not None
        read_15 += read - sent <= timedelta(minutes=15)
    clickers = LinkClick.objects.filter(delivery__in=rows).values("delivery__subscriber").distinct().count()
    joined = set(ConsentEvent.objects.filter(channel=channel, kind="opt_in").values_list("subscriber", flat=True))
    left = set(ConsentEvent.objects.filter(channel=channel, kind="opt_out").values_list("subscriber", flat=True))
    return {
        "dash-reach": _percent(delivered, rows.count()),
        "dash-read-15": _percent(read_15, delivered),
        "dash-click-rate": _percent(clickers, delivered),
        "dash-best-channel": str(len(joined - left)),
    }


def test_an_editor_reads_a_broadcasts_figures_and_charts(
    browser: Any, live_server_multitenant: LiveServer, committed_tenant: Callable[..., Tenant]
) -> None:
    tenant = committed_tenant("Stadt Auswertung")
    with in_tenant(tenant):
        sandbox = connection_sandbox()
        assert sandbox is not None
        channel = make_channel("Verkehr", ["VERKEHR"], connections=[sandbox])
        make_user(roles.EDITOR, username="redaktion")
        broadcast = services.broadcast_create(
            author=None, title="Umleitung U3", channels=[channel], variants={"de": "Ab Montag gesperrt."}
        )
        start = timezone.now() - timedelta(hours=3)
        Broadcast.objects.filter(pk=broadcast.pk).update(
            status=Broadcast.Status.SENT, send_started_at=start, send_finished_at=start + timedelta(minutes=2)
        )
        people = Subscriber.objects.bulk_create([Subscriber(language="de") for _ in range(8)])
        Delivery.objects.bulk_create(
            [
                Delivery(
                    broadcast=broadcast,
                    subscriber=person,
                    connection=sandbox,
                    language="de",
                    status="read" if i < 3 else ("delivered" if i < 6 else "failed"),
                    error_kind="" if i < 6 else "blocked",
                    next_attempt_at=start,
                    sent_at=start,
                    delivered_at=start + timedelta(minutes=1) if i < 6 else None,
                    read_at=start + timedelta(minutes=[4, 10, 50][i]) if i < 3 else None,
                )
                for i, person in enumerate(people)
            ]
        )
        for person in people:  # they joined the channel five days ago
            ConsentEvent.objects.create(
                subscriber=person, channel=channel, kind="opt_in", source="keyword", at=start - timedelta(days=5)
            )
        broadcast_stats_fold()
        channel_days_fold(full=True)
        expected = _headline_from_the_database(channel)
        domain = tenant.domains.get(is_primary=True).domain
    server = live_server_multitenant

    page = browser.new_context(locale="de-DE").new_page()
    page.goto(server.url(domain, "/accounts/login/?next=/admin/"))
    page.fill("input[name=login]", "redaktion")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/admin/"))
    dashboard = page.locator("#dashboard")  # the start page: the last 30 days
    assert dashboard.is_visible()
    for key, value in expected.items():
        assert page.inner_text(f"#{key}") == value, key
    assert dashboard.locator("svg[role=img]").count() == 2  # subscribers over time, recent broadcasts
    assert_accessible(page, "the start page with the dashboard")

    page.goto(server.url(domain, f"/admin/broadcasts/broadcast/{broadcast.pk}/change/"))
    section = page.locator("#bc-figures")
    assert section.locator("h2").inner_text() == "Ergebnisse"
    # 8 recipients, 8 sent, 6 delivered (75 %), 3 read (50 % of delivered), 2 within 15 minutes
    assert page.inner_text("#an-recipients") == "8"
    assert page.inner_text("#an-delivered") == "75,0 %"
    assert page.inner_text("#an-read") == "50,0 %"
    assert page.inner_text("#an-read-15") == "33,3 %"
    chart = section.locator("svg[role=img]")
    assert chart.count() == 1 and chart.is_visible()
    assert "Die ersten 24 Stunden" in section.inner_text()
    assert "Von der Person blockiert" in page.inner_text("#an-failures")
    assert_accessible(page, "a sent broadcast's page with its figures")

    page.click('[data-nav="broadcast_results"]')
    page.wait_for_url(re.compile(r"/admin/analytics/broadcasts/"))
    assert "Umleitung U3" in page.inner_text("#an-comparison")
    assert page.inner_text("#an-read-15") == "33,3 %"
    assert page.locator("svg[role=img]").count() == 1
    assert_accessible(page, "comparison of recent broadcasts")
