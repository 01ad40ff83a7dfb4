"""Per-broadcast figures (analytics.models.BroadcastStats): folding changes in, and rebuilding.

What changed since the last fold:
- a status webhook merged into deliveries, or a counted click: the broadcasts app calls
  settings.BROADCAST_CHANGE_HOOKS (`broadcast_stats_mark` here) in the same transaction, which
  inserts one BroadcastStatsMark row per broadcast: nothing for replays that change nothing;
- while a broadcast sends (and until no row of it is in flight any more) every fold computes it
  again, since the pipeline's own writes (sent, failed, skipped) are not marked;
- unsubscribes: the consent ledger is read for every broadcast whose 24-hour window was still
  open at its last fold.

A broadcast's figures are always computed whole from its rows (one grouped scan of its
deliveries, one for the timeline, its links and clicks), never added up from deltas: the fold is
idempotent, a replayed or late event only makes it compute the broadcast again, and a rebuild
gives the same numbers as the fold. Folds of one tenant run one at a time (an advisory lock); a
fold takes the marks it can see in the same transaction as it writes the figures, so a change
committed while it runs leaves its mark for the next fold, and a failed fold puts its marks back.

Definitions (the tests recompute each by brute force):
- recipients: Delivery rows; sent: rows with sent_at; delivered: status delivered or read;
  read: status read; read_15min: read_at at most 15 minutes after the row's sent_at.
- failures: rows failed or skipped, by status, messenger and error kind.
- clicks: the links' counters (every counted click); unique_clicks: deliveries with a recorded
  click (per-recipient tracking only; None for aggregate-only tenants, which record none).
- unsubscribes: people with an opt-out within 24 hours after this broadcast was sent to them
  that is attributed to it: the latest broadcast sent to them before the opt-out, among those on
  the channel they left (any, when they left every channel).
- cost: messages sent × the connection's price per message (× SMS segments), as in the send plan.
- timeline: cumulative delivered / read / first clicks per 15 minutes from the start of sending,
  over 24 hours.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Count, F, Max, Q, Sum
from django.utils import timezone

from analytics.models import BroadcastStats, BroadcastStatsMark
from broadcasts.models import Broadcast, BroadcastVariant, Delivery, LinkClick, TrackedLink
from broadcasts.selectors import sms_segments
from core.tasks import enqueue_tenant_task
from core.tenancy import connection as db
from messengers.models import Connection
from subscribers.models import ConsentEvent
from subscribers.selectors import current_tenant

logger = logging.getLogger(__name__)

BUCKET_MINUTES = 15
TIMELINE_HOURS = 24
BUCKETS = TIMELINE_HOURS * 60 // BUCKET_MINUTES
READ_WITHIN = timedelta(minutes=15)
UNSUBSCRIBE_WINDOW = timedelta(hours=24)
# Broadcasts computed per grouped query (a rebuild goes through all of them in chunks).
CHUNK = 200
# PostgreSQL advisory lock (two-key form: this class, hash of the schema) held by a fold.
FOLD_LOCK_CLASS = 0x6D6E6C12

FINAL = (Broadcast.Status.SENT, Broadcast.Status.CANCELLED)
WENT_OUT = (Delivery.Status.SENT, Delivery.Status.DELIVERED, Delivery.Status.READ)


# --------------------------------------------------------------------------------------------
# Marks (called from the broadcasts app through settings hooks)
# --------------------------------------------------------------------------------------------
def broadcast_stats_mark(*, broadcast_ids: Collection[int] = (), delivery_ids: Collection[int] = ()) -> None:
    """settings.BROADCAST_CHANGE_HOOKS: remember that these broadcasts (or those of these
    deliveries) changed. One INSERT, inside the caller's transaction; runs on the status path."""
    if not broadcast_ids and not delivery_ids:
        return
    mark = f'"{BroadcastStatsMark._meta.db_table}"'
    deliveries = f'"{Delivery._meta.db_table}"'
    with db.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {mark} (broadcast_id) "  # noqa: S608 - table names from the models
            f"SELECT broadcast_id FROM {deliveries} WHERE id = ANY(%s::bigint[]) "
            "UNION SELECT unnest(%s::bigint[])",
            [list(delivery_ids), list(broadcast_ids)],
        )


def broadcast_stats_after_send(*, broadcast_id: int) -> None:
    """settings.BROADCAST_FINISHED_HOOKS: a broadcast finished sending or was cancelled; fold
    its final figures right away rather than at the next scheduled fold."""
    enqueue_tenant_task("analytics.tasks.broadcast_stats_fold_task", task_name=None)


# --------------------------------------------------------------------------------------------
# Fold and rebuild
# --------------------------------------------------------------------------------------------
def broadcast_stats_fold(*, full: bool = False) -> dict[str, int]:
    """Bring BroadcastStats up to date (an entry of settings.ANALYTICS_ROLLUPS). `full` computes
    every broadcast that started sending and removes figures of any other; otherwise only what
    changed (see the module docstring). Returns counts of what it did."""
    now = timezone.now()
    with transaction.atomic():
        with db.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [FOLD_LOCK_CLASS, db.schema_name])
            cursor.execute(
                f'DELETE FROM "{BroadcastStatsMark._meta.db_table}" RETURNING broadcast_id'  # noqa: S608
            )
            marked = {row[0] for row in cursor.fetchall()}
        started = Broadcast.objects.filter(send_started_at__isnull=False)
        if full:
            ids = set(started.values_list("pk", flat=True))
            BroadcastStats.objects.exclude(broadcast_id__in=ids).delete()
        else:
            ids = set(started.filter(pk__in=marked).values_list("pk", flat=True))
            ids |= set(BroadcastStats.objects.filter(settled=False).values_list("broadcast_id", flat=True))
            ids |= set(started.filter(stats__isnull=True).values_list("pk", flat=True))
        ordered = sorted(ids)
        for start in range(0, len(ordered), CHUNK):
            _compute_and_store(ordered[start : start + CHUNK], now)
        # unsubscribes of broadcasts whose window was open at their last fold (the others'
        # were counted with their figures above)
        recount = list(
            BroadcastStats.objects.filter(unsubscribes_settled=False)
            .exclude(broadcast_id__in=ids)
            .values_list("broadcast_id", flat=True)
        )
        for start in range(0, len(recount), CHUNK):
            _recount_unsubscribes(recount[start : start + CHUNK], now)
    return {"computed": len(ids), "unsubscribes_recounted": len(recount), "marks": len(marked)}


@dataclass
class _Figures:
    recipients: int = 0
    sent: int = 0
    delivered: int = 0
    read: int = 0
    read_15min: int = 0
    failed: int = 0
    skipped: int = 0
    last_sent_at: datetime | None = None
    cost: Decimal = Decimal("0")
    failures: dict[tuple[str, str, str], int] = field(default_factory=lambda: defaultdict(int))
    by_provider: dict[str, dict[str, int]] = field(default_factory=dict)
    by_status: dict[str, int] = field(default_factory=dict)
    possible_duplicates: int = 0
    went_out: dict[tuple[str, str, str, bool], int] = field(default_factory=dict)


def _compute_and_store(ids: list[int], now: datetime) -> None:
    broadcasts = {b.pk: b for b in Broadcast.objects.filter(pk__in=ids).only("pk", "status", "send_started_at")}
    figures = _delivery_figures(broadcasts)
    timelines = _timelines(broadcasts)
    clicks, unique, per_recipient = _clicks(broadcasts)
    unsubscribes = _unsubscribes(broadcasts, now)
    in_flight = set(
        Delivery.objects.filter(
            broadcast_id__in=[pk for pk, b in broadcasts.items() if b.status in FINAL],
            status__in=[Delivery.Status.CLAIMED, Delivery.Status.SENDING],
            lease_expires_at__gt=now,
        )
        .values_list("broadcast_id", flat=True)
        .distinct()
    )
    rows = []
    for pk, broadcast in broadcasts.items():
        fig = figures.get(pk) or _Figures()
        settled = broadcast.status in FINAL and pk not in in_flight
        timeline = timelines.get(pk) or {"delivered": [0] * BUCKETS, "read": [0] * BUCKETS}
        rows.append(
            BroadcastStats(
                broadcast_id=pk,
                computed_at=now,
                settled=settled,
                recipients=fig.recipients,
                sent=fig.sent,
                delivered=fig.delivered,
                read=fig.read,
                read_15min=fig.read_15min,
                failed=fig.failed,
                skipped=fig.skipped,
                clicks=clicks.get(pk, 0),
                unique_clicks=unique.get(pk, 0) if per_recipient else None,
                unsubscribes=unsubscribes.get(pk, 0),
                last_sent_at=fig.last_sent_at,
                unsubscribes_settled=_window_closed(settled, fig.last_sent_at, now),
                cost_eur=fig.cost.quantize(Decimal("0.01")),
                failures=[
                    {"status": status, "provider": provider, "kind": kind, "count": n}
                    for (status, provider, kind), n in sorted(fig.failures.items())
                ],
                timeline={
                    "bucket_minutes": BUCKET_MINUTES,
                    "delivered": timeline["delivered"],
                    "read": timeline["read"],
                    "clicked": timeline.get("clicked") if per_recipient else None,
                },
                by_provider=fig.by_provider,
                by_status=fig.by_status,
                possible_duplicates=fig.possible_duplicates,
                went_out=[[*key, n] for key, n in sorted(fig.went_out.items())],
            )
        )
    fields = [f.name for f in BroadcastStats._meta.concrete_fields if not f.primary_key]
    BroadcastStats.objects.bulk_create(rows, update_conflicts=True, unique_fields=["broadcast"], update_fields=fields)


def _window_closed(settled: bool, last_sent_at: datetime | None, now: datetime) -> bool:
    """No opt-out after `now` can be attributed to the broadcast any more."""
    return settled and (last_sent_at is None or now >= last_sent_at + UNSUBSCRIBE_WINDOW)


def _delivery_figures(broadcasts: dict[int, Broadcast]) -> dict[int, _Figures]:
    """Counts from one grouped scan of the broadcasts' deliveries."""
    grouped = (
        Delivery.objects.filter(broadcast_id__in=list(broadcasts))
        .values_list("broadcast_id", "connection_id", "status", "error_kind", "language", "use_template")
        .annotate(
            n=Count("pk"),
            duplicates=Count("pk", filter=Q(possible_duplicate=True)),
            sent=Count("sent_at"),
            read_15=Count("pk", filter=Q(read_at__isnull=False, read_at__lte=F("sent_at") + READ_WITHIN)),
            last_sent=Max("sent_at"),
        )
        .order_by()
    )
    rows = list(grouped)
    connections = {
        c.pk: c
        for c in Connection.objects.filter(pk__in={row[1] for row in rows}).only(
            "pk", "provider", "price_per_message", "demo_presents_as"
        )
    }
    sms_broadcasts = {row[0] for row in rows if connections[row[1]].provider == "sms"}
    sms = _sms_segments(sms_broadcasts)
    out: dict[int, _Figures] = {}
    for (
        broadcast_id,
        connection_id,
        status,
        error_kind,
        language,
        use_template,
        n,
        dups,
        sent,
        read_15,
        last_sent,
    ) in rows:
        fig = out.setdefault(broadcast_id, _Figures())
        conn = connections[connection_id]
        fig.by_status[status] = fig.by_status.get(status, 0) + n
        fig.possible_duplicates += dups
        if status in WENT_OUT:
            key = (conn.provider, conn.demo_presents_as or "", language, bool(use_template))
            fig.went_out[key] = fig.went_out.get(key, 0) + n
        per = fig.by_provider.setdefault(
            conn.provider, {"recipients": 0, "sent": 0, "delivered": 0, "read": 0, "failed": 0}
        )
        fig.recipients += n
        per["recipients"] += n
        fig.sent += sent
        per["sent"] += sent
        if status in (Delivery.Status.DELIVERED, Delivery.Status.READ):
            fig.delivered += n
            per["delivered"] += n
        if status == Delivery.Status.READ:
            fig.read += n
            per["read"] += n
        if status == Delivery.Status.FAILED:
            fig.failed += n
            per["failed"] += n
        if status == Delivery.Status.SKIPPED:
            fig.skipped += n
        if status in (Delivery.Status.FAILED, Delivery.Status.SKIPPED):
            fig.failures[(status, conn.provider, error_kind or "unknown")] += n
        fig.read_15min += read_15
        if last_sent is not None and (fig.last_sent_at is None or last_sent > fig.last_sent_at):
            fig.last_sent_at = last_sent
        per_message = sms.get(broadcast_id, 1) if conn.provider == "sms" else 1
        fig.cost += conn.price_per_message * sent * per_message
    return out


def _sms_segments(broadcast_ids: set[int]) -> dict[int, int]:
    """SMS parts per message of each broadcast, counted as the send plan does (its longest text)."""
    out: dict[int, int] = {}
    for broadcast_id, body in BroadcastVariant.objects.filter(broadcast_id__in=broadcast_ids).values_list(
        "broadcast_id", "body"
    ):
        out[broadcast_id] = max(out.get(broadcast_id, 1), sms_segments(body))
    return out


_TIMELINE_SQL = """
SELECT d.broadcast_id,
       GREATEST(0, floor(extract(epoch FROM d.delivered_at - b.send_started_at) / %(width)s))::int,
       CASE WHEN d.read_at IS NULL THEN NULL
            ELSE GREATEST(0, floor(extract(epoch FROM d.read_at - b.send_started_at) / %(width)s))::int END,
       count(*)
  FROM {deliveries} d JOIN {broadcasts} b ON b.id = d.broadcast_id
 WHERE d.broadcast_id = ANY(%(ids)s::bigint[])
   AND d.status IN ('delivered', 'read') AND d.delivered_at IS NOT NULL
   AND d.delivered_at < b.send_started_at + %(span)s
 GROUP BY 1, 2, 3
"""

_FIRST_CLICKS_SQL = """
SELECT f.broadcast_id,
       GREATEST(0, floor(extract(epoch FROM f.first_at - b.send_started_at) / %(width)s))::int,
       count(*)
  FROM (SELECT l.broadcast_id, c.delivery_id, min(c.at) AS first_at
          FROM {clicks} c JOIN {links} l ON l.id = c.link_id
         WHERE l.broadcast_id = ANY(%(ids)s::bigint[]) AND c.delivery_id IS NOT NULL
         GROUP BY 1, 2) f
  JOIN {broadcasts} b ON b.id = f.broadcast_id
 WHERE f.first_at < b.send_started_at + %(span)s
 GROUP BY 1, 2
"""


def _cumulative(counts: dict[int, int]) -> list[int]:
    out, total = [], 0
    for bucket in range(BUCKETS):
        total += counts.get(bucket, 0)
        out.append(total)
    return out


def _timelines(broadcasts: dict[int, Broadcast]) -> dict[int, dict[str, list[int]]]:
    """Cumulative delivered, read and first clicks per bucket over the first 24 hours."""
    params: dict[str, Any] = {
        "ids": list(broadcasts),
        "width": BUCKET_MINUTES * 60,
        "span": timedelta(hours=TIMELINE_HOURS),
    }
    delivered: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    read: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    clicked: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    tables = {
        "deliveries": f'"{Delivery._meta.db_table}"',
        "broadcasts": f'"{Broadcast._meta.db_table}"',
        "clicks": f'"{LinkClick._meta.db_table}"',
        "links": f'"{TrackedLink._meta.db_table}"',
    }
    with db.cursor() as cursor:
        cursor.execute(_TIMELINE_SQL.format(**tables), params)
        for broadcast_id, delivered_bucket, read_bucket, n in cursor.fetchall():
            delivered[broadcast_id][delivered_bucket] += n
            if read_bucket is not None:
                read[broadcast_id][read_bucket] += n
        cursor.execute(_FIRST_CLICKS_SQL.format(**tables), params)
        for broadcast_id, bucket, n in cursor.fetchall():
            clicked[broadcast_id][bucket] += n
    return {
        pk: {
            "delivered": _cumulative(delivered[pk]),
            "read": _cumulative(read[pk]),
            "clicked": _cumulative(clicked[pk]),
        }
        for pk in broadcasts
    }


def _clicks(broadcasts: dict[int, Broadcast]) -> tuple[dict[int, int], dict[int, int], bool]:
    """(clicks per broadcast, people who clicked per broadcast, whether the tenant tracks per
    recipient). Aggregate-only tenants record no per-person clicks; nothing is read of them."""
    ids = list(broadcasts)
    clicks = dict(
        TrackedLink.objects.filter(broadcast_id__in=ids)
        .values_list("broadcast_id")
        .annotate(n=Sum("clicks"))
        .order_by()
    )
    per_recipient = getattr(current_tenant(), "link_tracking", "aggregate") == "per_recipient"
    unique: dict[int, int] = {}
    if per_recipient:
        unique = dict(
            LinkClick.objects.filter(link__broadcast_id__in=ids, delivery_id__isnull=False)
            .values_list("link__broadcast_id")
            .annotate(n=Count("delivery_id", distinct=True))
            .order_by()
        )
    return clicks, unique, per_recipient


_UNSUBSCRIBES_SQL = """
SELECT x.broadcast_id, count(DISTINCT x.subscriber_id)
  FROM (SELECT e.subscriber_id,
               (SELECT d.broadcast_id
                  FROM {deliveries} d
                 WHERE d.subscriber_id = e.subscriber_id
                   AND d.sent_at IS NOT NULL AND d.sent_at <= e.at AND d.sent_at > e.at - %(window)s
                   AND (e.channel_id IS NULL OR EXISTS (
                        SELECT 1 FROM {targets} t WHERE t.broadcast_id = d.broadcast_id AND t.channel_id = e.channel_id))
                 ORDER BY d.sent_at DESC, d.id DESC
                 LIMIT 1) AS broadcast_id
          FROM {events} e
         WHERE e.kind = %(kind)s AND e.subscriber_id IS NOT NULL AND e.at >= %(since)s AND e.at <= %(until)s) x
 WHERE x.broadcast_id = ANY(%(ids)s::bigint[])
 GROUP BY 1
"""


def _unsubscribes(broadcasts: dict[int, Broadcast], now: datetime) -> dict[int, int]:
    """Opt-outs attributed to each broadcast (see the module docstring), up to `now`."""
    starts = [b.send_started_at for b in broadcasts.values() if b.send_started_at is not None]
    if not starts:
        return {}
    tables = {
        "deliveries": f'"{Delivery._meta.db_table}"',
        "targets": f'"{Broadcast.channels.through._meta.db_table}"',
        "events": f'"{ConsentEvent._meta.db_table}"',
    }
    params: dict[str, Any] = {
        "ids": list(broadcasts),
        "window": UNSUBSCRIBE_WINDOW,
        "kind": ConsentEvent.Kind.OPT_OUT,
        "since": min(starts),
        "until": now,
    }
    with db.cursor() as cursor:
        cursor.execute(_UNSUBSCRIBES_SQL.format(**tables), params)
        return dict(cursor.fetchall())


def _recount_unsubscribes(ids: Iterable[int], now: datetime) -> None:
    stats = {
        s.broadcast_id: s
        for s in BroadcastStats.objects.filter(broadcast_id__in=list(ids))
        .select_related("broadcast")
        .only("broadcast_id", "settled", "last_sent_at", "broadcast__send_started_at")
    }
    counts = _unsubscribes({pk: s.broadcast for pk, s in stats.items()}, now)
    for pk, s in stats.items():
        s.unsubscribes = counts.get(pk, 0)
        s.unsubscribes_settled = _window_closed(s.settled, s.last_sent_at, now)
    BroadcastStats.objects.bulk_update(list(stats.values()), ["unsubscribes", "unsubscribes_settled"])


def as_figures(stats: BroadcastStats) -> dict[str, Any]:
    """Plain values of a roll-up row (the tests compare them with a brute-force count)."""
    return {
        "recipients": stats.recipients,
        "sent": stats.sent,
        "delivered": stats.delivered,
        "read": stats.read,
        "read_15min": stats.read_15min,
        "failed": stats.failed,
        "skipped": stats.skipped,
        "clicks": stats.clicks,
        "unique_clicks": stats.unique_clicks,
        "unsubscribes": stats.unsubscribes,
        "cost_eur": stats.cost_eur,
        "failures": stats.failures,
        "timeline": stats.timeline,
        "by_provider": stats.by_provider,
        "by_status": stats.by_status,
        "possible_duplicates": stats.possible_duplicates,
        "went_out": stats.went_out,
    }
