"""Generated broadcast history for the roll-up tests, and the brute-force count every roll-up
number is compared with (plain Python over every row, sharing no code with the roll-up).

The generator writes rows as the pipeline leaves them (sent times after the start, delivered
no later than read) and varies everything the figures depend on: statuses, error kinds,
messengers with and without prices, SMS texts of several parts, times before and after the
15-minute and 24-hour marks, clocks a little off, clicks with and without a person, repeated
clicks, opt-outs from one channel or all, before, inside and after each window."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone

from accounts import roles
from broadcasts import services
from broadcasts.models import Broadcast, Delivery, LinkClick, TrackedLink
from broadcasts.selectors import sms_segments
from channels.models import Channel
from messengers.adapters.base import ErrorKind, StatusEvent
from messengers.models import Connection
from messengers.selectors import connection_sandbox
from subscribers.models import ConsentEvent, Source, Subscriber
from tests.channels.factories import make_channel
from tests.factories import make_user

BUCKET = timedelta(minutes=15)
BUCKETS = 96
DAY = timedelta(hours=24)
KINDS = [ErrorKind.BLOCKED, ErrorKind.NOT_ON_MESSENGER, ErrorKind.WINDOW_CLOSED, ErrorKind.BAD_REQUEST]


@dataclass
class World:
    now: datetime
    connections: list[Connection]
    channels: list[Channel]
    subscribers: list[Subscriber]
    broadcasts: list[Broadcast] = field(default_factory=list)


def make_world(rng: random.Random, *, broadcasts: int = 8, people: int = 50) -> World:
    now = timezone.now()
    sandbox = connection_sandbox()
    assert sandbox is not None
    whatsapp = Connection.objects.create(provider="whatsapp", name="WA", price_per_message=Decimal("0.0712"))
    sms = Connection.objects.create(provider="sms", name="SMS", price_per_message=Decimal("0.0790"))
    channels = [make_channel("Verkehr", ["VERKEHR"]), make_channel("Feinstaub", ["FEINSTAUB"])]
    subscribers = Subscriber.objects.bulk_create([Subscriber(language="de") for _ in range(people)])
    world = World(now, [sandbox, whatsapp, sms], channels, subscribers)
    author = make_user(roles.EDITOR)
    ages = [timedelta(days=9), timedelta(days=3), timedelta(hours=30), timedelta(hours=20), timedelta(hours=5)]
    ages += [timedelta(hours=2), timedelta(minutes=40)]
    for i in range(broadcasts):
        text = "Kurz." if rng.random() < 0.5 else "Lang " * rng.randint(40, 90)
        broadcast = services.broadcast_create(
            author=author,
            title=f"Generated {i}",
            channels=rng.sample(channels, rng.randint(1, 2)),
            variants={"de": text, **({"en": "Short."} if rng.random() < 0.3 else {})},
        )
        start = now - rng.choice(ages) - timedelta(minutes=rng.randint(0, 50))
        status = rng.choice([Broadcast.Status.SENT] * 4 + [Broadcast.Status.CANCELLED, Broadcast.Status.SENDING])
        Broadcast.objects.filter(pk=broadcast.pk).update(
            status=status,
            send_started_at=start,
            send_finished_at=start + timedelta(minutes=30) if status == Broadcast.Status.SENT else None,
        )
        broadcast.refresh_from_db()
        world.broadcasts.append(broadcast)
        _deliveries(rng, world, broadcast)
        _clicks(rng, broadcast)
    _opt_outs(rng, world)
    return world


def _deliveries(rng: random.Random, world: World, broadcast: Broadcast) -> None:
    assert broadcast.send_started_at is not None
    start = broadcast.send_started_at
    rows = []
    for person in rng.sample(world.subscribers, rng.randint(len(world.subscribers) // 3, len(world.subscribers))):
        connection = rng.choice(world.connections)
        roll = rng.random()
        open_ok = broadcast.status == Broadcast.Status.SENDING
        status = (
            Delivery.Status.QUEUED
            if open_ok and roll < 0.15
            else rng.choice(["skipped", "failed", "sent", "delivered", "delivered", "read", "read", "read"])
        )
        sent_at = start + timedelta(seconds=rng.randint(0, 1800)) if status not in ("queued", "skipped") else None
        if status == "failed" and rng.random() < 0.4:
            sent_at = None  # refused when sending
        delivered_at = read_at = None
        if status in ("delivered", "read"):
            assert sent_at is not None
            delivered_at = sent_at + timedelta(seconds=rng.choice([-30, 2, 40, 600, 3000, 20000, 90000]))
        if status == "read":
            assert delivered_at is not None
            read_at = delivered_at + timedelta(seconds=rng.choice([0, 60, 800, 899, 901, 3600, 80000]))
        kind = ""
        if status == "failed":
            kind = rng.choice(KINDS).value
        elif status == "skipped":
            kind = rng.choice(["opted_out", "cancelled"])
        rows.append(
            Delivery(
                broadcast=broadcast,
                subscriber=person,
                connection=connection,
                language=rng.choice(["de", "de", "en"]),
                status=status,
                next_attempt_at=start,
                sent_at=sent_at,
                delivered_at=delivered_at,
                read_at=read_at,
                error_kind=kind,
                provider_message_id=f"gen-{broadcast.pk}-{person.pk}" if sent_at else "",
                possible_duplicate=rng.random() < 0.05,
                use_template=connection.provider == "whatsapp" and rng.random() < 0.5,
            )
        )
    Delivery.objects.bulk_create(rows)


def _clicks(rng: random.Random, broadcast: Broadcast) -> None:
    assert broadcast.send_started_at is not None
    deliveries = list(Delivery.objects.filter(broadcast=broadcast, sent_at__isnull=False))
    for position in range(rng.randint(0, 2)):
        link = TrackedLink.objects.create(broadcast=broadcast, position=position, url=f"https://example.org/{position}")
        clicks = [
            LinkClick(link=link, delivery=delivery)
            for delivery in rng.sample(deliveries, min(len(deliveries), rng.randint(0, 12)))
            for _ in range(rng.randint(1, 3))
        ]
        clicks += [LinkClick(link=link, delivery=None) for _ in range(rng.randint(0, 2))]
        created = LinkClick.objects.bulk_create(clicks)
        for click in created:
            click.at = broadcast.send_started_at + timedelta(seconds=rng.choice([-5, 30, 700, 5000, 40000, 100000]))
        LinkClick.objects.bulk_update(created, ["at"])
        # the counter also holds clicks that recorded no person (aggregate-only times)
        TrackedLink.objects.filter(pk=link.pk).update(clicks=len(created) + rng.randint(0, 5))


def _opt_outs(rng: random.Random, world: World) -> None:
    events = []
    for person in rng.sample(world.subscribers, len(world.subscribers) // 2):
        for _ in range(rng.randint(1, 2)):
            at = world.now - timedelta(seconds=rng.randint(0, 10 * 86400))
            events.append(
                ConsentEvent(
                    subscriber=person,
                    channel=rng.choice([None, *world.channels]),
                    kind=rng.choice([ConsentEvent.Kind.OPT_OUT] * 3 + [ConsentEvent.Kind.OPT_IN]),
                    source=Source.KEYWORD,
                    at=at,
                )
            )
    ConsentEvent.objects.bulk_create(events)


def late_events(rng: random.Random, world: World, count: int = 30) -> list[StatusEvent]:
    """Status events for rows that were sent: some move them on, some repeat or contradict."""
    rows = list(Delivery.objects.filter(broadcast__in=world.broadcasts).exclude(provider_message_id=""))
    events = []
    for row in rng.sample(rows, min(count, len(rows))):
        assert row.sent_at is not None
        status = rng.choice(["delivered", "read", "read", "failed", "sent"])
        at = row.sent_at + timedelta(seconds=rng.choice([5, 500, 1000, 7000, 95000]))
        events.append(
            StatusEvent(
                provider_message_id=row.provider_message_id,
                status=status,  # type: ignore[arg-type]
                at=at,
                error_code="131026" if status == "failed" else "",
                error_title="Receiver incapable" if status == "failed" else "",
                error_kind=ErrorKind.NOT_ON_MESSENGER if status == "failed" else None,
            )
        )
    return events


# --------------------------------------------------------------------------------------------
# Brute force
# --------------------------------------------------------------------------------------------
def _bucket(at: datetime, start: datetime) -> int:
    return max(0, math.floor((at - start).total_seconds() / BUCKET.total_seconds()))


def _cumulative(buckets: list[int]) -> list[int]:
    counts = [0] * BUCKETS
    for bucket in buckets:
        if bucket < BUCKETS:
            counts[bucket] += 1
    total, out = 0, []
    for n in counts:
        total += n
        out.append(total)
    return out


def brute_force(broadcast: Broadcast, *, now: datetime, per_recipient: bool) -> dict[str, Any]:
    """Every figure of one broadcast, from its rows one by one."""
    broadcast.refresh_from_db()
    start = broadcast.send_started_at
    assert start is not None
    rows = list(Delivery.objects.filter(broadcast=broadcast).select_related("connection"))
    segments = max((sms_segments(v.body) for v in broadcast.variants.all()), default=1)
    failures: dict[tuple[str, str, str], int] = defaultdict(int)
    by_provider: dict[str, dict[str, int]] = {}
    cost = Decimal("0")
    by_status: dict[str, int] = defaultdict(int)
    went_out: dict[tuple[str, str, str, bool], int] = defaultdict(int)
    for row in rows:
        provider = row.connection.provider
        by_status[row.status] += 1
        if row.status in ("sent", "delivered", "read"):
            went_out[(provider, row.connection.demo_presents_as or "", row.language, row.use_template)] += 1
        per = by_provider.setdefault(provider, {"recipients": 0, "sent": 0, "delivered": 0, "read": 0, "failed": 0})
        per["recipients"] += 1
        per["sent"] += row.sent_at is not None
        per["delivered"] += row.status in ("delivered", "read")
        per["read"] += row.status == "read"
        per["failed"] += row.status == "failed"
        if row.status in ("failed", "skipped"):
            failures[(row.status, provider, row.error_kind or "unknown")] += 1
        if row.sent_at is not None:
            cost += row.connection.price_per_message * (segments if provider == "sms" else 1)
    in_day = [r for r in rows if r.status in ("delivered", "read") and r.delivered_at and r.delivered_at < start + DAY]
    links = list(TrackedLink.objects.filter(broadcast=broadcast))
    first_click: dict[int, datetime] = {}
    for click in LinkClick.objects.filter(link__in=links, delivery__isnull=False):
        assert click.delivery_id is not None
        if click.delivery_id not in first_click or click.at < first_click[click.delivery_id]:
            first_click[click.delivery_id] = click.at
    return {
        "recipients": len(rows),
        "sent": sum(r.sent_at is not None for r in rows),
        "delivered": sum(r.status in ("delivered", "read") for r in rows),
        "read": sum(r.status == "read" for r in rows),
        "read_15min": sum(
            r.read_at is not None and r.sent_at is not None and r.read_at <= r.sent_at + timedelta(minutes=15)
            for r in rows
        ),
        "failed": sum(r.status == "failed" for r in rows),
        "skipped": sum(r.status == "skipped" for r in rows),
        "clicks": sum(link.clicks for link in links),
        "unique_clicks": len(first_click) if per_recipient else None,
        "unsubscribes": _unsubscribes_of(broadcast, now),
        "cost_eur": cost.quantize(Decimal("0.01")),
        "failures": [{"status": s, "provider": p, "kind": k, "count": n} for (s, p, k), n in sorted(failures.items())],
        "timeline": {
            "bucket_minutes": 15,
            "delivered": _cumulative([_bucket(r.delivered_at, start) for r in in_day if r.delivered_at]),
            "read": _cumulative(
                [_bucket(r.read_at, start) for r in in_day if r.status == "read" and r.read_at is not None]
            ),
            "clicked": _cumulative([_bucket(at, start) for at in first_click.values() if at < start + DAY])
            if per_recipient
            else None,
        },
        "by_provider": by_provider,
        "by_status": dict(by_status),
        "possible_duplicates": sum(r.possible_duplicate for r in rows),
        "went_out": [[*key, n] for key, n in sorted(went_out.items())],
    }


def _unsubscribes_of(broadcast: Broadcast, now: datetime) -> int:
    """People whose opt-out (up to `now`) goes to this broadcast: the latest broadcast sent to
    them within the 24 hours before it, among those on the channel they left."""
    targets: dict[int, set[int]] = defaultdict(set)
    for broadcast_id, channel_id in Broadcast.channels.through.objects.values_list("broadcast_id", "channel_id"):
        targets[broadcast_id].add(channel_id)
    deliveries: dict[int, list[Delivery]] = defaultdict(list)
    for row in Delivery.objects.filter(sent_at__isnull=False, subscriber__isnull=False):
        assert row.subscriber_id is not None
        deliveries[row.subscriber_id].append(row)
    people = set()
    for event in ConsentEvent.objects.filter(kind=ConsentEvent.Kind.OPT_OUT, subscriber__isnull=False, at__lte=now):
        assert event.subscriber_id is not None
        candidates = [
            d
            for d in deliveries[event.subscriber_id]
            if d.sent_at is not None
            and event.at - DAY < d.sent_at <= event.at
            and (event.channel_id is None or event.channel_id in targets[d.broadcast_id])
        ]
        if candidates:
            latest = max(candidates, key=lambda d: (d.sent_at, d.pk))
            if latest.broadcast_id == broadcast.pk:
                people.add(event.subscriber_id)
    return len(people)
