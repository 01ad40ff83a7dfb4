"""The operator's per-tenant figures (public admin): from the shared roll-up table only, with the
search_path on public for the whole request; suspended tenants and tenants whose roll-up stopped
keep their last numbers with the time they are from."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.db import connection as db_connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.models import User
from analytics.models import TenantRollup
from analytics.services import tenant_rollup_compute
from analytics.tasks import tenant_rollup_all_task
from core.tenancy import connection
from subscribers.models import Source, Subscriber
from subscribers.services.subscriptions import subscription_start
from tenants.models import Tenant
from tenants.services import tenant_suspend
from tests.channels.factories import make_channel
from tests.conftest import in_tenant
from tests.helpers import enrol_totp

URL = "/admin/analytics/tenantrollup/"


def _operator() -> User:
    user = User.objects.create_superuser(username="op_figures", email="op@figures.example", password="x" * 12)
    enrol_totp(user)
    return user


def _search_paths(paths: list[str]) -> Callable[..., Any]:
    """An execute wrapper that notes the search_path in force for every query of the request."""

    def wrapper(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        with db_connection.connection.cursor() as raw:  # the driver's cursor: not itself wrapped
            raw.execute("SHOW search_path")
            paths.append(raw.fetchone()[0])
        return execute(sql, params, many, context)

    return wrapper


def test_a_tenant_adds_active_channels_and_last_activity(tenant: Tenant) -> None:
    channel = make_channel()
    make_channel("Alt", ["ALT"], is_active=False)
    person = Subscriber.objects.create(name="A")
    subscription_start(subscriber=person, channels=[channel], source=Source.KEYWORD)
    metrics = tenant_rollup_compute()
    assert metrics["channels_active"] == 1
    last = parse_datetime(metrics["last_activity_at"])
    assert last is not None and timezone.now() - last < timedelta(minutes=1)


def test_the_overview_shows_every_tenant_from_public_with_suspended_and_stale_ones(
    public: Any, client_public: Client, tenant_a: Tenant, tenant_b: Tenant, django_capture_on_commit_callbacks: Any
) -> None:
    with in_tenant(tenant_a):
        channel = make_channel()
        people = Subscriber.objects.bulk_create([Subscriber(name=f"P{i}") for i in range(3)])
        for person in people:
            subscription_start(subscriber=person, channels=[channel], source=Source.KEYWORD)
        tenant_rollup_compute()
    with in_tenant(tenant_b):
        tenant_rollup_compute()
    connection.set_schema_to_public()
    b_before = TenantRollup.objects.get(tenant=tenant_b)
    b_before.metrics = {
        **b_before.metrics,
        "subscribers_active": 77,
        "messages_sent_24h": 90,
        "messages_failed_24h": 10,
    }
    b_before.save()
    tenant_suspend(tenant=tenant_b, reason="unpaid", actor=None)
    # the schedule skips the suspended tenant: its figures stay as they were
    with django_capture_on_commit_callbacks(execute=True):
        tenant_rollup_all_task()
    connection.set_schema_to_public()
    assert TenantRollup.objects.get(tenant=tenant_b).computed_at == b_before.computed_at

    client_public.force_login(_operator())
    client_public.get(URL)  # warm the domain cache
    paths: list[str] = []
    with CaptureQueriesContext(db_connection) as queries, db_connection.execute_wrapper(_search_paths(paths)):
        response = client_public.get(URL)
    assert response.status_code == 200
    html = response.content.decode()
    assert paths and set(paths) == {"public"}, set(paths)
    assert not any(t.schema_name in q["sql"] for t in (tenant_a, tenant_b) for q in queries.captured_queries)
    row_a = html.split('id="tenant-test_a"')[1].split("</tr>")[0]
    row_b = html.split('id="tenant-test_b"')[1].split("</tr>")[0]
    assert ">3<" in row_a and "Suspended" not in row_a
    assert "Suspended" in row_b and ">77<" in row_b and ">90<" in row_b and "10.0 %" in row_b
    assert "not current" not in row_b  # suspended: no longer computed, not stale

    # A's roll-up stops (its workers fail): the page keeps its numbers and says from when
    TenantRollup.objects.filter(tenant=tenant_a).update(computed_at=timezone.now() - timedelta(hours=3))
    html = client_public.get(URL).content.decode()
    row_a = html.split('id="tenant-test_a"')[1].split("</tr>")[0]
    assert ">3<" in row_a and "not current" in row_a


def test_every_tenant_comes_in_one_query(public: Any, client_public: Client, tenant_a: Tenant) -> None:
    """However many tenants there are, one query reads them with their figures."""
    client_public.force_login(_operator())
    client_public.get(URL)
    with CaptureQueriesContext(db_connection) as queries:
        html = client_public.get(URL).content.decode()
    assert "Stadt A" in html and "Stadt B" in html
    reading = [q["sql"] for q in queries.captured_queries if 'FROM "tenants_tenant"' in q["sql"]]
    assert len(reading) == 1 and "analytics_tenantrollup" in reading[0]


def test_tenant_staff_cannot_open_the_operator_figures(tenant: Tenant, client_a: Client) -> None:
    from accounts import roles
    from tests.analytics.test_start_page import _signed_in
    from tests.factories import make_user

    admin = make_user(roles.ADMIN, username="chef_fig")
    response = _signed_in(client_a, admin).get(URL)
    assert response.status_code == 404
