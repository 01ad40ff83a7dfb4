"""The exportable tables (analytics.export.Table) of each analytics page, built from the same
selector results the page shows, so an export holds the page's numbers (percentages as the
numbers shown, without the "%" sign; money in euros).

None of these tables holds per-person click data: the roll-ups count clicks per broadcast and
link only ("people who clicked" is a count). tests/analytics/test_export_pages.py fails when a
page offers a table marked `per_person_clicks`.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.utils.translation import gettext, pgettext

from analytics.export import Table
from analytics.selectors_broadcasts import BroadcastFigures, ComparisonRow, HeadlineComparison
from analytics.selectors_channels import ChannelPeriod
from analytics.selectors_operator import TenantFigures


def headline_table(figures: HeadlineComparison) -> Table:
    rows = []
    for label, name in (
        (gettext("Reach among recipients (%)"), "reach_pct"),
        (gettext("Read within 15 minutes (%)"), "read_15min_pct"),
        (gettext("Click rate (%)"), "click_rate_pct"),
        (gettext("Broadcasts"), "broadcasts"),
    ):
        rows.append([label, getattr(figures.current, name), getattr(figures.previous, name)])
    return Table(
        key="headline",
        title=gettext("Headline figures"),
        headers=[gettext("Figure"), gettext("This period"), gettext("previous period")],
        rows=rows,
    )


def comparison_table(rows: Sequence[ComparisonRow]) -> Table:
    return Table(
        key="broadcasts",
        title=gettext("Broadcast results"),
        headers=[
            gettext("Broadcast"),
            gettext("Sending started"),
            gettext("Recipients"),
            gettext("Delivered (%)"),
            gettext("Read (%)"),
            gettext("Read within 15 minutes (%)"),
            gettext("Click rate (%)"),
            gettext("Unsubscribed within 24 hours"),
            gettext("Failed"),
            gettext("Cost (EUR)"),
        ],
        rows=[
            [
                row.broadcast.title,
                row.broadcast.send_started_at,
                row.stats.recipients,
                row.delivered_pct,
                row.read_pct,
                row.read_15min_pct,
                row.click_rate_pct,
                row.stats.unsubscribes,
                row.stats.failed,
                row.stats.cost_eur,
            ]
            for row in rows
        ],
    )


def broadcast_tables(figures: BroadcastFigures, title: str) -> list[Table]:
    """A broadcast's results section: its counts, by messenger, and the failures by reason."""
    s = figures.stats
    counts: list[list[object]] = [
        [gettext("Recipients"), s.recipients],
        [gettext("Sent"), s.sent],
        [gettext("Delivered (%)"), figures.delivered_pct],
        [gettext("Read (%)"), figures.read_pct],
        [gettext("Read within 15 minutes (%)"), figures.read_15min_pct],
        [gettext("Click rate (%)"), figures.click_rate_pct],
    ]
    if figures.per_person_clicks:
        # a count of people, not who they are
        counts.append([gettext("People who clicked"), s.unique_clicks])
    counts += [
        [gettext("Clicks"), s.clicks],
        [gettext("Unsubscribed within 24 hours"), s.unsubscribes],
        [gettext("Cost (EUR)"), s.cost_eur],
    ]
    return [
        Table(
            key="results",
            title=gettext("Results of %(title)s") % {"title": title},
            headers=[gettext("Figure"), gettext("Value")],
            rows=counts,  # type: ignore[arg-type]
        ),
        Table(
            key="by-messenger",
            title=gettext("By messenger"),
            headers=[
                gettext("Messenger"),
                gettext("Recipients"),
                gettext("Sent"),
                gettext("Delivered"),
                gettext("Delivered (%)"),
                gettext("Read"),
                gettext("Read (%)"),
                gettext("Failed"),
            ],
            rows=[
                [
                    row["messenger"],
                    row.get("recipients"),
                    row.get("sent"),
                    row.get("delivered"),
                    row["delivered_pct"],
                    row.get("read"),
                    row["read_pct"],
                    row.get("failed"),
                ]
                for row in figures.providers
            ],
        ),
        Table(
            key="failures",
            title=gettext("Not delivered, by reason and messenger"),
            headers=[gettext("Reason"), gettext("Messenger"), gettext("Outcome"), gettext("Recipients")],
            rows=[
                [
                    row["reason"],
                    row["messenger"],
                    gettext("Failed") if row["status"] == "failed" else gettext("Skipped"),
                    row["count"],
                ]
                for row in figures.failures
            ],
        ),
    ]


def channel_periods_table(periods: Sequence[ChannelPeriod]) -> Table:
    return Table(
        key="channels",
        title=gettext("Channels in the period"),
        headers=[
            gettext("Channel"),
            gettext("Subscribers at the start"),
            gettext("Joined"),
            gettext("Left"),
            gettext("Subscribers at the end"),
            gettext("Churn rate (%)"),
        ],
        rows=[
            [p.channel.name, p.subscribers_start, p.joins, p.leaves, p.subscribers_end, p.churn_percent]
            for p in periods
        ],
    )


def channel_detail_tables(
    period: ChannelPeriod, sources: Sequence[tuple[str, int]], messengers: Sequence[tuple[str, int]]
) -> list[Table]:
    name = period.channel.name
    return [
        Table(
            key="days",
            title=gettext("Figures of %(channel)s per day") % {"channel": name},
            headers=[pgettext("chart table", "Day"), gettext("Joined"), gettext("Left"), gettext("Subscribers")],
            rows=[[d.day, d.joins, d.leaves, d.subscribers] for d in period.days],
        ),
        Table(
            key="sources",
            title=gettext("How people joined"),
            headers=[gettext("Source"), gettext("Joined")],
            rows=[list(pair) for pair in sources],
        ),
        Table(
            key="posters",
            title=gettext("QR posters"),
            headers=[gettext("Poster code"), gettext("Joined")],
            rows=[[code, count] for code, count in period.joins_by_poster.items()],
        ),
        Table(
            key="messengers",
            title=gettext("Subscribers by messenger"),
            headers=[gettext("Messenger"), gettext("Subscribers")],
            rows=[list(pair) for pair in messengers],
        ),
    ]


def tenant_figures_table(rows: Sequence[TenantFigures]) -> Table:
    return Table(
        key="tenants",
        title=gettext("Tenant figures"),
        headers=[
            gettext("Tenant"),
            gettext("Status"),
            gettext("Subscribers"),
            gettext("Messages per day"),
            gettext("Delivery error rate (%)"),
            gettext("Active channels"),
            gettext("Last activity"),
            gettext("Figures from"),
        ],
        rows=[
            [
                row.tenant.name,
                row.tenant.get_status_display(),
                row.subscribers,
                row.messages_per_day,
                row.error_percent,
                row.channels_active,
                row.last_activity_at,
                row.computed_at,
            ]
            for row in rows
        ],
    )
