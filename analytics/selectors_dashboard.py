"""Reads of the tenant dashboard: the figures at the top of the tenant admin's start page for
people who may see analytics (analytics.roles: admins, editors, approvers; not inbox agents).

Four headline numbers for a period (7, 30 or 90 days) with the change to the period of equal
length before it: reach among recipients, read within 15 minutes and click rate of the
broadcasts that started sending in it (analytics.selectors_broadcasts.headline), and the
subscribers of the best channel by subscribers at the period's end
(analytics.selectors_channels). Then the subscribers of all channels over the period, the
recent broadcasts' messages and reach, and the best channel by engagement.

Engagement per channel (fed to selectors_channels.best_channel_by_engagement), from
BroadcastStats of the broadcasts that started sending in the period:
- a broadcast sent to several channels counts in full for each of its channels (its recipients
  and engaged people are not split: the roll-up does not know which channel a recipient came
  through, and a person in two channels got the message once);
- a broadcast with no channel chosen went to every channel and counts for each of them;
- engaged = the larger of "read" and "people who clicked" (clicks alone for tenants that track
  clicks only in aggregate): the roll-up keeps no overlap of the two, so this is the smallest
  number of recipients who read or clicked (Telegram and e-mail send no read receipts, so a
  click is often the only sign there).

Every function costs a fixed number of queries however many broadcasts, channels and days.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db.models import F, Sum
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from accounts.models import User
from analytics import selectors_channels
from analytics.models import BroadcastStats
from analytics.selectors_broadcasts import ComparisonRow, HeadlineComparison, broadcast_comparison, headline
from analytics.selectors_channels import ChannelEngagement, ChannelPeriod
from channels.models import Channel

PERIODS = (7, 30, 90)
DEFAULT_PERIOD = 30
RECENT_BROADCASTS = 10  # in the chart of messages and reach
PERMISSION = "analytics.view_broadcaststats"  # analytics.roles: admins, editors, approvers


def period_days(raw: str | None) -> int:
    """The chosen period from `?days=`; anything else (missing, hostile) is the default."""
    try:
        days = int(raw or DEFAULT_PERIOD)
    except (TypeError, ValueError):
        return DEFAULT_PERIOD
    return days if days in PERIODS else DEFAULT_PERIOD


def channel_engagements(
    *, start: datetime, end: datetime, channels: list[Channel] | None = None
) -> list[ChannelEngagement]:
    """Per channel, the recipients and engaged people of the broadcasts that started sending in
    [start, end), by the rules in this module's docstring (one query, plus one for the channels
    when none are given). Channels in admin order, every channel listed."""
    channel_list = list(channels) if channels is not None else list(Channel.objects.order_by("position", "name"))
    engaged = Greatest(F("read"), Coalesce(F("unique_clicks"), F("clicks")))
    rows = (
        BroadcastStats.objects.filter(broadcast__send_started_at__gte=start, broadcast__send_started_at__lt=end)
        .values("broadcast__channels")
        .annotate(recipients_sum=Sum("recipients"), engaged_sum=Sum(engaged))
        .values_list("broadcast__channels", "recipients_sum", "engaged_sum")
    )
    totals: dict[int | None, list[int]] = defaultdict(lambda: [0, 0])
    for channel_id, recipients, engaged_count in rows:
        totals[channel_id][0] += recipients or 0
        totals[channel_id][1] += engaged_count or 0
    everywhere = totals.get(None, [0, 0])  # broadcasts to every channel
    return [
        ChannelEngagement(
            channel=channel,
            recipients=totals.get(channel.pk, [0, 0])[0] + everywhere[0],
            engaged=totals.get(channel.pk, [0, 0])[1] + everywhere[1],
        )
        for channel in channel_list
    ]


@dataclass(frozen=True)
class SubscriberDay:
    day: date
    subscribers: int  # summed over every channel: a person in two channels counts in each


@dataclass(frozen=True)
class Dashboard:
    days: int
    start: date  # first day of the period (tenant time zone), for the channel figures
    end: date
    headline: HeadlineComparison
    best_channel: ChannelPeriod | None
    best_channel_before: int | None  # its subscribers at the end of the previous period
    best_engagement: ChannelEngagement | None
    subscribers_by_day: list[SubscriberDay]
    recent: list[ComparisonRow]  # newest first

    def change(self, name: str) -> float | None:
        return self.headline.change(name)

    @property
    def best_channel_change(self) -> int | None:
        if self.best_channel is None or self.best_channel_before is None:
            return None
        return self.best_channel.subscribers_end - self.best_channel_before


def dashboard(user: User, *, days: int) -> Dashboard | None:
    """The dashboard of `user` for the last `days` days, or None when they may not see figures."""
    if not user.is_authenticated or not user.has_perm(PERMISSION):
        return None
    days = days if days in PERIODS else DEFAULT_PERIOD
    now = timezone.now()
    figures = headline(now - timedelta(days=days), now)
    start, end = selectors_channels.period_for(days, today=selectors_channels.tenant_today())
    channels = list(Channel.objects.order_by("position", "name"))
    periods = selectors_channels.channel_periods(start=start, end=end, channels=channels, detail=True)
    best = selectors_channels.best_channel_by_subscribers(periods)
    by_day: dict[date, int] = defaultdict(int)
    for period in periods:
        for day in period.days:
            by_day[day.day] += day.subscribers
    engagements = channel_engagements(start=now - timedelta(days=days), end=now, channels=channels)
    return Dashboard(
        days=days,
        start=start,
        end=end,
        headline=figures,
        best_channel=best,
        # the day before the period is the end of the previous period of equal length
        best_channel_before=best.subscribers_start if best is not None else None,
        best_engagement=selectors_channels.best_channel_by_engagement(engagements),
        subscribers_by_day=[SubscriberDay(day=day, subscribers=count) for day, count in sorted(by_day.items())],
        recent=broadcast_comparison(limit=RECENT_BROADCASTS),
    )
