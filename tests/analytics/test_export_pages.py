"""Every analytics page offers its tables as CSV and XLSX (analytics.export_tables): each export
parses back to the numbers on the page, is audit-logged (the operator's in the public schema's
log), escapes formulas, is refused to those who may not see the page, holds only the tenant's own
data, and no page ever offers a table of per-person clicks."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import pytest
from django.test import Client
from openpyxl import load_workbook

from accounts import roles
from accounts.models import AuditEvent, User
from analytics.models import TenantRollup
from analytics.rollups.broadcasts import broadcast_stats_fold
from analytics.services import tenant_rollup_compute
from broadcasts.models import Broadcast, LinkClick
from core.tenancy import connection
from tenants.models import Tenant
from tests.analytics.test_broadcast_pages import RESULTS, _sent
from tests.analytics.test_channel_pages import URL as CHANNELS
from tests.analytics.test_channel_pages import figures  # noqa: F401 - the fixture
from tests.analytics.test_start_page import _signed_in
from tests.conftest import in_tenant
from tests.factories import make_user
from tests.helpers import enrol_totp

OPERATOR = "/admin/analytics/tenantrollup/"


def _rows(response: Any) -> list[list[Any]]:
    """The exported table, read back from whichever format it came in (header row first)."""
    assert response.status_code == 200, response.content[:300]
    if response["Content-Type"].startswith("text/csv"):
        assert response["Content-Disposition"].startswith("attachment")
        return list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"), newline="")))
    sheet = load_workbook(io.BytesIO(response.content)).active
    assert sheet is not None
    return [["" if v is None else str(v) for v in row] for row in sheet.iter_rows(values_only=True)]


def _by_first(rows: list[list[Any]]) -> dict[str, list[str]]:
    return {str(row[0]): [str(v) for v in row[1:]] for row in rows[1:]}


def _exports(action_count_before: int) -> list[AuditEvent]:
    events = list(AuditEvent.objects.filter(action="analytics.exported").order_by("pk"))
    return events[action_count_before:]


@pytest.mark.parametrize("file_format", ["csv", "xlsx"])
def test_the_comparison_exports_its_numbers(tenant: Tenant, client_a: Client, file_format: str) -> None:
    _sent('=HYPERLINK("http://evil")', recipients=8, read=2)
    _sent("Stadtfest", recipients=4, read=4)
    broadcast_stats_fold()
    editor = make_user(roles.EDITOR)
    client_a.force_login(editor)
    page = client_a.get(RESULTS).content.decode()
    assert "format=csv&amp;table=broadcasts" in page and "format=xlsx&amp;table=headline" in page
    rows = _by_first(_rows(client_a.get(RESULTS, {"format": file_format, "table": "broadcasts"})))
    # the title typed by a person is no formula; the numbers are the page's
    assert set(rows) == {'\'=HYPERLINK("http://evil")', "Stadtfest"}
    evil = rows['\'=HYPERLINK("http://evil")']
    assert evil[1] == "8" and float(evil[2]) == 100.0 and float(evil[4]) == 25.0
    assert float(rows["Stadtfest"][4]) == 100.0
    headline = _by_first(_rows(client_a.get(RESULTS, {"format": file_format, "table": "headline"})))
    assert float(headline["Read within 15 minutes (%)"][0]) == 50.0 and headline["Broadcasts"][0] == "2"
    assert 'id="an-read-15">50.0 %<' in page
    chart = _rows(client_a.get(RESULTS, {"format": file_format, "table": "bc-comparison"}))
    assert len(chart) == 3
    events = _exports(0)
    assert [(e.actor, e.details["table"], e.details["format"]) for e in events] == [
        (editor, "broadcasts", file_format),
        (editor, "headline", file_format),
        (editor, "bc-comparison", file_format),
    ]
    assert events[0].details["rows"] == 2


@pytest.mark.parametrize("file_format", ["csv", "xlsx"])
def test_the_broadcast_section_exports_its_numbers(tenant: Tenant, client_a: Client, file_format: str) -> None:
    broadcast = _sent("Hitzewarnung", recipients=8, read=2)
    broadcast_stats_fold()
    client_a.force_login(make_user(roles.EDITOR))
    url = f"/admin/broadcasts/broadcast/{broadcast.pk}/change/"
    page = client_a.get(url).content.decode()
    assert "table=results" in page and "table=by-messenger" in page
    results = _by_first(_rows(client_a.get(url, {"format": file_format, "table": "results"})))
    assert results["Recipients"] == ["8"] and float(results["Read within 15 minutes (%)"][0]) == 25.0
    assert float(results["Delivered (%)"][0]) == 100.0
    by_messenger = _rows(client_a.get(url, {"format": file_format, "table": "by-messenger"}))
    assert len(by_messenger) == 2 and by_messenger[1][1] == "8"
    timeline = _rows(client_a.get(url, {"format": file_format, "table": f"bc-timeline-{broadcast.pk}"}))
    assert len(timeline) > 1
    assert [e.details["table"] for e in _exports(0)] == ["results", "by-messenger", f"bc-timeline-{broadcast.pk}"]
    assert client_a.get(url, {"format": file_format, "table": "nonsense"}).status_code == 404
    assert client_a.get(url, {"format": "pdf", "table": "results"}).status_code == 400


def test_a_broadcast_not_yet_sent_has_nothing_to_export(tenant: Tenant, client_a: Client) -> None:
    broadcast = _sent("Entwurf", recipients=1, read=0)
    Broadcast.objects.filter(pk=broadcast.pk).update(status=Broadcast.Status.DRAFT, send_started_at=None)
    client_a.force_login(make_user(roles.EDITOR))
    url = f"/admin/broadcasts/broadcast/{broadcast.pk}/change/"
    assert client_a.get(url, {"format": "csv", "table": "results"}).status_code == 404
    assert not AuditEvent.objects.filter(action="analytics.exported").exists()


def test_inbox_agents_may_export_nothing(tenant: Tenant, client_a: Client) -> None:
    broadcast = _sent("Baustelle", recipients=3, read=1)
    broadcast_stats_fold()
    client_a.force_login(make_user(roles.INBOX_AGENT))
    assert client_a.get(RESULTS, {"format": "csv", "table": "broadcasts"}).status_code == 403
    assert client_a.get(CHANNELS, {"format": "csv"}).status_code == 403
    url = f"/admin/broadcasts/broadcast/{broadcast.pk}/change/"
    assert client_a.get(url, {"format": "csv", "table": "results"}).status_code in (403, 302)
    assert not AuditEvent.objects.filter(action="analytics.exported").exists()


def test_another_tenant_exports_only_its_own(tenant: Tenant, tenant_b: Tenant, client_b: Client) -> None:
    _sent("Nur in A", recipients=3, read=1)
    broadcast_stats_fold()
    with in_tenant(tenant_b):
        user = make_user(roles.EDITOR, username="redaktion_b")
        client_b.force_login(user)
        rows = _rows(client_b.get(RESULTS, {"format": "csv", "table": "broadcasts"}))
        assert rows[1:] == []
        channels = _rows(client_b.get(CHANNELS, {"format": "csv"}))
        assert all("Nur in A" not in row[0] for row in channels)
        assert AuditEvent.objects.filter(action="analytics.exported").count() == 2
    assert not AuditEvent.objects.filter(action="analytics.exported").exists()


@pytest.mark.parametrize("file_format", ["csv", "xlsx"])
def test_the_channel_pages_export_their_numbers(figures: dict[str, Any], client_a: Client, file_format: str) -> None:  # noqa: F811
    client = _signed_in(client_a, figures["editor"])
    page = client.get(CHANNELS).content.decode()
    assert "table=channels" in page
    rows = _by_first(_rows(client.get(CHANNELS, {"format": file_format, "table": "channels"})))
    dust = rows["Feinstaub"]
    assert [int(float(v)) for v in dust[:4]] == [4, 3, 2, 5] and float(dust[4]) == 50.0
    one = f"{CHANNELS}{figures['dust'].pk}/"
    page = client.get(one).content.decode()
    for key in ("sources", "posters", "messengers", "days"):
        assert f"table={key}" in page
    days = _rows(client.get(one, {"format": file_format, "table": "days"}))
    assert len(days) == 31 and int(float(days[-1][3])) == 5
    assert sum(int(float(row[2])) for row in days[1:]) == 2
    assert _by_first(_rows(client.get(one, {"format": file_format, "table": "posters"}))) == {"HBF1": ["2"]}
    sources = _by_first(_rows(client.get(one, {"format": file_format, "table": "sources"})))
    assert sum(int(v[0]) for v in sources.values()) == 3
    messengers = _rows(client.get(one, {"format": file_format, "table": "messengers"}))
    assert sorted(int(row[1]) for row in messengers[1:]) == [1, 2, 2]
    assert len(_exports(0)) == 5


@pytest.mark.parametrize("file_format", ["csv", "xlsx"])
def test_the_operator_exports_tenant_figures_into_the_public_log(
    public: Any, client_public: Client, tenant_a: Tenant, tenant_b: Tenant, file_format: str
) -> None:
    with in_tenant(tenant_a):
        tenant_rollup_compute()
    connection.set_schema_to_public()
    TenantRollup.objects.filter(tenant=tenant_a).update(
        metrics={"subscribers_active": 7, "messages_sent_24h": 9, "messages_failed_24h": 1, "channels_active": 2}
    )
    Tenant.objects.filter(pk=tenant_b.pk).update(name="@SUM(1)")
    operator = User.objects.create_superuser(username="op_export", email="op@export.example", password="x" * 12)
    enrol_totp(operator)
    client_public.force_login(operator)
    assert "table=tenants" in client_public.get(OPERATOR).content.decode()
    rows = _by_first(_rows(client_public.get(OPERATOR, {"format": file_format})))
    a = rows[tenant_a.name]
    assert [int(float(v)) for v in (a[1], a[2], a[4])] == [7, 9, 2] and float(a[3]) == 10.0
    assert "'@SUM(1)" in rows
    event = AuditEvent.objects.get(action="analytics.exported")  # the public schema's log
    assert event.actor == operator and event.details["table"] == "tenants"
    with in_tenant(tenant_a):
        assert not AuditEvent.objects.filter(action="analytics.exported").exists()


def test_tenant_staff_cannot_export_the_operator_figures(tenant: Tenant, client_a: Client) -> None:
    admin = make_user(roles.ADMIN)
    enrol_totp(admin)
    client_a.force_login(admin)
    assert client_a.get(OPERATOR, {"format": "csv"}).status_code in (302, 403, 404)
    assert not AuditEvent.objects.filter(action="analytics.exported").exists()


def test_no_page_offers_per_person_clicks_to_an_aggregate_only_tenant(
    figures: dict[str, Any],  # noqa: F811
    client_a: Client,
) -> None:
    """Every table linked from every analytics page exports for an aggregate-only tenant: a table
    marked `per_person_clicks` would be refused (400) here, so adding one to a page fails this."""
    tenant = connection.tenant
    Tenant.objects.filter(pk=tenant.pk).update(link_tracking=Tenant.LinkTracking.AGGREGATE)
    tenant.refresh_from_db()
    broadcast = _sent("Klickbar", recipients=4, read=2)
    broadcast_stats_fold()
    client = _signed_in(client_a, figures["editor"])
    pages = [
        RESULTS,
        CHANNELS,
        f"{CHANNELS}{figures['dust'].pk}/",
        f"/admin/broadcasts/broadcast/{broadcast.pk}/change/",
    ]
    exported = 0
    for page in pages:
        keys = sorted(set(re.findall(r"format=csv&amp;table=([\w-]+)", client.get(page).content.decode())))
        assert keys, page
        for key in keys:
            response = client.get(page, {"format": "csv", "table": key})
            assert response.status_code == 200, (page, key, response.content)
            header = _rows(response)[0]
            assert not any("person" in str(h).lower() and "people who clicked" not in str(h).lower() for h in header)
            exported += 1
    assert exported >= 9 and AuditEvent.objects.filter(action="analytics.exported").count() == exported
    assert not LinkClick.objects.exists()
