"""Inbox figures (analytics/selectors_inbox.py, admin/analytics/inbox/): every number against a
brute-force recomputation over generated conversations, the period's edges, roles, tenant
isolation, constant queries, German text and the export."""

from __future__ import annotations

import csv
import io
import random
import statistics
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone, translation
from django_tenants.utils import schema_context

from accounts import roles
from accounts.models import AuditEvent
from analytics.selectors_inbox import inbox_figures, period_bounds
from analytics.templatetags.analytics_format import duration
from inbox.models import Conversation, Department
from messengers.models import Connection, Contact
from tenants.models import Tenant
from tests.factories import make_user
from tests.helpers import enrol_totp, query_count, signed_in_admin

pytestmark = pytest.mark.usefixtures("tenant")
PAGE = "/admin/analytics/inbox/"


def p90(values: list[float]) -> float:
    """percentile_cont(0.9) by hand: linear interpolation between the two nearest ranks."""
    ordered = sorted(values)
    rank = 0.9 * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def make_conversations(specs: list[dict[str, Any]], prefix: str = "p") -> list[Conversation]:
    """Conversations with the given times, department and status, one person each."""
    connection = Connection.objects.get(provider="sandbox")
    contacts = Contact.objects.bulk_create(
        [Contact(connection=connection, address=f"{prefix}{i}") for i in range(len(specs))]
    )
    now = timezone.now()
    rows = Conversation.objects.bulk_create(
        [
            Conversation(
                contact=contact,
                connection=connection,
                status=spec.get("status", Conversation.Status.OPEN),
                department=spec.get("department"),
                last_activity_at=now,
                changed_at=now,
            )
            for contact, spec in zip(contacts, specs, strict=True)
        ]
    )
    for row, spec in zip(rows, specs, strict=True):  # opened_at is auto_now_add: set it afterwards
        row.opened_at = spec["opened_at"]
        row.first_response_at = spec.get("first_response_at")
        row.closed_at = spec.get("closed_at")
    Conversation.objects.bulk_update(rows, ["opened_at", "first_response_at", "closed_at"])
    return rows


def generated(seed: int, start: datetime, end: datetime) -> tuple[list[dict[str, Any]], list[Department]]:
    rng = random.Random(seed)
    departments = [
        Department.objects.create(name="Tiefbauamt", email="t@example.org"),
        Department.objects.create(name="Amt für Umweltschutz", email="u@example.org"),
    ]
    specs = []
    span = (end - start).total_seconds()
    for _ in range(140):
        # some outside the period on either side, some right on its edges
        where = rng.random()
        if where < 0.1:
            opened = start - timedelta(seconds=rng.uniform(1, 86400 * 5))
        elif where < 0.2:
            opened = end + timedelta(seconds=rng.uniform(0, 86400 * 5))
        elif where < 0.23:
            opened = start
        elif where < 0.26:
            opened = end - timedelta(microseconds=1)
        else:
            opened = start + timedelta(seconds=rng.uniform(0, span))
        spec: dict[str, Any] = {"opened_at": opened, "department": rng.choice([*departments, None])}
        if rng.random() < 0.8:
            spec["first_response_at"] = opened + timedelta(seconds=rng.lognormvariate(7, 1.5))
            spec["status"] = Conversation.Status.WAITING
        if rng.random() < 0.5:
            spec["status"] = Conversation.Status.CLOSED
            spec["closed_at"] = opened + timedelta(seconds=rng.lognormvariate(10, 1))
        specs.append(spec)
    return specs, departments


def brute_force(specs: list[dict[str, Any]], start: datetime, end: datetime, department: Any = "all") -> dict[str, Any]:
    cohort = [
        s for s in specs if start <= s["opened_at"] < end and (department == "all" or s["department"] == department)
    ]
    responses = [
        (s["first_response_at"] - s["opened_at"]).total_seconds() for s in cohort if s.get("first_response_at")
    ]
    resolutions = [
        (s["closed_at"] - s["opened_at"]).total_seconds()
        for s in cohort
        if s.get("status") == Conversation.Status.CLOSED and s.get("closed_at")
    ]
    return {
        "opened": len(cohort),
        "answered": len(responses),
        "first_response_median": statistics.median(responses) if responses else None,
        "first_response_p90": p90(responses) if responses else None,
        "closed": len(resolutions),
        "resolution_median": statistics.median(resolutions) if resolutions else None,
        "resolution_p90": p90(resolutions) if resolutions else None,
    }


def as_dict(figures: Any) -> dict[str, Any]:
    return {name: getattr(figures, name) for name in brute_force([], timezone.now(), timezone.now())}


def assert_same(got: dict[str, Any], expected: dict[str, Any]) -> None:
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        if value is None or isinstance(value, int):
            assert got[name] == value, name
        else:
            assert got[name] == pytest.approx(value, abs=1e-3), name


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_figures_match_a_brute_force_recomputation(seed: int) -> None:
    start, end = period_bounds(30)
    specs, departments = generated(seed, start, end)
    make_conversations(specs)
    report = inbox_figures(start=start, end=end)
    assert_same(as_dict(report.total), brute_force(specs, start, end))
    by_department = {f.department_id: f for f in report.departments}
    for department in [*departments, None]:
        expected = brute_force(specs, start, end, department)
        key = department.pk if department is not None else None
        if expected["opened"] == 0:
            assert key not in by_department
            continue
        assert_same(as_dict(by_department[key]), expected)
    assert [f.department for f in report.departments] == ["Amt für Umweltschutz", "Tiefbauamt", ""]
    # conversations opened per day: every day of the period, zeros included, in local days
    assert len(report.opened_per_day) == 30
    assert sum(n for _day, n in report.opened_per_day) == report.total.opened
    tz = timezone.get_current_timezone()
    for day, n in report.opened_per_day:
        assert n == sum(
            1 for s in specs if start <= s["opened_at"] < end and timezone.localtime(s["opened_at"], tz).date() == day
        )


def test_an_empty_period_has_no_times() -> None:
    start, end = period_bounds(7)
    report = inbox_figures(start=start, end=end)
    assert report.total.opened == 0 and report.total.first_response_median is None and report.departments == []
    assert [n for _d, n in report.opened_per_day] == [0] * 7


def test_a_reopened_conversation_has_no_resolution_time_until_it_is_closed_again() -> None:
    start, end = period_bounds(7)
    opened = end - timedelta(hours=5)
    make_conversations(
        [
            {"opened_at": opened, "status": Conversation.Status.OPEN, "closed_at": None},
            {"opened_at": opened, "status": Conversation.Status.CLOSED, "closed_at": opened + timedelta(hours=2)},
        ]
    )
    report = inbox_figures(start=start, end=end)
    assert report.total.closed == 1 and report.total.resolution_median == pytest.approx(7200)


def test_durations_read_well_in_both_languages() -> None:
    with translation.override("en"):
        assert [duration(s) for s in (None, 42, 600, 3600, 3900, 86400 * 2 + 3600 * 4)] == [
            "–", "42 s", "10 min", "1 h", "1 h 5 min", "2 d 4 h"
        ]  # fmt: skip
    with translation.override("de"):
        assert [duration(s) for s in (600, 3900, 86400 * 2 + 3600 * 4)] == ["10 Min.", "1 Std. 5 Min.", "2 Tg. 4 Std."]


def test_only_admins_see_the_page_and_its_navigation_entry(client_a: Client) -> None:
    assert client_a.get(PAGE).status_code == 302  # to the login
    for role in (roles.INBOX_AGENT, roles.EDITOR, roles.APPROVER):
        user = make_user(role)
        enrol_totp(user)
        client_a.force_login(user)
        assert client_a.get(PAGE).status_code == 403, role
        assert client_a.get(f"{PAGE}?format=csv&table=departments").status_code == 403, role
        assert 'data-nav="inbox_figures"' not in client_a.get("/admin/channels/channel/").content.decode(), role
    assert not AuditEvent.objects.filter(action="analytics.exported").exists()
    admin = signed_in_admin(client_a)
    page = admin.get(PAGE).content.decode()
    assert f'href="{PAGE}" class="task-nav-link" data-nav="inbox_figures" aria-current="page"' in page


def test_the_page_shows_the_figures_with_constant_queries(client_a: Client) -> None:
    admin = signed_in_admin(client_a)
    start, end = period_bounds(30)
    specs, _departments = generated(7, start, end)
    make_conversations(specs[:20])
    few, _html = query_count(admin, PAGE)
    make_conversations(specs[20:], prefix="q")
    Department.objects.create(name="Ordnungsamt", email="o@example.org")
    many, html = query_count(admin, PAGE)
    assert few == many
    report = inbox_figures(start=start, end=end)
    assert f"<dd>{report.total.opened}</dd>" in html
    assert duration(report.total.first_response_median) in html
    assert 'role="img"' in html and "Tiefbauamt" in html


def test_other_tenants_conversations_are_not_counted(client_a: Client, client_b: Client, tenant_b: Tenant) -> None:
    start, end = period_bounds(30)
    make_conversations([{"opened_at": end - timedelta(hours=1)}] * 3)
    with schema_context(tenant_b.schema_name):
        Department.objects.create(name="Geheimes Amt B", email="b@example.org")
        make_conversations([{"opened_at": end - timedelta(hours=1)}] * 2, prefix="b")
        admin_b = signed_in_admin(client_b)
        html_b = admin_b.get(PAGE).content.decode()
        assert "<dd>2</dd>" in html_b
    assert inbox_figures(start=start, end=end).total.opened == 3
    html_a = signed_in_admin(client_a).get(PAGE).content.decode()
    assert "<dd>3</dd>" in html_a and "Geheimes Amt B" not in html_a


def test_the_department_table_exports_as_csv_and_is_audit_logged(client_a: Client) -> None:
    admin = signed_in_admin(client_a)
    start, end = period_bounds(30)
    department = Department.objects.create(name='=HYPERLINK("http://evil")', email="e@example.org")
    make_conversations(
        [
            {
                "opened_at": end - timedelta(hours=3),
                "department": department,
                "first_response_at": end - timedelta(hours=2),
                "status": Conversation.Status.WAITING,
            }
        ]
    )
    response = admin.get(f"{PAGE}?format=csv&table=departments", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[1][:4] == ['\'=HYPERLINK("http://evil")', "1", "1", "60.0"]
    assert rows[-1][1] == "1"
    event = AuditEvent.objects.get(action="analytics.exported")
    assert event.details == {"format": "csv", "table": "departments", "rows": 2}
    xlsx = admin.get(f"{PAGE}?format=xlsx&table=opened")
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"
    assert admin.get(f"{PAGE}?format=xlsx&table=nope").status_code == 404
    assert admin.get(f"{PAGE}?format=pdf").status_code == 400
