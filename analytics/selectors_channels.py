"""Reads of the channel figures: one channel or all of them over a period, from ChannelDay only
(analytics.rollups.channels defines joins, leaves and subscribers), and the best channel.

Churn rate of a period = leaves in the period ÷ subscribers at the period's start (the end of
the day before its first day), in percent; none when nobody was subscribed at the start.

Every function costs a fixed number of queries, however many channels and days: the channels,
the last row per channel before the period and up to its end (the counts at its start and
end), and the rows inside it (summed by the database for the list of all channels).
"""

from __future__ import annotations

import zoneinfo
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from django.db.models import Sum
from django.utils import timezone

from analytics.models import ChannelDay
from channels.models import Channel
from core.tenancy import current_tenant

PERIOD_DAYS = (7, 30, 90, 365)
DEFAULT_PERIOD_DAYS = 30
# A channel needs this many messages sent in the period to be ranked by engagement (one read
# of one message is no 100 % engagement).
MIN_ENGAGEMENT_RECIPIENTS = 50


@dataclass(frozen=True)
class DayFigures:
    day: date
    joins: int
    leaves: int
    subscribers: int


@dataclass(frozen=True)
class ChannelPeriod:
    channel: Channel
    start: date
    end: date
    subscribers_start: int  # at the end of the day before `start`
    subscribers_end: int  # at the end of `end`
    joins: int
    leaves: int
    joins_by_source: dict[str, int] = field(default_factory=dict)  # most first
    joins_by_poster: dict[str, int] = field(default_factory=dict)  # most first
    messengers_end: dict[str, int] = field(default_factory=dict)  # at the end of `end`, most first
    days: list[DayFigures] = field(default_factory=list)  # every day of the period (detail only)

    @property
    def net(self) -> int:
        return self.joins - self.leaves

    @property
    def churn_percent(self) -> float | None:
        if self.subscribers_start <= 0:
            return None
        return round(100.0 * self.leaves / self.subscribers_start, 1)


def tenant_today() -> date:
    name = getattr(current_tenant(), "timezone", "") or "Europe/Berlin"
    return timezone.now().astimezone(zoneinfo.ZoneInfo(name)).date()


def period_for(days: int, *, today: date) -> tuple[date, date]:
    """The `days` days ending with today (today counts: its figures grow until midnight)."""
    return today - timedelta(days=days - 1), today


def _most_first(counts: Counter[str]) -> dict[str, int]:
    return {key: value for key, value in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if value}


def _last_rows(ids: list[int], **day_filter: date) -> dict[int, ChannelDay]:
    """Per channel, its latest row matching the day filter (day__lt=…, day__lte=…)."""
    rows = (
        ChannelDay.objects.filter(channel_id__in=ids, **day_filter)
        .order_by("channel_id", "-day")
        .distinct("channel_id")
        .only("channel_id", "day", "subscribers", "subscribers_by_messenger")
    )
    return {row.channel_id: row for row in rows}


def channel_periods(
    *, start: date, end: date, channels: Sequence[Channel] | None = None, detail: bool = False
) -> list[ChannelPeriod]:
    """Each channel's figures over [start, end] (all channels, in their admin order, when none are
    given), in four queries. `detail` adds sources, posters and every day's joins, leaves and
    subscribers (for one channel's page and its charts); without it those stay empty and the
    sums come from the database."""
    channel_list = list(channels) if channels is not None else list(Channel.objects.order_by("position", "name"))
    ids = [channel.pk for channel in channel_list]
    before = _last_rows(ids, day__lt=start)
    last = _last_rows(ids, day__lte=end)
    inside: dict[int, list[ChannelDay]] = {pk: [] for pk in ids}
    sums: dict[int, tuple[int, int]] = {}
    if detail:
        for row in ChannelDay.objects.filter(channel_id__in=ids, day__gte=start, day__lte=end).order_by("day"):
            inside[row.channel_id].append(row)
        sums = {pk: (sum(r.joins for r in rows), sum(r.leaves for r in rows)) for pk, rows in inside.items()}
    else:
        totals = (
            ChannelDay.objects.filter(channel_id__in=ids, day__gte=start, day__lte=end)
            .values("channel_id")
            .annotate(joins=Sum("joins"), leaves=Sum("leaves"))
            .values_list("channel_id", "joins", "leaves")
        )
        sums = {pk: (joins, leaves) for pk, joins, leaves in totals}
    periods = []
    for channel in channel_list:
        rows = inside[channel.pk]
        baseline, final = before.get(channel.pk), last.get(channel.pk)
        subscribers_start = baseline.subscribers if baseline else 0
        joins, leaves = sums.get(channel.pk, (0, 0))
        sources: Counter[str] = Counter()
        posters: Counter[str] = Counter()
        for row in rows:
            sources.update(row.joins_by_source)
            posters.update(row.joins_by_poster)
        periods.append(
            ChannelPeriod(
                channel=channel,
                start=start,
                end=end,
                subscribers_start=subscribers_start,
                subscribers_end=final.subscribers if final else 0,
                joins=joins,
                leaves=leaves,
                joins_by_source=_most_first(sources),
                joins_by_poster=_most_first(posters),
                messengers_end=_most_first(Counter(final.subscribers_by_messenger if final else {})),
                days=_every_day(rows, start, end, subscribers_start) if detail else [],
            )
        )
    return periods


def _every_day(rows: list[ChannelDay], start: date, end: date, subscribers: int) -> list[DayFigures]:
    by_day = {row.day: row for row in rows}
    result = []
    day = start
    while day <= end:
        row = by_day.get(day)
        if row is not None:
            subscribers = row.subscribers
        result.append(
            DayFigures(day=day, joins=row.joins if row else 0, leaves=row.leaves if row else 0, subscribers=subscribers)
        )
        day += timedelta(days=1)
    return result


def by_week(days: Sequence[DayFigures]) -> list[DayFigures]:
    """Days in runs of seven from the first: each run's joins and leaves summed, dated by its
    first day, with the subscribers at its last day's end."""
    weeks = []
    for start in range(0, len(days), 7):
        run = days[start : start + 7]
        weeks.append(
            DayFigures(
                day=run[0].day,
                joins=sum(d.joins for d in run),
                leaves=sum(d.leaves for d in run),
                subscribers=run[-1].subscribers,
            )
        )
    return weeks


def best_channel_by_subscribers(periods: Iterable[ChannelPeriod]) -> ChannelPeriod | None:
    """The channel with the most subscribers at the period's end (ties: the first in admin
    order); none when no channel has any."""
    best: ChannelPeriod | None = None
    for period in periods:
        if period.subscribers_end > 0 and (best is None or period.subscribers_end > best.subscribers_end):
            best = period
    return best


@dataclass(frozen=True)
class ChannelEngagement:
    """What a channel's broadcasts achieved in a period, from the broadcast roll-up
    (analytics.selectors_broadcasts): `recipients` messages sent to subscribers of the channel,
    `engaged` of them read or clicked (each recipient once)."""

    channel: Channel
    recipients: int
    engaged: int

    @property
    def percent(self) -> float:
        return round(100.0 * self.engaged / self.recipients, 1) if self.recipients else 0.0


def best_channel_by_engagement(
    engagements: Iterable[ChannelEngagement], *, min_recipients: int = MIN_ENGAGEMENT_RECIPIENTS
) -> ChannelEngagement | None:
    """The channel whose broadcasts were read or clicked by the largest share of their
    recipients, among channels with at least `min_recipients` (ties: more recipients first)."""
    ranked = [e for e in engagements if e.recipients >= min_recipients and e.engaged > 0]
    if not ranked:
        return None
    return max(ranked, key=lambda e: (e.engaged / e.recipients, e.recipients))
