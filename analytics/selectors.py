"""Reads for the tenant admin's start page: the "first steps" a new tenant's admin takes, and
what needs each person now, what is sending, what went out and how many people subscribe.

Each step is done when the data says so (a real messenger is connected, a channel exists,
someone subscribed through the subscribe page's form or widget), read through the owning
app's selectors; the list shows to admins until every step is done or they hide it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.urls import reverse
from django.utils import timezone
from django_tenants.utils import get_public_schema_name

from accounts import roles
from accounts.models import User
from accounts.selectors import user_role_names
from analytics.models import TenantRollup
from broadcasts.models import Broadcast
from broadcasts.selectors import (
    Progress,
    broadcast_list_awaiting_approval_by,
    broadcast_list_awaiting_review_by,
    broadcast_list_latest_sent,
    broadcast_list_paused,
    broadcast_list_rejected_of,
    broadcast_list_sending,
    broadcast_progress_many,
    user_can_approve,
    user_can_review,
)
from channels.selectors import channel_exists
from messengers.models import Connection
from messengers.selectors import connection_exists_outside_sandbox, connection_list_in_trouble
from subscribers.selectors import SubscriberCount, subscriber_count_change, subscription_exists_from_website
from tenants.models import Tenant
from tenants.selectors import tenant_absolute_url


@dataclass(frozen=True)
class FirstSteps:
    messenger_connected: bool
    channel_created: bool
    subscribe_page_used: bool
    subscribe_url: str

    @property
    def all_done(self) -> bool:
        return self.messenger_connected and self.channel_created and self.subscribe_page_used


def first_steps(*, user: User) -> FirstSteps | None:
    """The steps to show `user` on the start page, or None when there is nothing to show: not a
    tenant admin, list hidden, or every step done."""
    if not user.is_authenticated or user.first_steps_dismissed_at is not None:
        return None
    if roles.ADMIN not in user_role_names(user):
        return None
    steps = FirstSteps(
        messenger_connected=connection_exists_outside_sandbox(),
        channel_created=channel_exists(),
        subscribe_page_used=subscription_exists_from_website(),
        subscribe_url=tenant_absolute_url(reverse("subscribers:subscribe")),
    )
    return None if steps.all_done else steps


# --------------------------------------------------------------------------------------------
# The start page: what needs me, what is sending, what went out, how many people listen
# --------------------------------------------------------------------------------------------
LIST_LIMIT = 10  # rows per "needs you" list; the card links to the full list
LATEST_SENT = 5
SUBSCRIBER_CHANGE_DAYS = 7
# A send is failing when at least this share of what was tried so far failed (and at least
# FAILING_MIN rows, so one bad number at the start does not raise the alarm).
FAILING_SHARE = 0.1
FAILING_MIN = 5


@dataclass(frozen=True)
class BroadcastProgress:
    """A broadcast with its delivery counts (one grouped query for the whole list)."""

    broadcast: Broadcast
    progress: Progress

    @property
    def reached(self) -> int:
        """Delivered to the phone (read implies delivered)."""
        return self.progress.delivered + self.progress.read

    def _percent(self, count: int) -> float:
        return round(100.0 * count / self.progress.total, 1) if self.progress.total else 0.0

    @property
    def reached_percent(self) -> float:
        return self._percent(self.reached)

    @property
    def read_percent(self) -> float:
        return self._percent(self.progress.read)

    @property
    def failed_percent(self) -> float:
        return self._percent(self.progress.failed)

    @property
    def tried(self) -> int:
        return self.progress.done - self.progress.skipped

    @property
    def failing(self) -> bool:
        failed = self.progress.failed
        return failed >= FAILING_MIN and failed >= FAILING_SHARE * max(self.tried, 1)


@dataclass(frozen=True)
class NeedsMe:
    """What waits for this person. A list is None when their role has nothing to do with it
    (the page leaves it out), and empty when there is nothing to do."""

    to_approve: list[Broadcast] | None
    to_review: list[Broadcast] | None
    rejected: list[Broadcast] | None
    paused: list[Broadcast] | None
    failing: list[BroadcastProgress] | None
    connections: list[Connection] | None
    to_approve_more: bool = False  # more wait than to_approve lists

    @property
    def count(self) -> int:
        lists: list[Sequence[Any] | None] = [
            self.to_approve,
            self.to_review,
            self.rejected,
            self.paused,
            self.failing,
            self.connections,
        ]
        return sum(len(items) for items in lists if items)


@dataclass(frozen=True)
class StartPage:
    """The start page of one person: each section is None when their role does not allow it."""

    needs_me: NeedsMe
    sending: list[BroadcastProgress] | None
    latest_sent: list[BroadcastProgress] | None
    subscribers: SubscriberCount | None

    @property
    def approver_first(self) -> bool:
        """Approvers land on "To approve": the page shows it before everything else."""
        return self.needs_me.to_approve is not None


def sending_progress() -> list[BroadcastProgress]:
    """Broadcasts sending now with their counts, in two queries (the page and its live JSON)."""
    sending = list(broadcast_list_sending())
    progress = broadcast_progress_many(sending)
    return [BroadcastProgress(broadcast=b, progress=progress[b.pk]) for b in sending]


def start_page(user: User) -> StartPage:
    """Everything the start page shows `user`, in a number of queries that does not grow with
    the data (at most one or two per section)."""
    may_view = user.has_perm("broadcasts.view_broadcast")
    may_control = user.has_perm("broadcasts.control_sending")
    sending = sending_progress() if may_view or may_control else None
    # one more than shown tells whether there are more (the badge says "10+"), without a count
    to_approve = (
        list(broadcast_list_awaiting_approval_by(user).select_related("author")[: LIST_LIMIT + 1])
        if user_can_approve(user)
        else None
    )
    needs_me = NeedsMe(
        to_approve=to_approve[:LIST_LIMIT] if to_approve is not None else None,
        to_approve_more=to_approve is not None and len(to_approve) > LIST_LIMIT,
        to_review=list(broadcast_list_awaiting_review_by(user).select_related("bypassed_by")[:LIST_LIMIT])
        if user_can_review(user)
        else None,
        rejected=list(broadcast_list_rejected_of(user)[:LIST_LIMIT])
        if user.has_perm("broadcasts.add_broadcast")
        else None,
        paused=list(broadcast_list_paused()[:LIST_LIMIT]) if may_control else None,
        failing=[item for item in sending or [] if item.failing] if may_control else None,
        connections=list(connection_list_in_trouble()[:LIST_LIMIT])
        if user.has_perm("messengers.change_connection")
        else None,
    )
    latest_sent: list[BroadcastProgress] | None = None
    if may_view:
        sent = list(broadcast_list_latest_sent()[:LATEST_SENT])
        progress = broadcast_progress_many(sent)
        latest_sent = [BroadcastProgress(broadcast=b, progress=progress[b.pk]) for b in sent]
    subscribers = (
        subscriber_count_change(since=timezone.now() - timedelta(days=SUBSCRIBER_CHANGE_DAYS))
        if user.has_perm("subscribers.view_subscriber")
        else None
    )
    return StartPage(
        needs_me=needs_me,
        sending=sending if may_view else None,
        latest_sent=latest_sent,
        subscribers=subscribers,
    )


# --------------------------------------------------------------------------------------------
# The operator's start page (public schema): read from the roll-ups, never from tenant schemas
# --------------------------------------------------------------------------------------------
PLATFORM_FIGURES = [
    "subscribers_active",
    "users",
    "broadcasts_sending",
    "broadcasts_waiting_approval",
    "messages_sent_24h",
    "messages_failed_24h",
    "connections_paused",
    "webhook_events_failed",
]
# Figures that mean a tenant may need the operator's help.
TROUBLE_FIGURES = ["connections_paused", "messages_failed_24h", "webhook_events_failed"]
# The roll-up task runs every 5 minutes (analytics.schedules); older figures mean it stalls.
ROLLUP_STALE_AFTER = timedelta(minutes=15)


@dataclass(frozen=True)
class TenantTrouble:
    tenant: Tenant
    figures: dict[str, int]


@dataclass(frozen=True)
class PlatformOverview:
    active: int
    suspended: int
    # active, but not live yet: no figures so far, or nobody subscribed
    setting_up: int
    figures: dict[str, int]
    stale: list[Tenant]  # active tenants whose figures are missing or older than ROLLUP_STALE_AFTER
    trouble: list[TenantTrouble]

    @property
    def total(self) -> int:
        return self.active + self.suspended


def platform_overview() -> PlatformOverview:
    """Tenants by state and the platform's figures, summed from each tenant's roll-up (one
    query for every tenant with its roll-up; no query into any tenant's schema)."""
    tenants = list(
        Tenant.objects.exclude(schema_name=get_public_schema_name()).select_related("rollup").order_by("name")
    )
    now = timezone.now()
    figures = dict.fromkeys(PLATFORM_FIGURES, 0)
    active = suspended = setting_up = 0
    stale: list[Tenant] = []
    trouble: list[TenantTrouble] = []
    for tenant in tenants:
        if tenant.status == Tenant.Status.SUSPENDED:
            suspended += 1
            continue
        active += 1
        rollup: TenantRollup | None = getattr(tenant, "rollup", None)
        metrics = rollup.metrics if rollup is not None else {}
        if not metrics.get("subscribers_active"):
            setting_up += 1
        if rollup is None or now - rollup.computed_at > ROLLUP_STALE_AFTER:
            stale.append(tenant)
        for key in PLATFORM_FIGURES:
            figures[key] += int(metrics.get(key) or 0)
        problems = {key: int(metrics.get(key) or 0) for key in TROUBLE_FIGURES}
        if any(problems.values()):
            trouble.append(TenantTrouble(tenant=tenant, figures=problems))
    return PlatformOverview(
        active=active,
        suspended=suspended,
        setting_up=setting_up,
        figures=figures,
        stale=stale,
        trouble=trouble,
    )
