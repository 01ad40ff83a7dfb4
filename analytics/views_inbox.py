"""The inbox figures page of the tenant admin (admin/analytics/inbox/): conversations opened,
first-response and resolution times per department for a period, with charts and export.

Who: users with `inbox.view_inbox_figures` (admins; the figures compare departments and the
team's speed, which is a lead's view, so inbox agents and editors do not get it by default)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.translation import gettext, pgettext
from django.utils.translation import gettext_lazy as _

from analytics.charts import Series, bar_chart
from analytics.export import Table, export_response, table_from_chart
from analytics.selectors_inbox import (
    DEFAULT_PERIOD,
    PERIODS,
    PERMISSION,
    InboxFigures,
    InboxReport,
    inbox_figures,
    period_bounds,
)
from analytics.templatetags.analytics_format import no_department
from core.admin_sites import tenant_site


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 60, 1)


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 3600, 2)


def _table(report: InboxReport) -> Table:
    def row(f: InboxFigures) -> list[Any]:
        name = gettext("All departments") if f.total else no_department(f.department)
        return [
            name,
            f.opened,
            f.answered,
            _minutes(f.first_response_median),
            _minutes(f.first_response_p90),
            f.closed,
            _hours(f.resolution_median),
            _hours(f.resolution_p90),
        ]

    return Table(
        key="departments",
        title=gettext("Inbox figures per department"),
        headers=[
            gettext("Department"),
            gettext("Conversations opened"),
            gettext("Answered"),
            gettext("First response, median (minutes)"),
            gettext("First response, 90th percentile (minutes)"),
            gettext("Closed"),
            gettext("Resolution, median (hours)"),
            gettext("Resolution, 90th percentile (hours)"),
        ],
        rows=[row(f) for f in report.departments] + [row(report.total)],
    )


def _period(request: HttpRequest) -> int:
    try:
        days = int(request.GET.get("days", DEFAULT_PERIOD))
    except ValueError:
        return DEFAULT_PERIOD
    return days if days in PERIODS else DEFAULT_PERIOD


def inbox_figures_page(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm(PERMISSION):
        raise PermissionDenied
    days = _period(request)
    start, end = period_bounds(days)
    report = inbox_figures(start=start, end=end)
    opened_chart = bar_chart(
        key="opened",
        title=gettext("Conversations opened per day"),
        categories=[day for day, _n in report.opened_per_day],
        series=[Series(gettext("Conversations opened"), [n for _day, n in report.opened_per_day])],
        x_label=pgettext("chart table", "Day"),
    )
    answered = [f for f in report.departments if f.first_response_median is not None]
    response_chart = bar_chart(
        key="first-response",
        title=gettext("First response per department (minutes)"),
        categories=[no_department(f.department) for f in answered],
        series=[
            Series(gettext("Median"), [_minutes(f.first_response_median) for f in answered]),
            Series(gettext("90th percentile"), [_minutes(f.first_response_p90) for f in answered]),
        ],
        horizontal=True,
        unit=" min",
        decimals=1,
        x_label=gettext("Department"),
    )
    tables = [_table(report), table_from_chart(opened_chart), table_from_chart(response_chart)]
    if (exported := export_response(request, tables)) is not None:
        return exported
    context: dict[str, Any] = {
        **tenant_site.each_context(request),
        "title": _("Inbox figures"),
        "report": report,
        "days": days,
        "periods": PERIODS,
        "opened_chart": opened_chart,
        "response_chart": response_chart,
    }
    return TemplateResponse(request, "analytics/admin/inbox_figures.html", context)
