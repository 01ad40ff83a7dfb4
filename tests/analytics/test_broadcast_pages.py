"""The figures on a broadcast's page, the comparison of recent broadcasts, and the headline
numbers: who sees them, that they show what the roll-up holds, constant queries, two tenants."""

from __future__ import annotations

import random
import re
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection as dj
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts import roles
from analytics.models import BroadcastStats
from analytics.rollups.broadcasts import broadcast_stats_fold
from analytics.selectors_broadcasts import headline
from broadcasts import services
from broadcasts.models import Broadcast, Delivery, LinkClick
from core.tenancy import connection
from messengers.selectors import connection_sandbox
from subscribers.models import Subscriber
from tenants.models import Tenant
from tests.analytics.broadcast_world import make_world
from tests.channels.factories import make_channel
from tests.conftest import in_tenant
from tests.factories import make_user
from tests.helpers import enrol_totp

RESULTS = "/admin/analytics/broadcasts/"


def _sent(title: str, *, recipients: int, read: int, hours_ago: float = 2) -> Broadcast:
    """A sent broadcast with `recipients` rows, `read` of them read within 5 minutes."""
    sandbox = connection_sandbox()
    assert sandbox is not None
    channel = make_channel(f"Kanal {title}", [f"K{abs(hash(title)) % 10**8}"])
    broadcast = services.broadcast_create(author=None, title=title, channels=[channel], variants={"de": "Text"})
    start = timezone.now() - timedelta(hours=hours_ago)
    Broadcast.objects.filter(pk=broadcast.pk).update(
        status=Broadcast.Status.SENT, send_started_at=start, send_finished_at=start + timedelta(minutes=1)
    )
    people = Subscriber.objects.bulk_create([Subscriber(language="de") for _ in range(recipients)])
    Delivery.objects.bulk_create(
        [
            Delivery(
                broadcast=broadcast,
                subscriber=person,
                connection=sandbox,
                language="de",
                status="read" if i < read else "delivered",
                next_attempt_at=start,
                sent_at=start,
                delivered_at=start + timedelta(minutes=1),
                read_at=start + timedelta(minutes=5) if i < read else None,
            )
            for i, person in enumerate(people)
        ]
    )
    return broadcast


def test_the_broadcast_page_shows_its_figures_and_timeline(tenant: Tenant, client_a: Client) -> None:
    broadcast = _sent("Hitzewarnung", recipients=8, read=2)
    editor = make_user(roles.EDITOR)
    client_a.force_login(editor)
    url = f"/admin/broadcasts/broadcast/{broadcast.pk}/change/"
    assert "The figures appear a few minutes after sending started." in client_a.get(url).content.decode()
    broadcast_stats_fold()
    page = client_a.get(url).content.decode()
    assert 'id="an-recipients">8<' in page
    assert 'id="an-delivered">100.0 %<' in page and 'id="an-read-15">25.0 %<' in page
    assert 'role="img"' in page and "The first 24 hours" in page  # the chart, with its data table
    assert "analytics/figures.css" in page


def test_inbox_agents_see_no_figures(tenant: Tenant, client_a: Client) -> None:
    broadcast = _sent("Baustelle", recipients=3, read=1)
    broadcast_stats_fold()
    agent = make_user(roles.INBOX_AGENT)
    client_a.force_login(agent)
    page = client_a.get(f"/admin/broadcasts/broadcast/{broadcast.pk}/change/").content.decode()
    assert 'id="bc-figures"' not in page
    assert client_a.get(RESULTS).status_code == 403
    assert 'data-nav="broadcast_results"' not in client_a.get("/admin/inbox/").content.decode()


@pytest.mark.parametrize("role", [roles.EDITOR, roles.APPROVER, roles.ADMIN])
def test_who_writes_approves_or_administers_sees_the_comparison(tenant: Tenant, client_a: Client, role: str) -> None:
    _sent("Stadtfest", recipients=4, read=4)
    broadcast_stats_fold()
    user = make_user(role)
    if role in roles.MFA_REQUIRED_ROLES:
        enrol_totp(user)
    client_a.force_login(user)
    page = client_a.get(RESULTS).content.decode()
    assert "Stadtfest" in page and 'data-nav="broadcast_results"' in page
    assert 'id="an-read-15">100.0 %<' in page


def test_the_comparison_takes_the_same_queries_for_1_or_20_broadcasts(
    tenant: Tenant, client_a: Client, django_assert_num_queries: Any
) -> None:
    editor = make_user(roles.EDITOR)
    client_a.force_login(editor)
    _sent("Erste", recipients=2, read=1)
    broadcast_stats_fold()
    client_a.get(RESULTS)  # warm the per-process caches (permissions, tenant)
    with CaptureQueriesContext(dj) as one:
        assert client_a.get(RESULTS).status_code == 200
    for i in range(19):
        _sent(f"Weitere {i}", recipients=2, read=i % 2)
    broadcast_stats_fold()
    with django_assert_num_queries(len(one.captured_queries)):
        page = client_a.get(RESULTS).content.decode()
    assert page.count('#bc-figures"') == 20


def test_the_broadcast_page_takes_the_same_queries_with_or_without_many_broadcasts(
    tenant: Tenant, client_a: Client
) -> None:
    editor = make_user(roles.EDITOR)
    client_a.force_login(editor)
    first = _sent("Eins", recipients=3, read=1)
    broadcast_stats_fold()
    url = f"/admin/broadcasts/broadcast/{first.pk}/change/"
    client_a.get(url)
    with CaptureQueriesContext(dj) as before:
        client_a.get(url)
    for i in range(19):
        _sent(f"Mehr {i}", recipients=3, read=2)
    broadcast_stats_fold()
    with CaptureQueriesContext(dj) as after:
        client_a.get(url)
    assert len(after.captured_queries) == len(before.captured_queries)


def test_tenant_b_sees_none_of_tenant_as_figures(tenant: Tenant, tenant_b: Tenant, client_b: Client) -> None:
    _sent("Nur in A", recipients=3, read=1)
    broadcast_stats_fold()
    with in_tenant(tenant_b):
        broadcast_stats_fold()
        assert not BroadcastStats.objects.exists()
        user = make_user(roles.EDITOR, username="redaktion_b")
        client_b.force_login(user)
        page = client_b.get(RESULTS).content.decode()
        assert "Nur in A" not in page and "No broadcast has been sent yet." in page


def test_headline_numbers_equal_a_brute_force_count(tenant: Tenant) -> None:
    Tenant.objects.filter(pk=tenant.pk).update(link_tracking="per_recipient")
    tenant.refresh_from_db()
    connection.set_tenant(tenant)
    world = make_world(random.Random(21), broadcasts=8, people=30)
    broadcast_stats_fold()
    end = timezone.now()
    start = end - timedelta(days=2)
    figures = headline(start, end)
    for period, (low, high) in ((figures.current, (start, end)), (figures.previous, (start - (end - start), start))):
        chosen = [b for b in world.broadcasts if b.send_started_at and low <= b.send_started_at < high]
        rows = Delivery.objects.filter(broadcast__in=chosen)
        recipients = rows.count()
        delivered = rows.filter(status__in=["delivered", "read"]).count()
        read_15 = sum(
            r.read_at is not None and r.sent_at is not None and r.read_at <= r.sent_at + timedelta(minutes=15)
            for r in rows
        )
        clickers = sum(
            len(set(LinkClick.objects.filter(link__broadcast=b, delivery__isnull=False).values_list("delivery_id")))
            for b in chosen
        )
        assert period.broadcasts == len(chosen)
        assert period.reach_pct == (round(100 * delivered / recipients, 1) if recipients else None)
        assert period.read_15min_pct == (round(100 * read_15 / delivered, 1) if delivered else None)
        assert period.click_rate_pct == (round(100 * clickers / delivered, 1) if delivered else None)
    assert figures.change("reach_pct") == (
        None
        if figures.current.reach_pct is None or figures.previous.reach_pct is None
        else round(figures.current.reach_pct - figures.previous.reach_pct, 1)
    )


def test_hostile_period_parameters_fall_back_to_thirty_days(tenant: Tenant, client_a: Client) -> None:
    client_a.force_login(make_user(roles.EDITOR))
    for value in ("abc", "-1", "99999999999999999999", "7;DROP", "３０"):
        page = client_a.get(RESULTS, {"days": value})
        assert page.status_code == 200
        assert re.search(r'href="\?days=30" aria-current="true"', page.content.decode())
    assert 'href="?days=7" aria-current="true"' in client_a.get(RESULTS, {"days": "7"}).content.decode()


def test_cost_follows_the_connections_price(tenant: Tenant, client_a: Client) -> None:
    sandbox = connection_sandbox()
    assert sandbox is not None
    type(sandbox).objects.filter(pk=sandbox.pk).update(price_per_message=Decimal("0.05"))
    broadcast = _sent("Kosten", recipients=10, read=0)
    broadcast_stats_fold()
    assert BroadcastStats.objects.get(broadcast=broadcast).cost_eur == Decimal("0.50")
