"""Template tags of the admin start pages (`{% load start_page %}`): the tenant's (first steps,
then what needs the signed-in person, what is sending, what went out, subscribers) and the
operator's platform overview."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.translation import gettext as _

from analytics.charts import Chart, Series, bar_chart, line_chart
from analytics.selectors import (
    LATEST_SENT,
    SUBSCRIBER_CHANGE_DAYS,
    first_steps,
    platform_overview,
    start_page,
)
from analytics.selectors_dashboard import PERIODS, Dashboard, dashboard, period_days

register = template.Library()


@register.inclusion_tag("analytics/admin/first_steps.html", takes_context=True)
def first_steps_panel(context: template.Context) -> dict[str, Any]:
    """The "first steps" list for the signed-in admin (renders nothing when there is none)."""
    request = context.get("request")
    user = getattr(request, "user", None)
    return {"steps": first_steps(user=user) if user is not None else None, "request": request}


@register.inclusion_tag("analytics/admin/start_page.html", takes_context=True)
def start_page_panel(context: template.Context) -> dict[str, Any]:
    """The cards of the signed-in person's start page, each only when their role allows it."""
    request = context.get("request")
    user = getattr(request, "user", None)
    page = start_page(user) if user is not None and user.is_authenticated else None
    return {
        "page": page,
        "request": request,
        "latest_sent_count": LATEST_SENT,
        "change_days": SUBSCRIBER_CHANGE_DAYS,
        "change_abs": abs(page.subscribers.change) if page is not None and page.subscribers is not None else 0,
    }


def _dashboard_charts(board: Dashboard) -> list[Chart]:
    charts = []
    if board.subscribers_by_day:
        charts.append(
            line_chart(
                title=_("Subscribers of all channels over time"),
                x=[d.day for d in board.subscribers_by_day],
                series=[Series(_("Subscribers"), [d.subscribers for d in board.subscribers_by_day])],
                y_label=_("Subscribers"),
                key="dash-subscribers",
            )
        )
    if board.recent:
        rows = list(reversed(board.recent))  # oldest first, as time runs
        charts.append(
            bar_chart(
                title=_("Messages and reach of recent broadcasts"),
                categories=[row.broadcast.title for row in rows],
                series=[
                    Series(_("Messages"), [row.stats.recipients for row in rows]),
                    Series(_("Delivered"), [row.stats.delivered for row in rows]),
                ],
                horizontal=True,
                key="dash-broadcasts",
            )
        )
    return charts


@register.inclusion_tag("analytics/admin/dashboard.html", takes_context=True)
def dashboard_panel(context: template.Context) -> dict[str, Any]:
    """The headline figures and charts of the period chosen by `?days=` (renders nothing for
    people who may not see analytics)."""
    request = context.get("request")
    user = getattr(request, "user", None)
    board = None
    if user is not None and user.is_authenticated:
        board = dashboard(user, days=period_days(request.GET.get("days") if request is not None else None))
    return {
        "board": board,
        "periods": PERIODS,
        "reach_change": board.change("reach_pct") if board is not None else None,
        "read_change": board.change("read_15min_pct") if board is not None else None,
        "click_change": board.change("click_rate_pct") if board is not None else None,
        "best_change_abs": abs(board.best_channel_change or 0) if board is not None else 0,
        "charts": _dashboard_charts(board) if board is not None else [],
        "request": request,
    }


@register.inclusion_tag("analytics/admin/platform_overview.html", takes_context=True)
def platform_overview_panel(context: template.Context) -> dict[str, Any]:
    """The operator's overview: tenants by state and the platform's figures from the roll-ups."""
    return {"overview": platform_overview(), "request": context.get("request")}
