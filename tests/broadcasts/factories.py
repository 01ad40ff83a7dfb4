"""Subscribers and contacts for broadcast tests (channels: tests.channels.factories), written in bulk (fast for thousands)."""

from __future__ import annotations

from collections.abc import Sequence

from django.utils import timezone

from channels.models import Channel
from messengers.models import Connection, Contact
from subscribers.models import District, Subscriber, Subscription


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
