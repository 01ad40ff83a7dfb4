"""The channel roll-up: analytics.models.ChannelDay, folded from the consent ledger.

Definitions (what every figure of the channel page means):

- A **join** is an opt-in to the channel by someone not subscribed to it at that moment; it
  counts on the day of the ledger entry's `at`, in the tenant's time zone. For double opt-in by
  e-mail that is the day of the request (the ledger dates the opt-in then; the entry is written
  when the link is clicked, so it arrives "late"). Its source is the entry's source; a QR poster
  sign-up also counts for the poster's code; its messenger is the entry's connection's ("" when
  there is none: imports, the admin).
- A **leave** is an opt-out that ends an active subscription: an opt-out of that channel, or an
  opt-out of everything (which ends every channel the person is subscribed to then). It counts
  on its entry's day, or on the join's day if that is later (an opt-in dated back). An
  erasure ends the person's subscriptions with one opt-out per channel (subscribers.services.gdpr).
  An opt-out of a channel the person never confirmed (a pending e-mail request) is no leave.
- **Subscribers** at a day's end: joins minus leaves of every day up to it; by messenger, by the
  messenger each person joined through.
- **Churn rate** of a period: leaves in the period ÷ subscribers at the period's start (the end
  of the day before); none when nobody was subscribed then (analytics.selectors_channels).

Whether an entry is a join or a leave depends on the person's earlier entries: the ledger is
replayed per person in id order (the order the entries were written). After an erasure the
person's entries have no subscriber any more; each such entry then counts on its own (an
opt-in of a channel joins, an opt-out of a channel leaves, an opt-out of everything nothing).
Folding the entries of a person before the erasure therefore counts a little more exactly than
rebuilding after it: a rebuild cannot tell which channels an erased person's earlier "opt-out of
everything" ended (those stay counted as subscribed), whether an opt-out ended a pending
request, whether an opt-in repeated one (the services write none while subscribed), which
messenger an ended subscription had been joined through (the opt-out's own counts), or that a
leave was dated before its join. Everything else comes out the same either way
(tests/analytics/test_channel_rollup.py).

Incremental: each run reads the ledger entries with an id above the last one it folded (an index
scan), plus the ids it found missing below it last time (`ChannelRollupState.gaps`: transactions
still open then; PostgreSQL hands out ids before commit). For the people in those entries it
replays their whole ledger twice, with and without the new entries, and adds the difference to
the days concerned; then it recomputes the running subscriber counts of the touched channels
from the earliest touched day on. So an entry dated in the past (an import's consent date, the
e-mail opt-in) lands on its own day and moves every later day's count, and an entry written
before an earlier one of the same person changes how that one counts. Runs of one tenant are
serialised by an advisory lock; running twice folds nothing the second time (idempotent), and
`full=True` deletes every ChannelDay and folds the whole ledger (rebuild). Days are the tenant's
time zone's at the time of folding: after changing a tenant's time zone, rebuild.
"""

from __future__ import annotations

import zoneinfo
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from analytics.models import ChannelDay, ChannelRollupState
from channels.models import Channel
from core.tenancy import connection, current_tenant
from subscribers.models import ConsentEvent, Source

# An id missing below the watermark for this long belongs to a rolled-back transaction.
GAP_EXPIRY = timedelta(hours=6)
PERSON_BATCH = 5_000
FIELDS = ("id", "subscriber_id", "channel_id", "kind", "source", "source_detail", "at", "connection__provider")

OPT_IN = ConsentEvent.Kind.OPT_IN.value
OPT_OUT = ConsentEvent.Kind.OPT_OUT.value


@dataclass(frozen=True)
class Entry:
    id: int
    subscriber_id: int | None
    channel_id: int | None
    kind: str
    source: str
    source_detail: str
    at: datetime
    provider: str


# ("join", channel, day, source, poster code, messenger) or ("leave", channel, day, messenger)
Key = tuple[Any, ...]


def _entries(query: Q) -> list[Entry]:
    rows = ConsentEvent.objects.filter(query).order_by("id").values_list(*FIELDS)
    return [
        Entry(id=i, subscriber_id=s, channel_id=c, kind=k, source=src, source_detail=d, at=at, provider=p or "")
        for i, s, c, k, src, d, at, p in rows
    ]


def _join_key(entry: Entry, tz: zoneinfo.ZoneInfo) -> Key:
    poster = entry.source_detail if entry.source == Source.QR else ""
    return ("join", entry.channel_id, entry.at.astimezone(tz).date(), entry.source, poster, entry.provider)


def resolve_person(entries: Iterable[Entry], tz: zoneinfo.ZoneInfo) -> Counter[Key]:
    """Joins and leaves of one person's ledger entries, in id order."""
    out: Counter[Key] = Counter()
    active: dict[int, tuple[str, date]] = {}  # channel → messenger joined through, day joined
    for entry in entries:
        if entry.kind == OPT_IN and entry.channel_id is not None:
            if entry.channel_id not in active:
                key = _join_key(entry, tz)
                active[entry.channel_id] = (entry.provider, key[2])
                out[key] += 1
        elif entry.kind == OPT_OUT:
            day = entry.at.astimezone(tz).date()
            targets = [entry.channel_id] if entry.channel_id is not None else list(active)
            for channel_id in targets:
                if channel_id in active:
                    provider, joined = active.pop(channel_id)
                    out[("leave", channel_id, max(day, joined), provider)] += 1
    return out


def resolve_anonymous(entry: Entry, tz: zoneinfo.ZoneInfo) -> Counter[Key]:
    """An entry without a subscriber (erased person) counts on its own."""
    out: Counter[Key] = Counter()
    if entry.channel_id is None:
        return out
    if entry.kind == OPT_IN:
        out[_join_key(entry, tz)] += 1
    elif entry.kind == OPT_OUT:
        out[("leave", entry.channel_id, entry.at.astimezone(tz).date(), entry.provider)] += 1
    return out


def _tenant_tz() -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(getattr(current_tenant(), "timezone", "") or "Europe/Berlin")


def _in_gaps(event_id: int, gaps: list[list[Any]]) -> bool:
    return any(lo <= event_id <= hi for lo, hi, _seen in gaps)


def _gaps_after(previous: list[list[Any]], watermark: int, seen: set[int], top: int, now: datetime) -> list[list[Any]]:
    """The gaps still open: earlier ones minus the ids found now (unless expired), plus the ids
    missing between the old and the new watermark."""
    result: list[list[Any]] = []

    def add_missing(lo: int, hi: int, seen_at: str) -> None:
        start = None
        for event_id in range(lo, hi + 1):
            if event_id in seen:
                if start is not None:
                    result.append([start, event_id - 1, seen_at])
                    start = None
            elif start is None:
                start = event_id
        if start is not None:
            result.append([start, hi, seen_at])

    for lo, hi, seen_at in previous:
        if now - datetime.fromisoformat(seen_at) < GAP_EXPIRY:
            add_missing(lo, hi, seen_at)
    if top > watermark:
        # a first run or a rebuild starts at the lowest id it sees: the ids below it were
        # skipped by the sequence (rolled back, or never used), and would only be looked up again
        add_missing(watermark + 1 if watermark else min(seen), top, now.isoformat())
    return result


def _gap_query(gaps: list[list[Any]]) -> Q:
    query = Q(pk__in=[])
    for lo, hi, _seen in gaps:
        query |= Q(pk__gte=lo, pk__lte=hi)
    return query


@dataclass
class _DayDelta:
    joins: int = 0
    leaves: int = 0
    by_source: Counter[str] | None = None
    by_poster: Counter[str] | None = None
    net_by_messenger: Counter[str] | None = None


def _day_deltas(changes: Counter[Key]) -> dict[tuple[int, date], _DayDelta]:
    deltas: dict[tuple[int, date], _DayDelta] = defaultdict(
        lambda: _DayDelta(by_source=Counter(), by_poster=Counter(), net_by_messenger=Counter())
    )
    for key, count in changes.items():
        if not count:
            continue
        if key[0] == "join":
            _, channel_id, day, source, poster, provider = key
            delta = deltas[(channel_id, day)]
            delta.joins += count
            delta.by_source[source] += count  # type: ignore[index]
            if poster:
                delta.by_poster[poster] += count  # type: ignore[index]
            delta.net_by_messenger[provider] += count  # type: ignore[index]
        else:
            _, channel_id, day, provider = key
            delta = deltas[(channel_id, day)]
            delta.leaves += count
            delta.net_by_messenger[provider] -= count  # type: ignore[index]
    return deltas


def _add(stored: dict[str, int], change: Counter[str] | None) -> dict[str, int]:
    total = Counter(stored)
    total.update(change or {})
    return {key: value for key, value in sorted(total.items()) if value}


def _apply(deltas: dict[tuple[int, date], _DayDelta]) -> int:
    """Adds the deltas to the days and recomputes the running counts from each channel's
    earliest touched day on. Returns the number of days written."""
    if not deltas:
        return 0
    existing_channels = set(
        Channel.objects.filter(pk__in={channel_id for channel_id, _ in deltas}).values_list("pk", flat=True)
    )
    first_day: dict[int, date] = {}
    for channel_id, day in deltas:
        if channel_id in existing_channels:
            first_day[channel_id] = min(day, first_day.get(channel_id, day))
    if not first_day:
        return 0
    rows_by_channel: dict[int, dict[date, ChannelDay]] = defaultdict(dict)
    for stored in ChannelDay.objects.filter(channel_id__in=list(first_day)).order_by("channel_id", "day"):
        rows_by_channel[stored.channel_id][stored.day] = stored
    for (channel_id, day), delta in deltas.items():
        if channel_id not in first_day:
            continue  # the channel was deleted meanwhile
        row = rows_by_channel[channel_id].get(day) or ChannelDay(channel_id=channel_id, day=day)
        rows_by_channel[channel_id][day] = row
        row.joins += delta.joins
        row.leaves += delta.leaves
        row.joins_by_source = _add(row.joins_by_source, delta.by_source)
        row.joins_by_poster = _add(row.joins_by_poster, delta.by_poster)
        row.net_by_messenger = _add(row.net_by_messenger, delta.net_by_messenger)
    to_create: list[ChannelDay] = []
    to_update: list[ChannelDay] = []
    to_delete: list[int] = []
    for channel_id, start in first_day.items():
        running = 0
        by_messenger: Counter[str] = Counter()
        for day in sorted(rows_by_channel[channel_id]):
            row = rows_by_channel[channel_id][day]
            if day >= start:
                if row.joins < 0 or row.leaves < 0:
                    raise ValueError(f"channel roll-up went negative on {channel_id} {day}")
                if not row.joins and not row.leaves:
                    # a late entry undid this day's only change: no row, as a rebuild would have
                    if row.pk is not None:
                        to_delete.append(row.pk)
                    continue
                by_messenger.update(row.net_by_messenger)
                running += row.joins - row.leaves
                row.subscribers = running
                row.subscribers_by_messenger = {k: v for k, v in sorted(by_messenger.items()) if v}
                (to_update if row.pk is not None else to_create).append(row)
            else:
                running = row.subscribers
                by_messenger = Counter(row.subscribers_by_messenger)
    fields = ["joins", "leaves", "subscribers", "joins_by_source", "joins_by_poster", "net_by_messenger",
              "subscribers_by_messenger"]  # fmt: skip
    if to_delete:
        ChannelDay.objects.filter(pk__in=to_delete).delete()
    ChannelDay.objects.bulk_update(to_update, fields, batch_size=1000)
    ChannelDay.objects.bulk_create(to_create, batch_size=1000)
    return len(to_update) + len(to_create)


def _lock() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext('analytics.channel_days'), hashtext(current_schema()))")


@transaction.atomic
def channel_days_fold(*, full: bool = False) -> dict[str, int]:
    """Folds the consent ledger's new entries into ChannelDay (full=True: rebuilds it). Runs
    inside a tenant schema; see the module docstring for what it counts."""
    _lock()
    tz = _tenant_tz()
    now = timezone.now()
    state, _ = ChannelRollupState.objects.get_or_create(pk=1)
    if full:
        ChannelDay.objects.all().delete()
        state.last_event_id, state.gaps = 0, []
    watermark, gaps = state.last_event_id, list(state.gaps)
    new = _entries(Q(pk__gt=watermark) | _gap_query(gaps))
    new_ids = {entry.id for entry in new}
    top = max([watermark, *new_ids])

    changes: Counter[Key] = Counter()
    people: dict[int, list[Entry]] = defaultdict(list)
    for entry in new:
        if entry.subscriber_id is None:
            changes.update(resolve_anonymous(entry, tz))
        else:
            people[entry.subscriber_id].append(entry)
    if full:
        for entries in people.values():
            changes.update(resolve_person(entries, tz))
    else:
        person_ids = sorted(people)
        for start in range(0, len(person_ids), PERSON_BATCH):
            batch = person_ids[start : start + PERSON_BATCH]
            history: dict[int, list[Entry]] = defaultdict(list)
            for entry in _entries(Q(subscriber_id__in=batch, pk__lte=top)):
                history[entry.subscriber_id].append(entry)  # type: ignore[index]
            for person in batch:
                # entries folded before, and with them the ones folded now; an entry that turned
                # up between the two reads waits for the next run (it is a gap now)
                before = [e for e in history[person] if e.id <= watermark and not _in_gaps(e.id, gaps)]
                after = [
                    e for e in history[person] if e.id in new_ids or (e.id <= watermark and not _in_gaps(e.id, gaps))
                ]
                changes.update(resolve_person(after, tz))
                changes.subtract(resolve_person(before, tz))
    days = _apply(_day_deltas(changes))
    state.gaps = _gaps_after(gaps, watermark, new_ids, top, now)
    state.last_event_id = top
    state.folded_at = now
    state.save()
    return {"events": len(new), "days": days, "gaps": len(state.gaps)}
