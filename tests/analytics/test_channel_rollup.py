"""The channel roll-up (analytics.rollups.channels): every ChannelDay number against a brute-force
recomputation over generated ledgers, folded in pieces with entries dated in the past, entries
that commit after a later id was folded, repeated opt-ins, runs twice and rebuilds; and against
the Subscription table after the real subscribe / unsubscribe / erasure services."""

from __future__ import annotations

import random
import zoneinfo
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from analytics.models import ChannelDay, ChannelRollupState
from analytics.rollups.channels import channel_days_fold
from channels.models import Channel
from messengers.models import Connection
from subscribers.models import ConsentEvent, Source, Subscriber, Subscription
from subscribers.services.gdpr import subscriber_erase
from subscribers.services.subscriptions import subscription_start, subscriptions_stop
from tenants.models import Tenant
from tests.channels.factories import make_channel
from tests.conftest import in_tenant
from tests.subscribers.factories import sandbox

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
SOURCES = [Source.KEYWORD, Source.QR, Source.IMPORT, Source.WEB_FORM, Source.API]
POSTERS = ["HBF1", "UNI2", "RATHAUS"]


# --------------------------------------------------------------------------------------------
# Brute force: memberships as intervals, then every figure of every day counted from them
# --------------------------------------------------------------------------------------------
@dataclass
class Membership:
    channel_id: int
    joined: date
    source: str
    poster: str
    messenger: str
    left: date | None = None


def memberships(events: list[ConsentEvent]) -> list[Membership]:
    """Walks the ledger in id order. A person's channels: opted in and not yet out; an entry
    without a subscriber (erased person) counts on its own."""
    result: list[Membership] = []
    open_ones: dict[tuple[int, int], Membership] = {}
    for event in sorted(events, key=lambda e: e.pk):
        day = event.at.astimezone(BERLIN).date()
        provider = event.connection.provider if event.connection is not None else ""
        if event.subscriber_id is None:
            if event.channel_id is None:
                continue
            if event.kind == "opt_in":
                result.append(Membership(event.channel_id, day, event.source, _poster(event), provider))
            elif event.kind == "opt_out":
                # a leave on its own: a membership that only leaves, on the entry's messenger
                result.append(Membership(event.channel_id, date.min, "", "", provider, left=day))
            continue
        if event.kind == "opt_in" and event.channel_id is not None:
            key = (event.subscriber_id, event.channel_id)
            if key not in open_ones:
                member = Membership(event.channel_id, day, event.source, _poster(event), provider)
                open_ones[key] = member
                result.append(member)
        elif event.kind == "opt_out":
            keys = (
                [(event.subscriber_id, event.channel_id)]
                if event.channel_id is not None
                else [k for k in open_ones if k[0] == event.subscriber_id]
            )
            for key in keys:
                if key in open_ones:
                    member = open_ones.pop(key)
                    member.left = max(day, member.joined)  # an opt-in dated back: left when joined
    return result


def _poster(event: ConsentEvent) -> str:
    return event.source_detail if event.source == Source.QR else ""


def brute_force() -> dict[tuple[int, date], dict[str, Any]]:
    events = list(ConsentEvent.objects.select_related("connection"))
    members = memberships(events)
    days = sorted({m.joined for m in members if m.joined != date.min} | {m.left for m in members if m.left})
    expected: dict[tuple[int, date], dict[str, Any]] = {}
    for channel_id in {m.channel_id for m in members}:
        mine = [m for m in members if m.channel_id == channel_id]
        for day in days:
            joined = [m for m in mine if m.joined == day]
            left = [m for m in mine if m.left == day]
            if not joined and not left:
                continue
            subscribed = [m for m in mine if date.min < m.joined <= day and (m.left is None or m.left > day)]
            # a lone leave (erased person) took one away from the day on
            lone = [m for m in mine if m.joined == date.min and m.left is not None and m.left <= day]
            by_messenger = Counter(m.messenger for m in subscribed)
            by_messenger.subtract(Counter(m.messenger for m in lone))
            expected[(channel_id, day)] = {
                "joins": len(joined),
                "leaves": len(left),
                "subscribers": len(subscribed) - len(lone),
                "joins_by_source": dict(Counter(m.source for m in joined)),
                "joins_by_poster": dict(Counter(m.poster for m in joined if m.poster)),
                "subscribers_by_messenger": {k: v for k, v in by_messenger.items() if v},
            }
    return expected


def stored() -> dict[tuple[int, date], dict[str, Any]]:
    return {
        (row.channel_id, row.day): {
            "joins": row.joins,
            "leaves": row.leaves,
            "subscribers": row.subscribers,
            "joins_by_source": row.joins_by_source,
            "joins_by_poster": row.joins_by_poster,
            "subscribers_by_messenger": row.subscribers_by_messenger,
        }
        for row in ChannelDay.objects.all()
    }


def assert_matches_brute_force() -> None:
    expected, actual = brute_force(), stored()
    assert set(actual) == set(expected)
    for key, figures in expected.items():
        assert actual[key] == figures, key


# --------------------------------------------------------------------------------------------
# Generated ledgers
# --------------------------------------------------------------------------------------------
@dataclass
class World:
    channels: list[Channel]
    connections: list[Connection | None]
    people: list[Subscriber]
    start: datetime
    rng: random.Random
    # person → channel → the connection they joined through and when (as the replay by id sees it)
    active: dict[int, dict[int, tuple[Connection | None, datetime]]] = field(default_factory=lambda: defaultdict(dict))
    # people whose history a rebuild after their erasure reads differently (module docstring)
    not_erasable: set[int] = field(default_factory=set)

    def at(self, day: int) -> datetime:
        return self.start + timedelta(days=day, minutes=self.rng.randrange(24 * 60))

    def events(self, count: int, days: range) -> list[ConsentEvent]:
        """`count` plausible ledger entries dated on `days` (in any order: late ones too)."""
        rng, made = self.rng, []
        for _ in range(count):
            person = rng.choice(self.people)
            channel = rng.choice(self.channels)
            at = self.at(rng.choice(days))
            roll = rng.random()
            if roll < 0.55:  # opt-in (now and then one while subscribed: a repeated START)
                source = rng.choice(SOURCES)
                connection = rng.choice(self.connections)
                made.append(ConsentEvent(
                    subscriber=person, channel=channel, kind="opt_in", source=source, at=at,
                    source_detail=rng.choice(POSTERS) if source == Source.QR else "", connection=connection,
                ))  # fmt: skip
                if channel.pk in self.active[person.pk]:
                    self.not_erasable.add(person.pk)  # a repeated opt-in
                self.active[person.pk].setdefault(channel.pk, (connection, at))
            elif roll < 0.75:  # opt-out of one channel (sometimes one never joined: a pending request)
                joined = self.active[person.pk].pop(channel.pk, None)
                made.append(ConsentEvent(
                    subscriber=person, channel=channel, kind="opt_out", source="keyword", at=at,
                    connection=joined[0] if joined else None,  # STOP on the messenger they joined through
                ))  # fmt: skip
                if joined is None or at.astimezone(BERLIN).date() < joined[1].astimezone(BERLIN).date():
                    self.not_erasable.add(person.pk)  # no subscription ended, or a leave dated before its join
            elif roll < 0.85:  # STOP: out of everything
                made.append(ConsentEvent(subscriber=person, channel=None, kind="opt_out", source="keyword", at=at))
                self.active[person.pk].clear()
                self.not_erasable.add(person.pk)
            elif roll < 0.95:  # confirmation of a double opt-in: no join of its own
                made.append(ConsentEvent(subscriber=person, channel=channel, kind="confirmation", source="web_form",
                                         at=at))  # fmt: skip
            else:  # an entry of a channel since deleted
                made.append(ConsentEvent(subscriber=person, channel=None, kind="opt_in", source="keyword", at=at))
        return ConsentEvent.objects.bulk_create(made)

    def erase(self, count: int, day: int) -> int:
        """Erase up to `count` people as subscribers.services.gdpr does: their entries lose the
        subscriber, and each channel they were subscribed to gets an opt-out without one."""
        erasable = [p for p in self.people if p.pk not in self.not_erasable]
        chosen = self.rng.sample(erasable, min(count, len(erasable)))
        for person in chosen:
            ConsentEvent.objects.filter(subscriber=person).update(subscriber=None, evidence="")
            at = self.at(day)
            ConsentEvent.objects.bulk_create([
                ConsentEvent(subscriber=None, channel_id=channel_id, kind="opt_out", source="admin",
                             source_detail="erasure", at=at, connection=connection)
                for channel_id, (connection, _joined) in self.active.pop(person.pk, {}).items()
            ] + [ConsentEvent(subscriber=None, kind="erasure", source="admin", at=at)])  # fmt: skip
            self.people.remove(person)
        return len(chosen)


@pytest.fixture
def world(tenant: Tenant) -> World:
    telegram = Connection.objects.create(provider="telegram", name="Bot", public_address="@analytics_bot")
    channels = [make_channel(f"Kanal {i}", [f"KANAL{i}"]) for i in range(3)]
    people = Subscriber.objects.bulk_create([Subscriber(name=f"P{i}") for i in range(40)])
    start = datetime(2026, 3, 20, 0, 0, tzinfo=BERLIN)  # the clocks change on 29 March
    return World(channels, [sandbox(), telegram, None], people, start, random.Random(12))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_number_matches_brute_force_folded_in_pieces_with_late_entries(world: World, seed: int) -> None:
    world.rng = random.Random(seed)
    world.events(150, range(0, 20))
    channel_days_fold()
    assert_matches_brute_force()
    # later entries, many dated before days already folded (imports, e-mail confirmations), and
    # erasures of people some of whose entries were folded and some not yet
    erased = 0
    for piece in range(4):
        world.events(60, range(0, 40))
        erased += world.erase(2, 40 + piece)
        channel_days_fold()
        assert_matches_brute_force()
    assert erased >= 2 and ConsentEvent.objects.filter(subscriber=None, kind="opt_out").exists()
    incremental = stored()
    channel_days_fold(full=True)
    assert stored() == incremental
    assert ChannelDay.objects.filter(day__lt=world.start.date() + timedelta(days=20)).exists()


def test_running_twice_changes_nothing_and_rebuild_gives_the_same_rows(world: World) -> None:
    world.events(300, range(0, 30))
    first = channel_days_fold()
    assert first["events"] == 300
    rows = stored()
    assert channel_days_fold() == {"events": 0, "days": 0, "gaps": 0}
    assert stored() == rows
    world.events(100, range(0, 40))
    channel_days_fold()
    incremental = stored()
    channel_days_fold(full=True)
    assert stored() == incremental
    assert_matches_brute_force()


def test_an_entry_that_commits_after_a_later_one_was_folded_is_not_lost(world: World) -> None:
    """PostgreSQL hands out ids before commit: id n may become visible after n+1 was folded."""
    person, channel = world.people[0], world.channels[0]
    ConsentEvent.objects.create(
        subscriber=world.people[1], channel=channel, kind="opt_in", source="api", at=world.at(0)
    )
    channel_days_fold()
    late_join = ConsentEvent.objects.create(
        subscriber=person, channel=channel, kind="opt_in", source="keyword", at=world.at(1)
    )
    ConsentEvent.objects.create(subscriber=person, channel=None, kind="opt_out", source="keyword", at=world.at(3))
    ConsentEvent.objects.filter(pk=late_join.pk).delete()  # not committed yet when the roll-up runs
    assert channel_days_fold()["gaps"] == 1
    assert_matches_brute_force()
    assert ChannelDay.objects.count() == 1  # the STOP ended nothing yet
    late_join.save(force_insert=True)  # commits now, with its old id
    assert channel_days_fold()["events"] == 1
    assert_matches_brute_force()
    _, joined, left = ChannelDay.objects.order_by("day")
    assert (joined.joins, joined.subscribers, left.leaves, left.subscribers) == (1, 2, 1, 1)
    assert ChannelRollupState.objects.get().gaps == []


def test_gaps_of_rolled_back_transactions_expire(world: World) -> None:
    channel = world.channels[0]
    ConsentEvent.objects.create(
        subscriber=world.people[2], channel=channel, kind="opt_in", source="api", at=world.at(0)
    )
    channel_days_fold()
    first = ConsentEvent.objects.create(
        subscriber=world.people[0], channel=channel, kind="opt_in", source="keyword", at=world.at(1)
    )
    ConsentEvent.objects.create(
        subscriber=world.people[1], channel=channel, kind="opt_in", source="keyword", at=world.at(1)
    )
    ConsentEvent.objects.filter(pk=first.pk).delete()  # rolled back
    channel_days_fold()
    state = ChannelRollupState.objects.get()
    assert [gap[:2] for gap in state.gaps] == [[first.pk, first.pk]]
    state.gaps = [[first.pk, first.pk, (timezone.now() - timedelta(hours=7)).isoformat()]]
    state.save()
    assert channel_days_fold()["gaps"] == 0


def test_real_services_end_where_the_subscription_table_is(tenant: Tenant) -> None:
    """Subscribe, unsubscribe one channel, STOP everything, come back, erase: the last day of
    each channel counts exactly the active subscriptions."""
    dust, traffic, events = (make_channel(n, [n.upper()]) for n in ("Feinstaub", "Verkehr", "Termine"))
    connection = sandbox()
    people = Subscriber.objects.bulk_create([Subscriber(name=f"P{i}") for i in range(12)])
    for i, person in enumerate(people):
        subscription_start(
            subscriber=person, channels=[dust, traffic] if i % 2 else [dust, traffic, events],
            source=Source.QR if i % 3 == 0 else Source.KEYWORD, source_detail="HBF1" if i % 3 == 0 else "",
            connection=connection,
        )  # fmt: skip
    channel_days_fold()
    subscription_start(subscriber=people[0], channels=[dust], source=Source.KEYWORD, connection=connection)  # replay
    subscriptions_stop(subscriber=people[1], channels=[traffic], source=Source.KEYWORD)
    subscriptions_stop(subscriber=people[2], channels=None, source=Source.KEYWORD)
    subscription_start(subscriber=people[2], channels=[events], source=Source.WEB_FORM)
    subscriber_erase(subscriber=people[3], source=Source.ADMIN)
    subscriber_erase(subscriber=people[4], source=Source.ADMIN)
    channel_days_fold()
    for channel in (dust, traffic, events):
        last = ChannelDay.objects.filter(channel=channel).order_by("-day").first()
        assert last is not None
        active = Subscription.objects.filter(channel=channel, status="active").count()
        assert last.subscribers == active, channel.name
    assert_matches_brute_force()
    # people 0, 3, 6 and 9 came through the poster: 3 + 2 + 3 + 2 channels
    assert sum(r.joins_by_poster.get("HBF1", 0) for r in ChannelDay.objects.all()) == 10
    # everyone joined the dust channel through the sandbox, and the erasures' opt-outs kept it
    last_dust = ChannelDay.objects.filter(channel=dust).latest("day")
    assert last_dust.subscribers_by_messenger == {
        "sandbox": Subscription.objects.filter(channel=dust, status="active").count()
    }
    channel_days_fold(full=True)  # nobody erased had left everything before: the rebuild agrees
    for channel in (dust, traffic, events):
        last = ChannelDay.objects.filter(channel=channel).order_by("-day").first()
        assert (
            last is not None
            and last.subscribers == Subscription.objects.filter(channel=channel, status="active").count()
        )


def test_rebuild_after_erasure_of_someone_who_had_left_everything(tenant: Tenant) -> None:
    """The documented difference: folded before the erasure, the STOP ended the channel; the
    rebuild afterwards cannot tell which channels the anonymous STOP ended."""
    channel = make_channel()
    person = Subscriber.objects.create(name="Erika")
    subscription_start(subscriber=person, channels=[channel], source=Source.KEYWORD, connection=sandbox())
    subscriptions_stop(subscriber=person, channels=None, source=Source.KEYWORD)
    channel_days_fold()
    subscriber_erase(subscriber=person, source=Source.ADMIN)
    channel_days_fold()
    assert ChannelDay.objects.get(channel=channel).subscribers == 0
    channel_days_fold(full=True)
    assert ChannelDay.objects.get(channel=channel).subscribers == 1


def test_days_follow_the_tenants_time_zone(tenant: Tenant) -> None:
    channel = make_channel()
    person = Subscriber.objects.create(name="Nachteule")
    # 23:30 UTC on 1 June is 01:30 on 2 June in Berlin; in New York still 1 June
    at = datetime(2026, 6, 1, 23, 30, tzinfo=zoneinfo.ZoneInfo("UTC"))
    ConsentEvent.objects.create(subscriber=person, channel=channel, kind="opt_in", source="keyword", at=at)
    channel_days_fold()
    assert ChannelDay.objects.get().day == date(2026, 6, 2)
    Tenant.objects.filter(pk=tenant.pk).update(timezone="America/New_York")
    tenant.refresh_from_db()  # as the next fold task finds it (core.tasks.run_in_schema loads it afresh)
    channel_days_fold(full=True)
    assert ChannelDay.objects.get().day == date(2026, 6, 1)


def test_each_tenant_folds_its_own_ledger(tenant: Tenant, tenant_b: Tenant) -> None:
    channel = make_channel()
    person = Subscriber.objects.create(name="A")
    subscription_start(subscriber=person, channels=[channel], source=Source.KEYWORD)
    channel_days_fold()
    with in_tenant(tenant_b):
        assert channel_days_fold()["events"] == 0
        assert not ChannelDay.objects.exists()
    assert ChannelDay.objects.get().joins == 1


def test_each_table_lives_in_its_kind_of_schema(tenant: Tenant) -> None:
    """analytics is in both app lists: TenantRollup only in public, the roll-ups only in tenants."""
    from django.db import connection as db_connection

    with db_connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_name LIKE 'analytics_%%'"
            " AND table_schema IN ('public', %s, 'tenant_template')",
            [tenant.schema_name],
        )
        found = set(cursor.fetchall())
    for schema in (tenant.schema_name, "tenant_template"):
        assert {(schema, "analytics_channelday"), (schema, "analytics_channelrollupstate")} <= found
        assert (schema, "analytics_tenantrollup") not in found
    assert ("public", "analytics_tenantrollup") in found
    assert ("public", "analytics_channelday") not in found
