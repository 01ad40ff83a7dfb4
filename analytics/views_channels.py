"""Tenant admin pages of the channel figures: every channel over a period (with the best
channel), and one channel's page (subscribers over time, joins and leaves per day, churn,
sources, posters, messengers). Mounted on the tenant admin site by analytics/admin.py.

Who sees them: admins, editors and approvers (analytics.roles); inbox agents do not: the
figures are about the newsletter, not the conversations they answer."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from analytics import selectors_channels as selectors
from analytics.charts import Chart, Series, bar_chart, line_chart
from analytics.export import export_response
from analytics.export_tables import channel_detail_tables, channel_periods_table
from analytics.selectors_dashboard import channel_engagements
from channels.models import Channel
from core.admin_sites import tenant_site
from messengers.models import PROVIDER_CHOICES
from subscribers.models import Source

CHANNEL_FIGURES_PERMISSION = "analytics.view_channelday"
WEEKLY_BARS_AFTER_DAYS = 92


class PeriodForm(forms.Form):
    days = forms.TypedChoiceField(
        label=gettext_lazy("period"),
        coerce=int,
        choices=[
            (7, gettext_lazy("last 7 days")),
            (30, gettext_lazy("last 30 days")),
            (90, gettext_lazy("last 90 days")),
            (365, gettext_lazy("last 365 days")),
        ],
    )


def _period_days(request: HttpRequest) -> tuple[PeriodForm, int]:
    """The chosen period; anything else (missing, hostile) means the default."""
    form = PeriodForm(request.GET or None, initial={"days": selectors.DEFAULT_PERIOD_DAYS})
    days = form.cleaned_data["days"] if form.is_valid() else selectors.DEFAULT_PERIOD_DAYS
    if not form.is_bound or not form.is_valid():
        form = PeriodForm(initial={"days": days})
    return form, days


def _labelled(counts: dict[str, int], labels: dict[str, str], unknown: str) -> list[tuple[str, int]]:
    return [(labels.get(key, key) if key else unknown, value) for key, value in counts.items()]


def _detail_charts(period: selectors.ChannelPeriod, sources: list[tuple[str, int]],
                   messengers: list[tuple[str, int]]) -> list[Chart]:  # fmt: skip
    # a day is a point of the line; bars are per day up to three months, per week beyond
    weekly = len(period.days) > WEEKLY_BARS_AFTER_DAYS
    bars = selectors.by_week(period.days) if weekly else period.days
    charts = [
        line_chart(
            title=_("Subscribers over time"),
            x=[d.day for d in period.days],
            series=[Series(_("Subscribers"), [d.subscribers for d in period.days])],
            y_label=_("Subscribers"),
            key="chart-subscribers",
        ),
        bar_chart(
            title=_("Joins and leaves per week (from the day shown)") if weekly else _("Joins and leaves per day"),
            categories=[d.day for d in bars],
            series=[
                Series(_("Joined"), [d.joins for d in bars]),
                Series(_("Left"), [-d.leaves for d in bars]),
            ],
            stacked=True,
            key="chart-joins-leaves",
        ),
    ]
    if sources:
        charts.append(
            bar_chart(
                title=_("How people joined"),
                categories=[label for label, _count in sources],
                series=[Series(_("Joined"), [count for _label, count in sources])],
                horizontal=True,
                key="chart-sources",
            )
        )
    if messengers:
        charts.append(
            bar_chart(
                title=_("Subscribers by messenger"),
                categories=[label for label, _count in messengers],
                series=[Series(_("Subscribers"), [count for _label, count in messengers])],
                horizontal=True,
                key="chart-messengers",
            )
        )
    return charts


def channel_figures(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm(CHANNEL_FIGURES_PERMISSION):
        raise PermissionDenied
    form, days = _period_days(request)
    start, end = selectors.period_for(days, today=selectors.tenant_today())
    periods = selectors.channel_periods(start=start, end=end)
    if (exported := export_response(request, [channel_periods_table(periods)])) is not None:
        return exported
    now = timezone.now()
    engagements = channel_engagements(
        start=now - timedelta(days=days), end=now, channels=[period.channel for period in periods]
    )
    context = {
        **tenant_site.each_context(request),
        "title": _("Channel figures"),
        "form": form,
        "days": days,
        "start": start,
        "end": end,
        "periods": periods,
        "best": selectors.best_channel_by_subscribers(periods),
        "best_engagement": selectors.best_channel_by_engagement(engagements),
        "rows": list(zip(periods, engagements, strict=True)),
        "min_recipients": selectors.MIN_ENGAGEMENT_RECIPIENTS,
        "chart": bar_chart(
            title=_("Subscribers at the end of the period"),
            categories=[p.channel.name for p in periods],
            series=[Series(_("Subscribers"), [p.subscribers_end for p in periods])],
            horizontal=True,
            key="chart-channels",
        )
        if periods
        else None,
    }
    return TemplateResponse(request, "analytics/admin/channel_figures.html", context)


def channel_figures_one(request: HttpRequest, pk: int) -> HttpResponse:
    if not request.user.has_perm(CHANNEL_FIGURES_PERMISSION):
        raise PermissionDenied
    channel = Channel.objects.filter(pk=pk).first()
    if channel is None:
        raise Http404("no such channel")
    form, days = _period_days(request)
    start, end = selectors.period_for(days, today=selectors.tenant_today())
    (period,) = selectors.channel_periods(start=start, end=end, channels=[channel], detail=True)
    messenger_labels = {str(key): str(label) for key, label in PROVIDER_CHOICES}
    source_labels = {str(key): str(label) for key, label in Source.choices}
    sources = _labelled(period.joins_by_source, source_labels, _("unknown"))
    messengers = _labelled(period.messengers_end, messenger_labels, _("no messenger (import, admin)"))
    charts = _detail_charts(period, sources, messengers)
    if (exported := export_response(request, channel_detail_tables(period, sources, messengers))) is not None:
        return exported
    context = {
        **tenant_site.each_context(request),
        "title": _("Figures of %(channel)s") % {"channel": channel.name},
        "channel": channel,
        "form": form,
        "days": days,
        "period": period,
        "sources": sources,
        "messengers": messengers,
        "charts": charts,
    }
    return TemplateResponse(request, "analytics/admin/channel_figures_one.html", context)
