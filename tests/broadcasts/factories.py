"""Channels, subscribers and contacts for broadcast tests, written in bulk (fast for thousands)."""

from __future__ import annotations

from collections.abc import Sequence

from django.utils import timezone

from channels.models import Channel
from messengers.models import Connection, Contact
from subscribers.models import District, Subscriber, Subscription


def make_channel(
    name: str,
    connections: Sequence[Connection],
    *,
    requires_approval: bool = True,
    alarm: bool = False,
    public: bool = True,
    priority: str = "normal",
) -> Channel:
    base = name.lower().replace(" ", "-")
    slug, n = base, 1
    while Channel.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    channel = Channel.objects.create(
        name=name,
        slug=slug,
        keywords=[name.upper().replace(" ", "") + (str(n) if n > 1 else "")],
        requires_approval=requires_approval,
        is_alarm=alarm,
        is_public=public,
        default_priority=priority,
        alarm_text_start=f"{name}: Alarm!",
        alarm_text_end=f"{name}: Entwarnung.",
    )
    channel.connections.set(list(connections))
    return channel


def make_subscribers(
    count: int,
    channels: Sequence[Channel],
    connection: Connection,
    *,
    language: str = "de",
    district: District | None = None,
    tags: Sequence[str] = (),
    prefix: str = "+4915500",
    last_inbound: bool = False,
) -> list[Subscriber]:
    subscribers = Subscriber.objects.bulk_create(
        [Subscriber(language=language, district=district, tags=list(tags)) for _ in range(count)]
    )
    now = timezone.now()
    start = Contact.objects.filter(connection=connection).count()
    Contact.objects.bulk_create(
        [
            Contact(
                connection=connection,
                subscriber=s,
                address=f"{prefix}{start + i:06d}",
                last_inbound_at=now if last_inbound else None,
            )
            for i, s in enumerate(subscribers)
        ]
    )
    Subscription.objects.bulk_create(
        [
            Subscription(subscriber=s, channel=c, status=Subscription.Status.ACTIVE, source="import", subscribed_at=now)
            for s in subscribers
            for c in channels
        ]
    )
    return subscribers
