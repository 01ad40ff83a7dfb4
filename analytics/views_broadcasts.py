"""The tenant admin's comparison of recent broadcasts (their figures side by side, with the
headline numbers of a period). Mounted by analytics/admin.py, linked from analytics/nav.py;
a broadcast's own figures are a section of its page (broadcasts/admin)."""

from __future__ import annotations

from datetime import timedelta

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from analytics.export import export_response, table_from_chart
from analytics.export_tables import comparison_table, headline_table
from analytics.selectors_broadcasts import broadcast_comparison, comparison_chart, headline
from core.admin_sites import tenant_site

# Administrators, editors and approvers (analytics/roles.py); not inbox agents.
PERMISSION = "analytics.view_broadcaststats"
PERIODS = (7, 30, 90, 365)
DEFAULT_PERIOD = 30
LIMIT = 50


@require_GET
def broadcast_results(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm(PERMISSION):
        raise PermissionDenied
    try:
        days = int(request.GET.get("days", DEFAULT_PERIOD))
    except ValueError:
        days = DEFAULT_PERIOD
    if days not in PERIODS:
        days = DEFAULT_PERIOD
    end = timezone.now()
    figures = headline(end - timedelta(days=days), end)
    rows = broadcast_comparison(limit=LIMIT)
    chart = comparison_chart(rows[:12])
    tables = [headline_table(figures), comparison_table(rows), table_from_chart(chart)]
    if (exported := export_response(request, tables)) is not None:
        return exported
    context = {
        **tenant_site.each_context(request),
        "title": _("Broadcast results"),
        "days": days,
        "periods": PERIODS,
        "headline": figures,
        "changes": {name: figures.change(name) for name in ("reach_pct", "read_15min_pct", "click_rate_pct")},
        "rows": rows,
        "chart": chart,
        "limit": LIMIT,
    }
    return TemplateResponse(request, "analytics/admin/broadcast_results.html", context)
