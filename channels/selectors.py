"""Reads of channels: public lists, keyword lookup, alarm status, the widget's embed code, the admin
list. Subscriber
counts per channel are the subscribers app's (subscribers.selectors.subscription_counts_by_channel)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet
from django.urls import reverse
from django.utils.html import format_html

from channels.keywords import match_key
from channels.models import AlarmStateChange, Channel
from tenants.selectors import tenant_absolute_url

# Traffic-light colour of each alarm state (the widget and the JSON endpoint).
STATE_COLOURS = {
    Channel.AlarmState.INACTIVE: "green",
    Channel.AlarmState.ANNOUNCED: "amber",
    Channel.AlarmState.ACTIVE: "red",
    Channel.AlarmState.ALL_CLEAR: "green",
}


def channel_list_public() -> QuerySet[Channel]:
    """Channels citizens may see and join (subscribe page, keyword commands)."""
    return Channel.objects.filter(is_public=True, is_active=True).order_by("position", "name")


def channel_list_for_connection(connection_id: int) -> list[Channel]:
    """Public channels carried by one messenger connection (what a keyword there may join)."""
    return list(channel_list_public().filter(connections__pk=connection_id).distinct())


def channel_get_public(slug: str) -> Channel | None:
    return channel_list_public().filter(slug=slug).first()


def channel_by_word(channels: list[Channel], word: str) -> Channel | None:
    """The channel whose keyword, slug or name matches what a person typed."""
    key = match_key(word)
    if not key:
        return None
    for channel in channels:
        if key in {match_key(k) for k in channel.keywords}:
            return channel
    for channel in channels:
        if key in (match_key(channel.slug), match_key(channel.name)):
            return channel
    return None


def channel_keyword_owner(key: str, exclude_pk: int | None = None) -> Channel | None:
    """The channel (any, active or not) already using a keyword with this match key."""
    candidates = Channel.objects.only("pk", "name", "keywords")
    if exclude_pk is not None:
        candidates = candidates.exclude(pk=exclude_pk)
    for channel in candidates:
        if key in {match_key(k) for k in channel.keywords}:
            return channel
    return None


def channel_primary_keyword(channel: Channel) -> str:
    return channel.keywords[0] if channel.keywords else match_key(channel.slug).replace(" ", "")


# What the public widget and JSON say, in both languages from day one (citizen-facing, like the
# keyword replies; the admin's labels come from the .po catalogue).
STATE_LABELS: dict[str, dict[str, str]] = {
    "de": {"inactive": "Kein Alarm", "announced": "Alarm angekündigt", "active": "Alarm aktiv",
           "all_clear": "Entwarnung"},
    "en": {"inactive": "No alarm", "announced": "Alarm announced", "active": "Alarm active",
           "all_clear": "All clear"},
}  # fmt: skip


@dataclass(frozen=True)
class AlarmStatus:
    slug: str
    name: str
    state: str
    colour: str
    since: datetime | None

    def label(self, language: str) -> str:
        return STATE_LABELS["en" if language == "en" else "de"][self.state]


def channel_alarm_status(slug: str) -> AlarmStatus | None:
    """The public state of a public alarm channel, or None (unknown, internal, not an alarm).
    Staff notes on state changes are internal and never part of it."""
    channel = (
        channel_list_public()
        .filter(slug=slug, is_alarm=True)
        .only("slug", "name", "alarm_state", "alarm_state_changed_at")
        .first()
    )
    if channel is None:
        return None
    state = Channel.AlarmState(channel.alarm_state)
    return AlarmStatus(
        slug=channel.slug, name=channel.name, state=state.value, colour=STATE_COLOURS[state],
        since=channel.alarm_state_changed_at,
    )  # fmt: skip


# The embedded box: the widget's flexible layout fits name, state, time and link into it.
WIDGET_WIDTH, WIDGET_HEIGHT = 360, 110


@dataclass(frozen=True)
class WidgetEmbed:
    url: str  # the widget page on the tenant's primary domain
    code: str  # the <iframe> a city pastes into its own website
    live: bool  # False: the widget answers 404 until the channel is a public, active alarm channel


def channel_widget_embed(channel: Channel) -> WidgetEmbed:
    """The status widget's absolute URL and the HTML snippet that embeds it on another site."""
    url = tenant_absolute_url(reverse("channels:status_widget", args=[channel.slug]))
    code = format_html(
        '<iframe src="{}" title="{}" width="{}" height="{}" style="border:0;max-width:100%" loading="lazy"></iframe>',
        url, channel.name, WIDGET_WIDTH, WIDGET_HEIGHT,
    )  # fmt: skip
    return WidgetEmbed(url=url, code=str(code), live=channel.is_alarm and channel.is_public and channel.is_active)


def channel_list_admin() -> QuerySet[Channel]:
    return Channel.objects.all()


def alarm_history(channel: Channel, limit: int = 50) -> QuerySet[AlarmStateChange]:
    return AlarmStateChange.objects.filter(channel=channel).select_related("changed_by").order_by("-at", "-pk")[:limit]


def channel_exists() -> bool:
    return Channel.objects.exists()
