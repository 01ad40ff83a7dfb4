"""The demo history (analytics/demo.py, a seed_demo hook): reproducible, idempotent and
consistent — delivery times in order, the consent ledger matching the subscriptions."""

from __future__ import annotations

import io
from collections import Counter
from types import SimpleNamespace
from typing import Any

import pytest
from django.conf import settings
from django.db.models import Count, F, Q
from django.utils.module_loading import import_string

from analytics.selectors_inbox import inbox_figures, period_bounds
from broadcasts.models import Broadcast, Delivery, LinkClick, TrackedLink
from inbox.models import Conversation, Entry
from subscribers.models import ConsentEvent, Source, Subscriber, Subscription

pytestmark = pytest.mark.usefixtures("tenant")


def as_stuttgart(tenant: Any, link_tracking: str = "aggregate") -> SimpleNamespace:
    """The test tenant's schema, seeded as the demo seeds Stuttgart."""
    return SimpleNamespace(
        schema_name="stuttgart", kind="city", timezone="Europe/Berlin", link_tracking=link_tracking, pk=tenant.pk
    )


def seed_all(tenant: Any) -> str:
    out = io.StringIO()
    for hook in settings.DEMO_SEED_HOOKS:
        import_string(hook)(tenant=tenant, stdout=out)
    return out.getvalue()


def counts() -> dict[str, Any]:
    return {
        "subscribers": Subscriber.objects.count(),
        "subscriptions": Subscription.objects.count(),
        "events": ConsentEvent.objects.count(),
        "broadcasts": Broadcast.objects.filter(status=Broadcast.Status.SENT).count(),
        "deliveries": Counter(Delivery.objects.values_list("status", flat=True)),
        "clicks": sorted(TrackedLink.objects.values_list("clicks", flat=True)),
        "sources": Counter(Subscription.objects.values_list("source", flat=True)),
        "conversations": Conversation.objects.count(),
        "entries": Entry.objects.count(),
    }


def test_seeding_twice_adds_nothing_and_the_history_is_plausible(tenant: Any) -> None:
    demo = as_stuttgart(tenant)
    output = seed_all(demo)
    assert "demo history with 900 new subscriber(s), 12 sent broadcast(s)" in output
    first = counts()
    assert "demo history with 0 new subscriber(s), 0 sent broadcast(s)" in seed_all(demo)
    assert counts() == first
    # a dozen sent broadcasts with most recipients reached and read, some failures with real kinds
    assert first["broadcasts"] == 12
    statuses = first["deliveries"]
    total = sum(statuses.values())
    assert total > 3000
    assert statuses["read"] / total > 0.5 and 0 < statuses["failed"] / total < 0.06
    kinds = set(Delivery.objects.filter(status="failed").values_list("error_kind", flat=True))
    assert (
        kinds <= {"not_on_messenger", "blocked", "invalid_recipient", "temporary", "window_closed"} and len(kinds) >= 3
    )
    # realistic sources, QR subscriptions name a poster that exists
    assert {Source.KEYWORD, Source.QR, Source.WEB_FORM, Source.IMPORT, Source.API} <= set(first["sources"])
    from subscribers.models import Poster

    codes = set(Poster.objects.values_list("code", flat=True))
    assert set(Subscription.objects.filter(source=Source.QR).values_list("source_detail", flat=True)) <= codes | {""}
    assert Subscription.objects.filter(source=Source.QR, subscriber__external_ref__startswith="demo-h-").exists()
    # aggregate-only tracking: click counters, no per-person clicks
    assert sum(first["clicks"]) > 0 and not LinkClick.objects.exists()
    # most reads come within minutes, and some after hours (the long tail)
    read = list(Delivery.objects.filter(status="read").values_list("delivered_at", "read_at"))
    delays = sorted((r - d).total_seconds() for d, r in read if r is not None and d is not None)
    assert delays[len(delays) // 2] < 15 * 60 and delays[-1] > 6 * 3600
    # the inbox has 90 days of answered and closed conversations, some per department
    assert first["conversations"] == 4 + 120
    report = inbox_figures(start=period_bounds(90)[0], end=period_bounds(90)[1])
    assert report.total.opened >= 120 and report.total.answered == 120 and report.total.closed == 120
    assert report.total.first_response_median is not None and len(report.departments) == 3


def test_the_history_is_consistent(tenant: Any) -> None:
    seed_all(as_stuttgart(tenant, link_tracking="per_recipient"))
    # every delivery's times in order, and its status matching the times it has
    assert not Delivery.objects.filter(Q(delivered_at__lt=F("sent_at")) | Q(read_at__lt=F("delivered_at"))).exists()
    assert not Delivery.objects.filter(read_at__isnull=False, delivered_at__isnull=True).exists()
    assert not Delivery.objects.filter(delivered_at__isnull=False, sent_at__isnull=True).exists()
    for status, field in (("read", "read_at"), ("delivered", "delivered_at"), ("sent", "sent_at")):
        assert not Delivery.objects.filter(status=status, **{f"{field}__isnull": True}).exists()
    assert not Delivery.objects.filter(status="failed").exclude(error_kind="").filter(sent_at__isnull=False).exists()
    assert not Delivery.objects.filter(sent_at__lt=F("broadcast__send_started_at")).exists()
    # recipients were subscribed to one of the broadcast's channels when it went out
    for delivery in Delivery.objects.select_related("broadcast").order_by("?")[:200]:
        at = delivery.broadcast.send_started_at
        assert Subscription.objects.filter(
            Q(unsubscribed_at__isnull=True) | Q(unsubscribed_at__gt=at),
            subscriber=delivery.subscriber_id,
            channel__in=delivery.broadcast.channels.all(),
            subscribed_at__lte=at,
        ).exists()
    # per-recipient tracking: per-person clicks add up to the counters, after the read
    for link in TrackedLink.objects.annotate(rows=Count("recipient_clicks")):
        assert link.rows == link.clicks
    assert not LinkClick.objects.filter(at__lt=F("delivery__read_at")).exists()
    # conversations: answered after opening, closed after answering; their entries at those times
    for conversation in Conversation.objects.filter(status="closed").prefetch_related("entries"):
        assert conversation.first_response_at is not None and conversation.closed_at is not None
        assert conversation.opened_at < conversation.first_response_at < conversation.closed_at
        times = {e.kind: e.created_at for e in conversation.entries.all()}
        assert times == {"inbound": conversation.opened_at, "reply": conversation.first_response_at}
    # the ledger matches the subscriptions of the history's people
    history = Subscription.objects.filter(subscriber__external_ref__startswith="demo-h-")
    for subscription in history.select_related("subscriber"):
        opt_in = ConsentEvent.objects.filter(
            subscriber=subscription.subscriber, channel=subscription.channel, kind="opt_in"
        ).get()
        assert opt_in.at == subscription.subscribed_at and opt_in.source == subscription.source
        if subscription.source == Source.WEB_FORM:
            confirmation = ConsentEvent.objects.get(
                subscriber=subscription.subscriber, channel=subscription.channel, kind="confirmation"
            )
            assert confirmation.at == subscription.confirmed_at
        opt_outs = ConsentEvent.objects.filter(
            Q(channel=subscription.channel) | Q(channel__isnull=True),
            subscriber=subscription.subscriber,
            kind="opt_out",
        )
        if subscription.status == Subscription.Status.UNSUBSCRIBED:
            assert [e.at for e in opt_outs] == [subscription.unsubscribed_at]
            assert subscription.unsubscribed_at is not None and subscription.confirmed_at is not None
            assert subscription.unsubscribed_at > subscription.confirmed_at
        else:
            assert subscription.status == Subscription.Status.ACTIVE and not opt_outs.exists()
    # per channel: opt-ins minus opt-outs is the number of active subscriptions
    events = ConsentEvent.objects.filter(subscriber__external_ref__startswith="demo-h-")
    for channel_id in history.values_list("channel_id", flat=True).distinct():
        ins = events.filter(kind="opt_in", channel_id=channel_id).count()
        outs = history.filter(channel_id=channel_id, status="unsubscribed").count()
        assert ins - outs == history.filter(channel_id=channel_id, status="active").count()
