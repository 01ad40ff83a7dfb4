"""Reads of the per-broadcast figures (analytics.models.BroadcastStats, kept by
analytics.rollups.broadcasts): a broadcast's figures for its page, the comparison list of recent
broadcasts, and the headline numbers of a period. Each is a fixed number of queries over the
roll-up table, never over deliveries.

Rates (percent, one decimal; None when the base is zero):
- delivered % = delivered / sent; read % and read within 15 minutes % = of delivered;
- click rate % = people who clicked / delivered; for aggregate-only tenants, which record no
  per-person clicks, every click / delivered (an upper bound: one person may click twice);
- reach % (headline) = delivered / recipients over the period's broadcasts.
Telegram and e-mail send no receipts: their messages stay "sent", so they lower delivered %
and reach; the page shows the figures per messenger for that reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Count, F, Q, Sum
from django.db.models.functions import Coalesce
from django.utils.translation import gettext

from analytics.charts import Chart, Series, bar_chart, line_chart
from analytics.models import BroadcastStats
from broadcasts.models import Broadcast, delivery_error_kind_choices
from broadcasts.selectors import Progress
from messengers.models import PROVIDER_CHOICES


def percent(part: int | None, whole: int | None) -> float | None:
    if not whole or part is None:
        return None
    return round(100.0 * part / whole, 1)


def _clickers(stats: BroadcastStats) -> int:
    return stats.unique_clicks if stats.unique_clicks is not None else stats.clicks


@dataclass
class BroadcastFigures:
    stats: BroadcastStats
    delivered_pct: float | None
    read_pct: float | None
    read_15min_pct: float | None
    click_rate_pct: float | None
    per_person_clicks: bool
    failures: list[dict[str, Any]]
    providers: list[dict[str, Any]]
    # (hours after the start of sending, delivered, read, clicked or None), cumulative
    timeline: list[tuple[float, int, int, int | None]]


# The timeline's points: every 15 minutes for the first two hours, then every hour.
def _timeline_points(stats: BroadcastStats) -> list[tuple[float, int, int, int | None]]:
    data = stats.timeline or {}
    width = int(data.get("bucket_minutes") or 15)
    delivered, read = data.get("delivered") or [], data.get("read") or []
    clicked = data.get("clicked")
    out = []
    for index in range(len(delivered)):
        minutes = (index + 1) * width
        if minutes > 120 and minutes % 60:
            continue
        out.append((minutes / 60, delivered[index], read[index], clicked[index] if clicked is not None else None))
    return out


def broadcast_stats_of(broadcast_id: int) -> BroadcastStats | None:
    """The roll-up row of a broadcast (one query), None before its first fold."""
    return BroadcastStats.objects.filter(broadcast_id=broadcast_id).first()


def broadcast_figures(broadcast_id: int) -> BroadcastFigures | None:
    """One broadcast's figures (one query), or None before its first fold."""
    stats = broadcast_stats_of(broadcast_id)
    return figures_of(stats) if stats is not None else None


def settled_progress(stats: BroadcastStats, broadcast: Broadcast) -> Progress | None:
    """The progress counts of a finished broadcast from its roll-up (no scan of its deliveries),
    or None while it may still change by itself (then count live: broadcasts.selectors)."""
    if not stats.settled or broadcast.status not in (Broadcast.Status.SENT, Broadcast.Status.CANCELLED):
        return None
    counts = stats.by_status
    reasons: dict[str, int] = {}
    for row in stats.failures:
        reasons[row["kind"]] = reasons.get(row["kind"], 0) + row["count"]
    return Progress(
        total=stats.recipients,
        queued=counts.get("queued", 0),
        in_flight=counts.get("claimed", 0) + counts.get("sending", 0),
        sent=counts.get("sent", 0),
        delivered=counts.get("delivered", 0),
        read=counts.get("read", 0),
        failed=counts.get("failed", 0),
        skipped=counts.get("skipped", 0),
        possible_duplicates=stats.possible_duplicates,
        status=broadcast.status,
        failures_by_reason=reasons,
    )


def figures_of(stats: BroadcastStats) -> BroadcastFigures:
    """A broadcast's figures for its page, from its roll-up row."""
    kinds = dict(delivery_error_kind_choices())
    providers = dict(PROVIDER_CHOICES)
    failures = [
        {
            "status": row["status"],
            "messenger": providers.get(row["provider"], row["provider"]),
            "reason": kinds.get(row["kind"], row["kind"]),
            "count": row["count"],
        }
        for row in sorted(stats.failures, key=lambda r: (-r["count"], r["provider"], r["kind"]))
    ]
    by_provider = [
        {
            "messenger": providers.get(code, code),
            **figures,
            "delivered_pct": percent(figures.get("delivered"), figures.get("sent")),
            "read_pct": percent(figures.get("read"), figures.get("delivered")),
        }
        for code, figures in sorted(stats.by_provider.items())
    ]
    return BroadcastFigures(
        stats=stats,
        delivered_pct=percent(stats.delivered, stats.sent),
        read_pct=percent(stats.read, stats.delivered),
        read_15min_pct=percent(stats.read_15min, stats.delivered),
        click_rate_pct=percent(_clickers(stats), stats.delivered),
        per_person_clicks=stats.unique_clicks is not None,
        failures=failures,
        providers=by_provider,
        timeline=_timeline_points(stats),
    )


@dataclass
class ComparisonRow:
    broadcast: Broadcast
    stats: BroadcastStats
    delivered_pct: float | None
    read_pct: float | None
    read_15min_pct: float | None
    click_rate_pct: float | None


def broadcast_comparison(*, limit: int = 50) -> list[ComparisonRow]:
    """The most recently started broadcasts with their figures (one query)."""
    rows = (
        BroadcastStats.objects.select_related("broadcast")
        .defer("timeline", "failures", "by_provider")
        .order_by("-broadcast__send_started_at", "-broadcast_id")[:limit]
    )
    return [
        ComparisonRow(
            broadcast=stats.broadcast,
            stats=stats,
            delivered_pct=percent(stats.delivered, stats.sent),
            read_pct=percent(stats.read, stats.delivered),
            read_15min_pct=percent(stats.read_15min, stats.delivered),
            click_rate_pct=percent(_clickers(stats), stats.delivered),
        )
        for stats in rows
    ]


@dataclass
class Headline:
    broadcasts: int
    recipients: int
    delivered: int
    reach_pct: float | None
    read_15min_pct: float | None
    click_rate_pct: float | None


@dataclass
class HeadlineComparison:
    current: Headline
    previous: Headline

    def change(self, name: str) -> float | None:
        """Percentage points from the previous period to this one."""
        now, before = getattr(self.current, name), getattr(self.previous, name)
        if now is None or before is None:
            return None
        return round(now - before, 1)


def headline(period_start: datetime, period_end: datetime) -> HeadlineComparison:
    """Reach, read within 15 minutes and click rate of the broadcasts that started sending in
    [period_start, period_end), and the same for the period of equal length before (one query)."""
    previous_start = period_start - (period_end - period_start)
    now = Q(broadcast__send_started_at__gte=period_start, broadcast__send_started_at__lt=period_end)
    before = Q(broadcast__send_started_at__gte=previous_start, broadcast__send_started_at__lt=period_start)
    clickers = Coalesce(F("unique_clicks"), F("clicks"))
    figures = BroadcastStats.objects.filter(broadcast__send_started_at__gte=previous_start).aggregate(
        **{
            f"{prefix}_{name}": aggregate
            for prefix, where in (("now", now), ("before", before))
            for name, aggregate in (
                ("broadcasts", Count("pk", filter=where)),
                ("recipients", Sum("recipients", filter=where, default=0)),
                ("delivered", Sum("delivered", filter=where, default=0)),
                ("read_15min", Sum("read_15min", filter=where, default=0)),
                ("clickers", Sum(clickers, filter=where, default=0)),
            )
        }
    )

    def one(prefix: str) -> Headline:
        delivered = figures[f"{prefix}_delivered"]
        return Headline(
            broadcasts=figures[f"{prefix}_broadcasts"],
            recipients=figures[f"{prefix}_recipients"],
            delivered=delivered,
            reach_pct=percent(delivered, figures[f"{prefix}_recipients"]),
            read_15min_pct=percent(figures[f"{prefix}_read_15min"], delivered),
            click_rate_pct=percent(figures[f"{prefix}_clickers"], delivered),
        )

    return HeadlineComparison(current=one("now"), previous=one("before"))


def timeline_chart(figures: BroadcastFigures) -> Chart:
    """Cumulative delivered, read and (per-recipient tracking only) clicked over the first 24 hours."""
    points = figures.timeline
    series = [
        Series(gettext("Delivered"), [p[1] for p in points]),
        Series(gettext("Read"), [p[2] for p in points]),
    ]
    if figures.per_person_clicks:
        series.append(Series(gettext("Clicked"), [p[3] for p in points]))
    return line_chart(
        title=gettext("The first 24 hours"),
        x=[p[0] for p in points],
        series=series,
        x_label=gettext("hours after sending started"),
        y_label=gettext("recipients"),
        x_unit=" h",
        key=f"bc-timeline-{figures.stats.broadcast_id}",
    )


def comparison_chart(rows: list[ComparisonRow]) -> Chart:
    """Read within 15 minutes and click rate of each broadcast, side by side."""
    return bar_chart(
        title=gettext("Read within 15 minutes and click rate"),
        categories=[row.broadcast.title for row in rows],
        series=[
            Series(gettext("Read within 15 minutes"), [row.read_15min_pct for row in rows]),
            Series(gettext("Click rate"), [row.click_rate_pct for row in rows]),
        ],
        unit=" %",
        decimals=1,
        horizontal=True,
        key="bc-comparison",
    )
