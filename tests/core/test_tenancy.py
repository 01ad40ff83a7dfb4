"""core.tenancy.current_tenant: a tenant's own settings without a query into public, so a
request's or task's statements stay inside its schema (docs/operations.md, "Beyond one
PostgreSQL": Citus places each schema on one node)."""

from __future__ import annotations

import zoneinfo
from typing import Any

from django.db import connection as django_connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import schema_context

from analytics.rollups.channels import channel_days_fold
from analytics.selectors_channels import tenant_today
from core.tenancy import current_tenant
from tenants.models import Tenant


def _public_reads(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if "tenants_tenant" in q["sql"]]


def test_the_tenant_a_request_or_task_set_is_used_as_it_is(tenant: Tenant, django_assert_num_queries: Any) -> None:
    with django_assert_num_queries(0):
        assert current_tenant() is tenant


def test_behind_a_plain_schema_context_the_tenant_is_read_from_public(tenant: Tenant) -> None:
    with schema_context(tenant.schema_name):
        found = current_tenant()
    assert isinstance(found, Tenant)
    assert (found.pk, found.timezone) == (tenant.pk, tenant.timezone)


def test_the_dashboards_day_and_the_channel_fold_take_the_zone_from_the_tenant_in_hand(tenant: Tenant) -> None:
    tenant.timezone = "Pacific/Kiritimati"  # UTC+14: its date differs from UTC's half the day
    with CaptureQueriesContext(django_connection) as queries:
        today = tenant_today()
        channel_days_fold()
    assert today == timezone.now().astimezone(zoneinfo.ZoneInfo("Pacific/Kiritimati")).date()
    assert _public_reads(queries) == []
