"""REST API of analytics (docs/api.md, scope `analytics:read`): the headline numbers of a period
with the period before and the best channel, and one broadcast's figures. Both read the
roll-ups only (analytics.selectors_broadcasts, analytics.selectors_channels), as the admin's
pages do; the acting user needs the permission those pages need (not inbox agents)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response

from analytics import selectors_channels
from analytics.models import BroadcastStats
from analytics.selectors_broadcasts import Headline, figures_of, headline
from analytics.views_broadcasts import DEFAULT_PERIOD, PERIODS
from broadcasts.models import Broadcast
from core.rest import BaseApi, api_schema, error_responses

PERMISSION = "analytics.view_broadcaststats"
CHANNEL_PERMISSION = "analytics.view_channelday"


class HeadlineQuery(serializers.Serializer):
    days = serializers.ChoiceField(choices=PERIODS, default=DEFAULT_PERIOD, required=False)


def _figures(h: Headline) -> dict[str, Any]:
    return {
        "broadcasts": h.broadcasts,
        "recipients": h.recipients,
        "delivered": h.delivered,
        "reach_pct": h.reach_pct,
        "read_15min_pct": h.read_15min_pct,
        "click_rate_pct": h.click_rate_pct,
    }


_PERIOD_FIGURES = {
    "broadcasts": serializers.IntegerField(help_text="Broadcasts that started sending in the period."),
    "recipients": serializers.IntegerField(),
    "delivered": serializers.IntegerField(),
    "reach_pct": serializers.FloatField(allow_null=True, help_text="Delivered of recipients, percent."),
    "read_15min_pct": serializers.FloatField(allow_null=True, help_text="Read within 15 minutes of delivered."),
    "click_rate_pct": serializers.FloatField(
        allow_null=True, help_text="Clicks (people, or every click) of delivered."
    ),
}


class AnalyticsHeadlineApi(BaseApi):
    """The headline numbers of the last `days` days (broadcasts that started sending in it) and of
    the period of equal length before, with the channel that has the most subscribers at its end."""

    scope = "analytics:read"
    permission = PERMISSION

    @api_schema(
        operation_id="analytics_headline",
        parameters=[OpenApiParameter("days", int, enum=list(PERIODS), required=False, default=DEFAULT_PERIOD)],
        responses={
            200: inline_serializer(
                "AnalyticsHeadline",
                {
                    "days": serializers.IntegerField(),
                    "period_start": serializers.DateTimeField(),
                    "period_end": serializers.DateTimeField(),
                    "current": inline_serializer("HeadlinePeriod", _PERIOD_FIGURES),
                    "previous": inline_serializer("HeadlinePreviousPeriod", _PERIOD_FIGURES),
                    "best_channel": inline_serializer(
                        "BestChannel",
                        {
                            "id": serializers.IntegerField(),
                            "name": serializers.CharField(),
                            "subscribers": serializers.IntegerField(),
                        },
                        allow_null=True,
                    ),
                },
            ),
            **error_responses(),
        },
        examples=[
            OpenApiExample(
                "Last 30 days",
                response_only=True,
                status_codes=["200"],
                value={
                    "days": 30,
                    "period_start": "2026-11-01T08:00:00Z",
                    "period_end": "2026-12-01T08:00:00Z",
                    "current": {
                        "broadcasts": 4,
                        "recipients": 1200,
                        "delivered": 1100,
                        "reach_pct": 91.7,
                        "read_15min_pct": 48.2,
                        "click_rate_pct": 6.1,
                    },  # fmt: skip
                    "previous": {
                        "broadcasts": 3,
                        "recipients": 900,
                        "delivered": 800,
                        "reach_pct": 88.9,
                        "read_15min_pct": 45.0,
                        "click_rate_pct": None,
                    },  # fmt: skip
                    "best_channel": {"id": 3, "name": "U3", "subscribers": 512},
                },
            )
        ],
    )
    def get(self, request: Request) -> Response:
        query = HeadlineQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        days: int = int(query.validated_data["days"])
        end = timezone.now()
        start = end - timedelta(days=days)
        figures = headline(start, end)
        best = None
        if request.user.has_perm(CHANNEL_PERMISSION):
            first, last = selectors_channels.period_for(days, today=selectors_channels.tenant_today())
            top = selectors_channels.best_channel_by_subscribers(
                selectors_channels.channel_periods(start=first, end=last)
            )
            if top is not None:
                best = {"id": top.channel.pk, "name": top.channel.name, "subscribers": top.subscribers_end}
        return Response(
            {
                "days": days,
                "period_start": start,
                "period_end": end,
                "current": _figures(figures.current),
                "previous": _figures(figures.previous),
                "best_channel": best,
            }
        )


class BroadcastStatsApi(BaseApi):
    """A broadcast's figures as its page shows them (from the roll-up, a few minutes behind while
    it sends); 404 before it started sending or before its first roll-up. Counts only: no
    per-person click data, whatever the tenant's tracking mode."""

    scope = "analytics:read"
    permission = PERMISSION

    @api_schema(
        operation_id="broadcasts_stats",
        responses={
            200: inline_serializer(
                "BroadcastStats",
                {
                    "broadcast_id": serializers.IntegerField(),
                    "computed_at": serializers.DateTimeField(),
                    "recipients": serializers.IntegerField(),
                    "sent": serializers.IntegerField(),
                    "delivered": serializers.IntegerField(),
                    "read": serializers.IntegerField(),
                    "read_15min": serializers.IntegerField(),
                    "failed": serializers.IntegerField(),
                    "clicks": serializers.IntegerField(),
                    "people_who_clicked": serializers.IntegerField(
                        allow_null=True, help_text="Null when the organisation counts clicks in aggregate only."
                    ),
                    "unsubscribes": serializers.IntegerField(help_text="Within 24 hours of sending."),
                    "cost_eur": serializers.DecimalField(max_digits=12, decimal_places=4),
                    "delivered_pct": serializers.FloatField(allow_null=True),
                    "read_pct": serializers.FloatField(allow_null=True),
                    "read_15min_pct": serializers.FloatField(allow_null=True),
                    "click_rate_pct": serializers.FloatField(allow_null=True),
                },
            ),
            **error_responses(404),
        },
    )
    def get(self, request: Request, broadcast_id: int) -> Response:
        broadcast = get_object_or_404(Broadcast.objects.only("pk", "send_started_at"), pk=broadcast_id)
        stats = BroadcastStats.objects.filter(broadcast=broadcast).first() if broadcast.send_started_at else None
        if stats is None:
            raise exceptions.NotFound(_("No figures yet: they appear a few minutes after sending started."))
        f = figures_of(stats)
        return Response(
            {
                "broadcast_id": broadcast.pk,
                "computed_at": stats.computed_at,
                "recipients": stats.recipients,
                "sent": stats.sent,
                "delivered": stats.delivered,
                "read": stats.read,
                "read_15min": stats.read_15min,
                "failed": stats.failed,
                "clicks": stats.clicks,
                "people_who_clicked": stats.unique_clicks,
                "unsubscribes": stats.unsubscribes,
                "cost_eur": str(stats.cost_eur),
                "delivered_pct": f.delivered_pct,
                "read_pct": f.read_pct,
                "read_15min_pct": f.read_15min_pct,
                "click_rate_pct": f.click_rate_pct,
            }
        )
