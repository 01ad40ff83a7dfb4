"""Figures through the API (scope analytics:read): the headline numbers equal the admin's
selector and page, a broadcast's stats equal its roll-up, roles (no inbox agents), German and
English errors, and two tenants."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts import roles
from analytics.rollups.broadcasts import broadcast_stats_fold
from analytics.rollups.channels import channel_days_fold
from analytics.selectors_broadcasts import headline
from broadcasts.models import Broadcast
from subscribers.models import Source, Subscriber
from subscribers.services.subscriptions import subscription_start
from tenants.models import Tenant
from tests.analytics.test_broadcast_pages import _sent
from tests.api.support import DOMAIN_B, api_client, assert_error, make_key
from tests.channels.factories import make_channel
from tests.conftest import in_tenant
from tests.factories import make_user
from tests.helpers import enrol_totp

HEADLINE = "/api/v1/analytics/headline/"


def _admin_key(scopes: list[str] | None = None) -> str:
    admin = make_user(roles.ADMIN)
    enrol_totp(admin)
    return make_key(scopes or ["analytics:read"], user=admin)[1]


def test_the_headline_equals_the_selector_with_the_previous_period_and_best_channel(tenant: Tenant) -> None:
    _sent("Jetzt", recipients=8, read=2, hours_ago=2)
    _sent("Vorher", recipients=4, read=4, hours_ago=24 * 40)
    _sent("Zu alt", recipients=5, read=5, hours_ago=24 * 70)
    big = make_channel("Groß", ["GROSS"])
    people = Subscriber.objects.bulk_create([Subscriber(name=f"P{i}") for i in range(3)])
    for person in people:
        subscription_start(subscriber=person, channels=[big], source=Source.KEYWORD)
    broadcast_stats_fold()
    channel_days_fold()
    body = api_client(_admin_key()).get(HEADLINE, {"days": 30}).json()
    assert body["days"] == 30
    now = timezone.now()
    expected = headline(now - timedelta(days=30), now)
    assert body["current"]["broadcasts"] == 1 and body["previous"]["broadcasts"] == 1
    assert body["current"]["read_15min_pct"] == expected.current.read_15min_pct == 25.0
    assert body["previous"]["read_15min_pct"] == expected.previous.read_15min_pct == 100.0
    assert body["current"]["reach_pct"] == 100.0 and body["current"]["recipients"] == 8
    assert body["best_channel"] == {"id": big.pk, "name": "Groß", "subscribers": 3}
    # a longer period takes in the older broadcasts
    year = api_client(_admin_key()).get(HEADLINE, {"days": 90}).json()
    assert year["current"]["broadcasts"] == 3


@pytest.mark.parametrize("days", ["0", "31", "-30", "abc", "1e9", "30;drop"])
def test_hostile_periods_are_invalid_in_german_and_english(tenant: Tenant, days: str) -> None:
    secret = _admin_key()
    error = assert_error(api_client(secret).get(HEADLINE, {"days": days}), 400, "invalid")
    assert "days" in error["fields"]
    german = assert_error(api_client(secret, language="de").get(HEADLINE, {"days": days}), 400, "invalid")
    assert german["message"] != error["message"]


def test_a_broadcasts_stats_equal_its_roll_up(tenant: Tenant) -> None:
    broadcast = _sent("Hitzewarnung", recipients=8, read=2)
    client = api_client(_admin_key())
    url = f"/api/v1/broadcasts/{broadcast.pk}/stats/"
    # before the first roll-up: not found, in both languages
    english = assert_error(client.get(url), 404, "not_found")["message"]
    assert english == "No figures yet: they appear a few minutes after sending started."
    german = assert_error(api_client(_admin_key(), language="de").get(url), 404, "not_found")["message"]
    assert german.startswith("Noch keine Zahlen")
    broadcast_stats_fold()
    body = client.get(url).json()
    assert (body["recipients"], body["delivered"], body["read"], body["read_15min"]) == (8, 8, 2, 2)
    assert body["read_15min_pct"] == 25.0 and body["delivered_pct"] == 100.0
    assert body["people_who_clicked"] is None or isinstance(body["people_who_clicked"], int)
    assert_error(client.get("/api/v1/broadcasts/999999/stats/"), 404, "not_found")


def test_aggregate_only_tenants_get_no_per_person_clicks(tenant: Tenant) -> None:
    Tenant.objects.filter(pk=tenant.pk).update(link_tracking=Tenant.LinkTracking.AGGREGATE)
    broadcast = _sent("Aggregiert", recipients=3, read=1)
    broadcast_stats_fold()
    body = api_client(_admin_key()).get(f"/api/v1/broadcasts/{broadcast.pk}/stats/").json()
    assert body["people_who_clicked"] is None


def test_inbox_agents_get_no_figures_whatever_the_scope(tenant: Tenant) -> None:
    broadcast = _sent("Baustelle", recipients=3, read=1)
    broadcast_stats_fold()
    _, secret = make_key(["analytics:read", "broadcasts:read"], role=roles.INBOX_AGENT)
    client = api_client(secret)
    assert_error(client.get(HEADLINE), 403, "permission_denied")
    assert_error(client.get(f"/api/v1/broadcasts/{broadcast.pk}/stats/"), 403, "permission_denied")
    # an editor's key without the scope is refused too
    _, editor = make_key(["broadcasts:read"], role=roles.EDITOR)
    assert_error(api_client(editor).get(HEADLINE), 403)


def test_tenant_b_sees_none_of_tenant_as_figures(tenant: Tenant, tenant_b: Tenant) -> None:
    broadcast = _sent("Nur in A", recipients=5, read=5)
    broadcast_stats_fold()
    with in_tenant(tenant_b):
        admin = make_user(roles.ADMIN, username="chef_b")
        enrol_totp(admin)
        _, secret = make_key(["analytics:read"], user=admin)
    client = api_client(secret, domain=DOMAIN_B)
    body = client.get(HEADLINE).json()
    assert body["current"]["broadcasts"] == 0 and body["best_channel"] is None
    assert_error(client.get(f"/api/v1/broadcasts/{broadcast.pk}/stats/"), 404)
    # tenant A's key does not open tenant B's domain
    with in_tenant(tenant):
        assert Broadcast.objects.filter(pk=broadcast.pk).exists()  # it exists, in A only
        a_secret = _admin_key()
    assert_error(api_client(a_secret, domain=DOMAIN_B).get(HEADLINE), 401)
